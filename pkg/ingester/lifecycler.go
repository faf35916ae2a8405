package ingester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cortex-tls/cortex/pkg/util/kitlog"
)

// ringMember is the ingester's entry in the ring: dskit's BasicLifecycler
// over the KV client the process hands in (so every store, the gossip one
// included, is an ordinary kv.Client), driven the way dskit's Lifecycler
// drives Cortex's ingesters, with the same -ingester.* flags: registered
// JOINING with its tokens (kept from the ring or -ingester.tokens-file-path),
// ACTIVE after -ingester.join-after, LEAVING on shutdown, then unregistered
// unless -ingester.unregister-on-shutdown=false.
type ringMember struct {
	cfg    ring.LifecyclerConfig
	store  kv.Client
	logger *slog.Logger
	*ring.BasicLifecycler

	readyMu    sync.Mutex
	ready      bool
	readySince time.Time

	// counts are the ring's healthy instances and zones at the last
	// heartbeat, for the global limits.
	counts *ringCounts
	// readOnly keeps the read-only mode in the tokens file.
	readOnly *readOnlyState
}

// restoreReadOnly makes the instance read-only again when it was when it
// last stopped: called once registered, before it turns ACTIVE.
func (m *ringMember) restoreReadOnly(ctx context.Context) error {
	if !m.readOnly.wasReadOnly.Load() {
		return nil
	}
	if err := m.ChangeReadOnlyState(ctx, true); err != nil {
		return fmt.Errorf("restoring the read-only mode saved in -ingester.tokens-file-path: %w", err)
	}
	m.logger.Info("read-only again, as when the ingester stopped", "path", m.cfg.TokensFilePath)
	return nil
}

func newRingMember(cfg ring.LifecyclerConfig, store kv.Client, logger *slog.Logger, reg prometheus.Registerer) (*ringMember, error) {
	if store == nil {
		return nil, errors.New("ingester: no KV store client for the ring")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RingConfig.ZoneAwarenessEnabled && cfg.Zone == "" {
		// Without a zone, the ring would count this ingester as a zone of its
		// own and could place every replica of a series in one real zone.
		return nil, errors.New("-distributor.zone-awareness-enabled needs -ingester.availability-zone: the zone this ingester runs in")
	}
	kl := kitlog.New(logger)
	addr, err := ring.GetInstanceAddr(cfg.Addr, cfg.InfNames, kl, cfg.EnableInet6)
	if err != nil {
		return nil, fmt.Errorf("-ingester.lifecycler.addr: %w", err)
	}
	port := ring.GetInstancePort(cfg.Port, cfg.ListenPort)
	var delegate ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.JOINING, cfg.NumTokens)
	delegate = ring.NewTokensPersistencyDelegate(cfg.TokensFilePath, ring.JOINING, delegate, kl)
	readOnly := &readOnlyState{BasicLifecyclerDelegate: delegate, path: cfg.TokensFilePath, logger: logger}
	delegate = ring.NewLeaveOnStoppingDelegate(readOnly, kl)
	counts := &ringCounts{timeout: cfg.RingConfig.HeartbeatTimeout}
	delegate = &heartbeatCounter{BasicLifecyclerDelegate: delegate, counts: counts, heartbeats: promauto.With(reg).NewCounter(prometheus.CounterOpts{
		// The name dskit's Lifecycler gives it, which Cortex's dashboards read.
		Name:        "member_consul_heartbeats_total",
		Help:        "The total number of heartbeats sent to the ring's KV store.",
		ConstLabels: prometheus.Labels{"name": RingName},
	})}
	lc, err := ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID:                              cfg.ID,
		Addr:                            net.JoinHostPort(addr, strconv.Itoa(port)),
		Zone:                            cfg.Zone,
		HeartbeatPeriod:                 cfg.HeartbeatPeriod,
		HeartbeatTimeout:                cfg.RingConfig.HeartbeatTimeout,
		TokensObservePeriod:             cfg.ObservePeriod,
		NumTokens:                       cfg.NumTokens,
		KeepInstanceInTheRingOnShutdown: !cfg.UnregisterOnShutdown,
		RingTokenGenerator:              cfg.RingTokenGenerator,
	}, RingName, RingKey, store, delegate, kl, reg)
	if err != nil {
		return nil, err
	}
	return &ringMember{cfg: cfg, store: store, logger: logger, BasicLifecycler: lc, counts: counts, readOnly: readOnly}, nil
}

