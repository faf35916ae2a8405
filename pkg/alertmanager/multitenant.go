package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	dskittenant "github.com/grafana/dskit/tenant"
	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/alertmanager/amcluster"
	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/util/tenantfilter"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// MultitenantAlertmanager runs one Alertmanager per tenant and keeps them in
// step with the configs service.
type MultitenantAlertmanager struct {
	services.Service

	cfg         Config
	logger      *slog.Logger
	store       alertstore.Store // nil: only the fallback configuration is served
	externalURL *url.URL
	fallback    *tenantConfig
	overrides   *validation.Overrides // nil: no limits
	allowed     *tenantfilter.Allowed // -alertmanager.enabled-tenants, -disabled-tenants

	mtx     sync.RWMutex
	tenants map[string]*tenant

	local http.Handler // the v2 API of the tenants running here

	// Sharding (nil member: every tenant runs here, nothing is replicated).
	member    *shardring.Member
	ring      replicaRing
	pool      *ClientPool
	statesMtx sync.Mutex // guards states apart from mtx, which a poll holds while tenants settle
	states    map[string]*replicatedState

	// Alertmanager's gossip cluster (nil: none), which replicates every
	// tenant's state when the tenants are not sharded.
	peer       *amcluster.Peer
	stopSettle context.CancelFunc
	// peerTimeout is -alertmanager.cluster.peer-timeout (or
	// -alertmanager.peer-timeout), per member or replica ahead.
	peerTimeout time.Duration

	polls       *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	tenantCount prometheus.Gauge
}

// Option configures a MultitenantAlertmanager.
type Option func(*MultitenantAlertmanager)

// WithSharding runs the alertmanager as a member of the alertmanager ring
// (-alertmanager.sharding-enabled): it runs the tenants it is a replica of,
// replicates their state to the other replicas over pool, and forwards the
// other tenants' API requests.
func WithSharding(member *shardring.Member, pool *ClientPool) Option {
	return func(am *MultitenantAlertmanager) {
		am.member, am.pool = member, pool
		am.ring = replicaRing{ring: member.Ring(), addr: member.Addr(), op: RingOp}
	}
}

// New validates cfg and reads the fallback configuration. store is where
// the tenants' configurations are polled from (nil: every tenant gets the
// fallback configuration, if any, on first use).
func New(cfg Config, store alertstore.Store, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*MultitenantAlertmanager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	peerTimeout, err := cfg.PeerTimeout()
	if err != nil {
		return nil, err
	}
	am := &MultitenantAlertmanager{
		cfg:     cfg,
		store:   store,
		logger:  logger.With("component", "alertmanager"),
		tenants: map[string]*tenant{},
		states:  map[string]*replicatedState{},
		allowed: tenantfilter.New(cfg.EnabledTenants, cfg.DisabledTenants),
		polls: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_alertmanager_config_polls_total",
			Help: "Polls of the alertmanager storage, by result.",
		}, []string{"result"}),
		lastSuccess: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "cortex_alertmanager_config_last_successful_poll_timestamp_seconds",
			Help: "When the alertmanager storage last answered a poll.",
		}),
		tenantCount: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "cortex_alertmanager_tenants",
			Help: "Tenants with a running Alertmanager.",
		}),
	}
	am.peerTimeout = peerTimeout
	base := "http://localhost/alertmanager"
	if cfg.ExternalURL != "" {
		base = strings.TrimRight(cfg.ExternalURL, "/") + "/alertmanager"
	}
	am.externalURL, _ = url.Parse(base)
	if cfg.Configs.Fallback != "" {
		b, err := os.ReadFile(cfg.Configs.Fallback)
		if err != nil {
			return nil, fmt.Errorf("-alertmanager.configs.fallback: %w", err)
		}
		if _, err := amconfig.Load(string(b)); err != nil {
			return nil, fmt.Errorf("-alertmanager.configs.fallback=%s: invalid Alertmanager configuration: %w", cfg.Configs.Fallback, err)
		}
		am.fallback = &tenantConfig{AlertmanagerConfig: string(b)}
	}
	if reg != nil {
		if err := reg.Register(tenantMetrics{am}); err != nil {
			return nil, fmt.Errorf("registering per-tenant Alertmanager metrics: %w", err)
		}
	}
	for _, o := range opts {
		o(am)
	}
	if am.member != nil && am.peer != nil {
		return nil, errors.New("the alertmanager gossip cluster and sharding exclude each other: with -alertmanager.sharding-enabled the tenants' replicas exchange their state over gRPC")
	}
	if cfg.Sharding.DisableReplicaSetExtension {
		am.ring.op = ringOpNoExtension
	}
	am.local = am.localHandler()
	am.Service = services.NewBasicService(am.starting, am.running, am.stopping)
	return am, nil
}

