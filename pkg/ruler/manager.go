package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// tenantManager evaluates one tenant's rule groups: a Prometheus rule
// manager whose groups come from the rule store (through groupLoader, no
// files), whose queries and writes act for that tenant only, and whose
// alerts go to the tenant's notifier.
type tenantManager struct {
	user     string
	manager  *rules.Manager
	loader   *groupLoader
	notifier *tenantNotifier
	// groups is what the manager was last updated with, by namespace.
	groups  map[string][]rulefmt.RuleGroup
	stopped chan struct{}
}

// groupLoader yields the stored groups of a namespace, the "file" name
// Prometheus' rule manager knows them by.
type groupLoader struct {
	mu     sync.Mutex
	groups map[string][]rulefmt.RuleGroup
	parser parser.Parser
}

func (l *groupLoader) Load(namespace string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g, ok := l.groups[namespace]
	if !ok {
		return nil, []error{fmt.Errorf("namespace %q: no rule groups", namespace)}
	}
	return &rulefmt.RuleGroups{Groups: slices.Clone(g)}, nil
}

func (l *groupLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

func (l *groupLoader) set(groups map[string][]rulefmt.RuleGroup) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.groups = groups
}

// validateGroup checks what the rule manager would refuse the whole
// tenant's update for, so that one bad stored group only loses itself.
func validateGroup(p parser.Parser, g rulefmt.RuleGroup) error {
	if g.Name == "" {
		return errors.New("the group has no name")
	}
	for i, r := range g.Rules {
		name := r.Record
		if r.Alert != "" {
			name = r.Alert
		}
		switch {
		case r.Record != "" && r.Alert != "":
			return fmt.Errorf("rule %d (%s): both record and alert are set", i+1, name)
		case name == "":
			return fmt.Errorf("rule %d: neither record nor alert is set", i+1)
		case r.Record != "" && !model.UTF8Validation.IsValidMetricName(r.Record):
			return fmt.Errorf("rule %d: %q is not a valid metric name", i+1, r.Record)
		}
		if _, err := p.ParseExpr(r.Expr); err != nil {
			return fmt.Errorf("rule %d (%s): expr %q: %w", i+1, name, r.Expr, err)
		}
	}
	return nil
}

// newTenantManager builds and starts the tenant's rule manager and
// notifier.
func (r *Ruler) newTenantManager(user string) (*tenantManager, error) {
	reg := prometheus.NewRegistry()
	logger := r.logger.With("user", user)
	tm := &tenantManager{
		user:    user,
		loader:  &groupLoader{parser: r.parser},
		stopped: make(chan struct{}),
	}
	notify := func(context.Context, string, ...*rules.Alert) {}
	if len(r.alertmanagers) > 0 {
		n, err := newTenantNotifier(&r.cfg, r.alertmanagers, r.amClient, user, reg, logger)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: notifier: %w", user, err)
		}
		tm.notifier = n
		notify = rules.SendAlerts(n.manager, r.cfg.ExternalURL)
	}
	var externalURL *url.URL
	if r.cfg.ExternalURL != "" {
		externalURL, _ = url.Parse(r.cfg.ExternalURL) // checked by Config.Validate
	}
	ctx := tenant.Inject(context.Background(), user)
	query := rules.EngineQueryFunc(r.engine, r.queryable)
	tm.manager = rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		ExternalURL:          externalURL,
		QueryFunc: func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
			// A rule queries its own tenant's data, whatever ctx carried.
			r.metrics.queries.WithLabelValues(user).Inc()
			start := time.Now()
			v, err := query(tenant.Inject(ctx, user), q, t)
			if err != nil {
				r.metrics.queriesFailed.WithLabelValues(user).Inc()
			}
			if r.cfg.EnableQueryStats {
				r.reportQueryStats(ctx, logger, user, q, time.Since(start))
			}
			return v, err
		},
		NotifyFunc:             notify,
		Context:                ctx,
		AppendableV2:           &pusherAppendable{pusher: r.pusher, user: user, metrics: r.metrics},
		Queryable:              r.queryable,
		Logger:                 logger,
		Registerer:             reg,
		OutageTolerance:        r.cfg.OutageTolerance,
		ForGracePeriod:         r.cfg.ForGracePeriod,
		ResendDelay:            r.cfg.ResendDelay,
		GroupLoader:            tm.loader,
		DefaultRuleQueryOffset: r.cfg.queryOffset,
		RestoreNewRuleGroups:   true,
		Parser:                 r.parser,
		ConcurrentEvalsEnabled: r.cfg.ConcurrentEvalsEnabled,
		MaxConcurrentEvals:     r.cfg.MaxConcurrentEvals,
	})
	r.userRegs.add(user, reg)
	go func() {
		defer close(tm.stopped)
		tm.manager.Run()
	}()
	return tm, nil
}

// reportQueryStats counts a rule query's wall time and logs it, with its
// rule and group, as Cortex's -ruler.query-stats-enabled does.
func (r *Ruler) reportQueryStats(ctx context.Context, logger *slog.Logger, user, query string, took time.Duration) {
	r.metrics.querySeconds.WithLabelValues(user).Add(took.Seconds())
	attrs := []any{"component", "ruler"}
	if origin, ok := ctx.Value(promql.QueryOrigin{}).(map[string]any); ok {
		if group, ok := origin["ruleGroup"].(map[string]string); ok {
			attrs = append(attrs, "rule_group", group["name"], "namespace", group["file"])
		}
	}
	rule := rules.FromOriginContext(ctx)
	attrs = append(attrs, "rule", rule.Name, "rule_kind", rule.Kind, "query", query,
		"cortex_ruler_query_seconds_total", took.Seconds(), "query_wall_time_seconds", took.Seconds())
	logger.Info("query stats", attrs...)
}

// update loads groups, by namespace, into the tenant's rule manager, when
// they differ from what it runs.
func (tm *tenantManager) update(r *Ruler, groups map[string][]rulefmt.RuleGroup) {
	if tm.groups != nil && reflect.DeepEqual(tm.groups, groups) {
		return
	}
	tm.loader.set(groups)
	namespaces := slices.Sorted(maps.Keys(groups))
	if err := tm.manager.Update(r.cfg.EvaluationInterval, namespaces, labels.EmptyLabels(), r.cfg.ExternalURL, rules.DefaultEvalIterationFunc); err != nil {
		r.metrics.lastReloadOK.WithLabelValues(tm.user).Set(0)
		r.logger.Error("loading the tenant's rule groups failed; it keeps evaluating its previous ones", "user", tm.user, "err", err)
		return
	}
	tm.groups = groups
	r.metrics.configUpdates.WithLabelValues(tm.user).Inc()
	r.metrics.lastReloadOK.WithLabelValues(tm.user).Set(1)
	r.metrics.lastReloadTime.WithLabelValues(tm.user).SetToCurrentTime()
}

// stop stops the tenant's evaluations (waiting for those running), then
// its notifier.
func (tm *tenantManager) stop() {
	tm.manager.Stop()
	<-tm.stopped
	if tm.notifier != nil {
		tm.notifier.stop()
	}
}

// logInvalid reports a stored group left out.
func logInvalid(logger *slog.Logger, g rulestore.RuleGroup, err error) {
	logger.Warn("rule group left out: invalid", "user", g.User, "namespace", g.Namespace, "group", g.Group.Name, "err", err)
}
