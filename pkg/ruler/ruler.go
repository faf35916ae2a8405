package ruler

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/tenantfilter"
)

// OwnerFunc reports whether this ruler evaluates a group. The default owns
// every group; a ruler ring replaces it to shard groups between rulers.
type OwnerFunc func(g rulestore.RuleGroup) bool

// Option changes a Ruler built by New.
type Option func(*Ruler)

// WithOwner makes the ruler evaluate only the groups owns accepts.
func WithOwner(owns OwnerFunc) Option {
	return func(r *Ruler) { r.owns = owns }
}

// WithParserOptions parses the rules' expressions with the queriers'
// options (-querier.enable-promql-experimental-functions): a rule loads
// exactly when its expression would run as a query.
func WithParserOptions(o parser.Options) Option {
	return func(r *Ruler) { r.parser = parser.NewParser(o) }
}

// Ruler evaluates the recording and alerting rules of every tenant it
// owns groups of, one Prometheus rule manager per tenant, reading groups
// from the rule store every -ruler.poll-interval.
type Ruler struct {
	services.Service

	cfg           Config
	store         rulestore.Store
	pusher        Pusher
	queryable     storage.Queryable
	engine        promql.QueryEngine
	parser        parser.Parser
	owns          OwnerFunc
	allowed       *tenantfilter.Allowed // -ruler.enabled-tenants, -disabled-tenants
	alertmanagers []alertmanagerTarget
	amClient      *http.Client
	logger        *slog.Logger
	metrics       *metrics
	userRegs      *userRegistries

	// syncMu serialises syncs; mu guards tenants.
	syncMu  sync.Mutex
	mu      sync.RWMutex
	tenants map[string]*tenantManager

	// peers are the other rulers the read API asks (WithPeers).
	peers Peers
}

// New returns a ruler that reads groups from store, evaluates them with
// engine over queryable (which reads the tenant of each query's context),
// writes rule results through pusher and sends alerts over the
// -ruler.alertmanager-client link amTLS (nil for plain HTTP).
func New(cfg Config, store rulestore.Store, pusher Pusher, queryable storage.Queryable, engine promql.QueryEngine, amTLS *tlsconfig.Client, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Ruler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	targets, _ := cfg.alertmanagers() // checked by Validate
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Ruler{
		cfg:           cfg,
		store:         store,
		pusher:        pusher,
		queryable:     queryable,
		engine:        engine,
		parser:        parser.NewParser(parser.Options{}),
		owns:          func(rulestore.RuleGroup) bool { return true },
		allowed:       tenantfilter.New(cfg.EnabledTenants, cfg.DisabledTenants),
		alertmanagers: targets,
		amClient:      &http.Client{Transport: amTLS.HTTPTransport()},
		logger:        logger.With("component", "ruler"),
		metrics:       newMetrics(reg),
		userRegs:      newUserRegistries(cfg.DisableRuleGroupLabel),
		tenants:       map[string]*tenantManager{},
	}
	if reg != nil {
		reg.MustRegister(r.userRegs)
	}
	for _, o := range opts {
		o(r)
	}
	if len(cfg.EnabledTenants) > 0 || len(cfg.DisabledTenants) > 0 {
		r.logger.Info("evaluating the rules of some tenants only", "enabled", cfg.EnabledTenants, "disabled", cfg.DisabledTenants)
	}
	r.Service = services.NewTimerService(cfg.PollInterval, r.starting, r.poll, r.stopping)
	return r, nil
}

// NewEngine returns the PromQL engine rules evaluate with: its
// prometheus_engine_* metrics are labelled engine="ruler", as in Cortex.
func NewEngine(opts promql.EngineOpts, reg prometheus.Registerer) *promql.Engine {
	if reg != nil {
		opts.Reg = prometheus.WrapRegistererWith(prometheus.Labels{"engine": "ruler"}, reg)
	}
	return promql.NewEngine(opts)
}

func (r *Ruler) starting(ctx context.Context) error {
	// The rule store may not answer yet (the configs service starting in the
	// same process): the next poll tries again.
	r.sync(ctx, "initial")
	return nil
}