// heartbeatCounter counts the heartbeats the lifecycler writes, and the
// ring's healthy instances it sees then.
type heartbeatCounter struct {
	ring.BasicLifecyclerDelegate
	heartbeats prometheus.Counter
	counts     *ringCounts
}

func (h *heartbeatCounter) OnRingInstanceRegister(l *ring.BasicLifecycler, desc ring.Desc, exists bool, id string, inst ring.InstanceDesc) (ring.InstanceState, ring.Tokens) {
	h.counts.update(&desc)
	return h.BasicLifecyclerDelegate.OnRingInstanceRegister(l, desc, exists, id, inst)
}

func (h *heartbeatCounter) OnRingInstanceHeartbeat(l *ring.BasicLifecycler, desc *ring.Desc, inst *ring.InstanceDesc) {
	h.heartbeats.Inc()
	h.counts.update(desc)
	h.BasicLifecyclerDelegate.OnRingInstanceHeartbeat(l, desc, inst)
}

// join turns the registered instance ACTIVE after -ingester.join-after.
func (m *ringMember) join(ctx context.Context) error {
	if d := m.cfg.JoinAfter; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	if err := m.ChangeState(ctx, ring.ACTIVE); err != nil {
		if ctx.Err() != nil {
			return nil // shutting down while joining
		}
		return fmt.Errorf("joining the ingester ring: %w", err)
	}
	m.logger.Info("ACTIVE in the ingester ring", "instance", m.GetInstanceID(), "addr", m.GetInstanceAddr(), "tokens", len(m.GetTokens()))
	return nil
}

// checkReady passes once the instance owns tokens and is ACTIVE and
// healthy in the ring (every instance, with
// -ingester.readiness-check-ring-health), and has stayed so for
// -ingester.min-ready-duration. It latches, as dskit's Lifecycler does.
func (m *ringMember) checkReady(ctx context.Context) error {
	m.readyMu.Lock()
	defer m.readyMu.Unlock()
	if m.ready {
		return nil
	}
	if err := m.checkRing(ctx); err != nil {
		m.readySince = time.Time{}
		return err
	}
	if m.readySince.IsZero() {
		m.readySince = time.Now()
	}
	if time.Since(m.readySince) < m.cfg.MinReadyDuration {
		return fmt.Errorf("waiting for %v after being ready (-ingester.min-ready-duration)", m.cfg.MinReadyDuration)
	}
	m.ready = true
	return nil
}

func (m *ringMember) checkRing(ctx context.Context) error {
	if len(m.GetTokens()) == 0 {
		return errors.New("this instance owns no tokens")
	}
	v, err := m.store.Get(ctx, RingKey)
	if err != nil {
		return fmt.Errorf("reading the ring from the KV store: %w", err)
	}
	desc, ok := v.(*ring.Desc)
	if !ok || desc == nil {
		return errors.New("no ring in the KV store yet")
	}
	now := time.Now()
	if m.cfg.ReadinessCheckRingHealth {
		if err := desc.IsReady(now, m.cfg.RingConfig.HeartbeatTimeout); err != nil {
			return fmt.Errorf("the ring is not healthy (see /ingester/ring; -ingester.readiness-check-ring-health=false checks only this instance): %w", err)
		}
		return nil
	}
	inst, ok := desc.Ingesters[m.GetInstanceID()]
	if !ok {
		return fmt.Errorf("instance %s not found in the ring", m.GetInstanceID())
	}
	return inst.IsReady(now, m.cfg.RingConfig.HeartbeatTimeout)
}