func (am *MultitenantAlertmanager) starting(ctx context.Context) error {
	if am.peer != nil {
		am.joinCluster(ctx)
	}
	if am.member != nil {
		// Join the ring first, so that the first poll already takes only
		// this instance's tenants.
		if err := am.member.Start(ctx); err != nil {
			return fmt.Errorf("alertmanager ring: %w", err)
		}
	}
	// -alertmanager.storage.path is created when the first tenant starts,
	// so that an idle alertmanager leaves no trace.
	if am.store == nil {
		if am.fallback != nil {
			am.logger.Info("no alertmanager storage: every tenant gets the fallback configuration on first use", "fallback", am.cfg.Configs.Fallback)
		} else {
			am.logger.Warn("no alertmanager storage and no -alertmanager.configs.fallback: no tenant has an Alertmanager")
		}
		return nil
	}
	// The first poll is best effort: a storage that is down is logged and
	// retried, it does not stop the process.
	_ = am.Poll(ctx)
	return nil
}

func (am *MultitenantAlertmanager) running(ctx context.Context) error {
	if am.store == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(am.cfg.Configs.PollInterval)
	defer t.Stop()
	// ringChanges ticks only with sharding: a nil channel never fires.
	var ringChanges <-chan time.Time
	lastRing := ""
	if am.member != nil {
		rt := time.NewTicker(ringCheckPeriod)
		defer rt.Stop()
		ringChanges = rt.C
		lastRing = am.ring.fingerprint()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = am.Poll(ctx)
		case <-ringChanges:
			if fp := am.ring.fingerprint(); fp != lastRing {
				lastRing = fp
				am.logger.Info("alertmanager ring changed; syncing tenants", "ring", fp)
				_ = am.Poll(ctx)
				am.retainClients()
			}
		}
	}
}

// retainClients closes the connections to alertmanagers that left the ring.
func (am *MultitenantAlertmanager) retainClients() {
	rs, err := am.member.Ring().GetAllHealthy(RingOp)
	if err != nil {
		return
	}
	am.pool.retain(rs.GetAddresses())
}

func (am *MultitenantAlertmanager) stopping(error) error {
	var errs []error
	if am.member != nil {
		// Leave the ring first, so that the other replicas answer for
		// this instance's tenants while it stops them.
		errs = append(errs, am.member.Stop())
	}
	am.mtx.Lock()
	defer am.mtx.Unlock()
	for id, t := range am.tenants {
		t.stop()
		delete(am.tenants, id)
	}
	am.tenantCount.Set(0)
	if am.peer != nil {
		errs = append(errs, am.leaveCluster())
	}
	if c, ok := am.store.(io.Closer); ok {
		_ = c.Close()
	}
	if am.pool != nil {
		errs = append(errs, am.pool.Close())
	}
	return errors.Join(errs...)
}

// applyLocked starts or reloads tenant id with c. am.mtx must be held.
func (am *MultitenantAlertmanager) applyLocked(id string, c tenantConfig) error {
	// The operator's fallback may name files; tenants' configurations may
	// not. The fallback stays trusted with a tenant's template files, which
	// name no file.
	trusted := am.fallback != nil && c.AlertmanagerConfig == am.fallback.AlertmanagerConfig
	logger := am.logger.With("tenant", id)
	t, ok := am.tenants[id]
	if ok {
		t.mtx.RLock()
		same := t.cfg.Equal(c)
		t.mtx.RUnlock()
		if same {
			return nil
		}
		if err := t.apply(c, trusted); err != nil {
			return err
		}
		logger.Info("Alertmanager configuration reloaded")
		return nil
	}
	t, err := newTenant(id, filepath.Join(am.cfg.DataDir, id), am.cfg, am.externalURL, logger, func() *validation.Limits { return am.limitsFor(id) })
	if err != nil {
		return err
	}
	switch {
	case am.member != nil:
		am.replicate(t)
	case am.peer != nil:
		am.gossip(t)
	}
	if err := t.apply(c, trusted); err != nil {
		t.stop()
		return err
	}
	am.tenants[id] = t
	logger.Info("Alertmanager started")
	return nil
}

// errTenantNotAllowed answers a tenant that -alertmanager.enabled-tenants
// or -alertmanager.disabled-tenants keeps off this alertmanager (Cortex's
// text).
const errTenantNotAllowed = "Tenant is not allowed"

func validTenant(id string) error {
	if id == "" {
		return errors.New("empty tenant ID")
	}
	return dskittenant.ValidTenantID(id)
}

// tenantFor returns the running Alertmanager of id, starting one with the
// fallback configuration if id has none and a fallback is set.
func (am *MultitenantAlertmanager) tenantFor(id string) (*tenant, error) {
	am.mtx.RLock()
	t, ok := am.tenants[id]
	am.mtx.RUnlock()
	if ok {
		return t, nil
	}
	if am.fallback == nil || am.State() != services.Running || !am.allowed.IsAllowed(id) {
		return nil, nil
	}
	if err := validTenant(id); err != nil {
		return nil, err
	}
	am.mtx.Lock()
	defer am.mtx.Unlock()
	if t, ok := am.tenants[id]; ok {
		return t, nil
	}
	if err := am.applyLocked(id, *am.fallback); err != nil {
		return nil, err
	}
	am.tenantCount.Set(float64(len(am.tenants)))
	return am.tenants[id], nil
}

// Tenants returns the IDs of the tenants with a running Alertmanager.
func (am *MultitenantAlertmanager) Tenants() []string {
	am.mtx.RLock()
	defer am.mtx.RUnlock()
	out := make([]string, 0, len(am.tenants))
	for id := range am.tenants {
		out = append(out, id)
	}
	return out
}