func (r *Ruler) poll(ctx context.Context) error {
	r.sync(ctx, "periodic")
	return nil
}

func (r *Ruler) stopping(error) error {
	r.mu.Lock()
	tenants := r.tenants
	r.tenants = map[string]*tenantManager{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, tm := range tenants {
		wg.Go(tm.stop)
	}
	wg.Wait()
	return nil
}

// sync reads every tenant's groups and brings the rule managers in line
// with those this ruler owns. A failed listing of the tenants changes
// nothing; a tenant whose groups cannot be read keeps evaluating what it
// did, and the other tenants are synced.
func (r *Ruler) sync(ctx context.Context, reason string) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.metrics.syncs.WithLabelValues(reason).Inc()
	desired, unread, err := r.loadGroups(ctx)
	if err != nil {
		r.metrics.storeSyncFailure.Inc()
		r.logger.Error("reading the rule store failed; rules evaluate as before", "err", err)
		return
	}
	if len(unread) > 0 {
		r.metrics.storeSyncFailure.Inc()
	}
	r.apply(desired, unread)
}

// loadGroups returns the valid groups this ruler owns, by tenant then
// namespace, and the tenants whose groups could not be read (logged).
func (r *Ruler) loadGroups(ctx context.Context) (map[string]map[string][]rulefmt.RuleGroup, map[string]bool, error) {
	users, err := r.store.ListAllUsers(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("listing tenants: %w", err)
	}
	out := map[string]map[string][]rulefmt.RuleGroup{}
	unread := map[string]bool{}
	for _, user := range users {
		if !r.allowed.IsAllowed(user) {
			continue
		}
		groups, err := r.store.ListRuleGroups(ctx, user, "")
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, err
			}
			unread[user] = true
			r.logger.Error("reading the tenant's rule groups failed; its rules evaluate as before", "user", user, "err", err)
			continue
		}
		for _, g := range groups {
			if g.User == "" {
				g.User = user
			}
			if !r.owns(g) {
				continue
			}
			if err := validateGroup(r.parser, g.Group); err != nil {
				r.metrics.groupsSkipped.WithLabelValues(user).Inc()
				logInvalid(r.logger, g, err)
				continue
			}
			if out[user] == nil {
				out[user] = map[string][]rulefmt.RuleGroup{}
			}
			out[user][g.Namespace] = append(out[user][g.Namespace], g.Group)
		}
	}
	return out, unread, nil
}

// apply starts, updates and stops tenants' rule managers to evaluate
// desired; the managers of unread tenants are left as they are.
func (r *Ruler) apply(desired map[string]map[string][]rulefmt.RuleGroup, unread map[string]bool) {
	r.mu.RLock()
	current := maps.Clone(r.tenants)
	r.mu.RUnlock()
	for _, user := range slices.Sorted(maps.Keys(desired)) {
		tm, ok := current[user]
		if !ok {
			var err error
			if tm, err = r.newTenantManager(user); err != nil {
				r.logger.Error("starting the tenant's rule evaluation failed", "user", user, "err", err)
				continue
			}
			r.mu.Lock()
			r.tenants[user] = tm
			r.mu.Unlock()
		}
		tm.update(r, desired[user])
	}
	for user, tm := range current {
		if _, ok := desired[user]; ok || unread[user] {
			continue
		}
		tm.stop()
		r.userRegs.remove(user)
		r.metrics.deleteUser(user)
		r.mu.Lock()
		delete(r.tenants, user)
		r.mu.Unlock()
		r.logger.Info("tenant has no rule groups here any more; its evaluation stopped", "user", user)
	}
	r.mu.RLock()
	r.metrics.managersTotal.Set(float64(len(r.tenants)))
	r.mu.RUnlock()
}

// SyncRules reads the rule store now rather than at the next poll (after
// the ruler API changed a tenant's groups, or the ring changed owners).
func (r *Ruler) SyncRules(ctx context.Context) {
	r.sync(ctx, "api-change")
}

// tenant returns the tenant's rule manager, nil if this ruler evaluates
// none of its groups.
func (r *Ruler) tenant(user string) *tenantManager {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.tenants[user]
}
