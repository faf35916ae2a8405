package shardring

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/kitlog"
)

// autoForgetPeriods is how many heartbeat timeouts an instance may go
// without a heartbeat before the others remove it from the ring (Cortex's
// ringAutoForgetUnhealthyPeriods): a crashed instance's items go to the
// others instead of staying unowned.
const autoForgetPeriods = 10

// Member is one instance in a component's sharding ring: its registration
// and heartbeats, and the ring client through which it, like the
// component's readers, finds each item's owners.
type Member struct {
	cfg        Config
	lifecycler *ring.BasicLifecycler
	ring       *ring.Ring
	logger     *slog.Logger
}

// NewMember prepares the instance's membership in the ring named name,
// stored under key in store, advertising host:port unless
// -<prefix>.instance-addr and -instance-port say otherwise. The instance
// registers in registerState when started.
func NewMember(cfg Config, name, key string, store kv.Client, host string, port int, registerState ring.InstanceState, logger *slog.Logger, reg prometheus.Registerer) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kl := kitlog.New(logger)
	if cfg.InstanceAddr != "" {
		host = cfg.InstanceAddr
	}
	if host == "" {
		addr, err := ring.GetInstanceAddr("", cfg.InstanceInterfaceNames, kl, false)
		if err != nil {
			return nil, fmt.Errorf("-%s.instance-addr is empty and no address was found on -%s.instance-interface-names=%s: %w", cfg.Prefix, cfg.Prefix, strings.Join(cfg.InstanceInterfaceNames, ","), err)
		}
		host = addr
	}
	if cfg.InstancePort != 0 {
		port = cfg.InstancePort
	}
	id := cfg.InstanceID
	if id == "" {
		var err error
		if id, err = hostname(); err != nil {
			return nil, fmt.Errorf("-%s.instance-id is empty and the hostname is unknown: %w", cfg.Prefix, err)
		}
	}

	var delegate ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(registerState, cfg.NumTokens)
	delegate = ring.NewLeaveOnStoppingDelegate(delegate, kl)
	delegate = ring.NewTokensPersistencyDelegate(cfg.TokensFilePath, registerState, delegate, kl)
	forget := autoForgetPeriods * cfg.HeartbeatTimeout
	if cfg.AutoForgetDelay != nil {
		forget = *cfg.AutoForgetDelay
	}
	if forget > 0 {
		delegate = ring.NewAutoForgetDelegate(forget, delegate, kl)
	}
	lc, err := ring.NewBasicLifecycler(ring.BasicLifecyclerConfig{
		ID:                              id,
		Addr:                            net.JoinHostPort(host, strconv.Itoa(port)),
		Zone:                            cfg.InstanceZone,
		HeartbeatPeriod:                 cfg.HeartbeatPeriod,
		HeartbeatTimeout:                cfg.HeartbeatTimeout,
		NumTokens:                       cfg.NumTokens,
		KeepInstanceInTheRingOnShutdown: cfg.KeepInstanceInTheRingOnShutdown,
	}, name, key, store, delegate, kl, reg)
	if err != nil {
		return nil, fmt.Errorf("%s ring: %w", name, err)
	}
	r, err := NewRing(cfg, name, key, store, logger, reg)
	if err != nil {
		return nil, err
	}
	return &Member{cfg: cfg, lifecycler: lc, ring: r, logger: logger}, nil
}

// NewRing returns a client of the ring, for the component's readers (a
// querier finding a block's store-gateways).
func NewRing(cfg Config, name, key string, store kv.Client, logger *slog.Logger, reg prometheus.Registerer) (*ring.Ring, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	strategy := cfg.ReplicationStrategy
	if strategy == nil {
		strategy = ring.NewDefaultReplicationStrategy()
	}
	r, err := ring.NewWithStoreClientAndStrategy(cfg.RingConfig(), name, key, store, strategy, reg, kitlog.New(logger))
	if err != nil {
		return nil, fmt.Errorf("%s ring: %w", name, err)
	}
	if cfg.DetailedMetricsEnabled {
		if err := RegisterDetailedMetrics(name, key, store, reg); err != nil {
			return nil, fmt.Errorf("%s ring: detailed metrics: %w", name, err)
		}
	}
	return r, nil
}

// Start registers the instance and starts following the ring. With
// -<prefix>.wait-stability-min-duration set, it then waits until the ring
// has not changed for that long (at most -wait-stability-max-duration), so
// that instances starting together do not each take every item first.
func (m *Member) Start(ctx context.Context) error {
	if err := services.StartAndAwaitRunning(ctx, m.ring); err != nil {
		return fmt.Errorf("starting the ring client: %w", err)
	}
	if err := services.StartAndAwaitRunning(ctx, m.lifecycler); err != nil {
		_ = services.StopAndAwaitTerminated(context.Background(), m.ring)
		return fmt.Errorf("joining the ring: %w", err)
	}
	// Owners are computed from the ring client: wait until it sees this
	// instance, or the first ownership checks would find no owner.
	if err := m.waitState(ctx, m.lifecycler.GetState()); err != nil {
		return errors.Join(fmt.Errorf("waiting for this instance in the ring: %w", err), m.Stop())
	}
	if m.cfg.WaitStabilityMinDuration > 0 {
		op := ring.NewOp([]ring.InstanceState{ring.JOINING, ring.ACTIVE, ring.LEAVING}, nil)
		if err := ring.WaitRingStability(ctx, m.ring, op, m.cfg.WaitStabilityMinDuration, m.cfg.WaitStabilityMaxDuration); err != nil && ctx.Err() != nil {
			return errors.Join(err, m.Stop())
		} else if err != nil {
			m.logger.Warn("ring not stable; starting anyway", "max_wait", m.cfg.WaitStabilityMaxDuration, "err", err)
		}
	}
	return nil
}

// Activate turns the instance ACTIVE and waits until the ring client sees
// it so.
func (m *Member) Activate(ctx context.Context) error {
	if err := m.lifecycler.ChangeState(ctx, ring.ACTIVE); err != nil {
		return fmt.Errorf("turning ACTIVE in the ring: %w", err)
	}
	return m.waitState(ctx, ring.ACTIVE)
}

// waitState waits until the ring client sees this instance in state,
// within the ring's wait timeout, if any.
func (m *Member) waitState(ctx context.Context, state ring.InstanceState) error {
	timeout, flag := m.cfg.WaitActiveTimeout, "wait-active-instance-timeout"
	if timeout <= 0 {
		timeout, flag = m.cfg.WaitInstanceStateTimeout, "wait-instance-state-timeout"
	}
	waitCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := ring.WaitInstanceState(waitCtx, m.ring, m.lifecycler.GetInstanceID(), state)
	if err != nil && ctx.Err() == nil && waitCtx.Err() != nil {
		err = fmt.Errorf("not %s in the ring within -%s.%s=%s: %w", state, m.cfg.Prefix, flag, timeout, err)
	}
	return err
}

// Stop leaves the ring (unless -keep-instance-in-the-ring-on-shutdown)
// and stops the ring client.
func (m *Member) Stop() error {
	err := services.StopAndAwaitTerminated(context.Background(), m.lifecycler)
	if m.cfg.FinalSleep > 0 {
		m.logger.Info("left the ring, sleeping before stopping", "final_sleep", m.cfg.FinalSleep)
		time.Sleep(m.cfg.FinalSleep)
	}
	return errors.Join(err, services.StopAndAwaitTerminated(context.Background(), m.ring))
}

// Ring is the ring client.
func (m *Member) Ring() *ring.Ring { return m.ring }

// ID is the instance's ID in the ring.
func (m *Member) ID() string { return m.lifecycler.GetInstanceID() }

// Addr is the address the instance advertises.
func (m *Member) Addr() string { return m.lifecycler.GetInstanceAddr() }

// State is the instance's state in the ring.
func (m *Member) State() ring.InstanceState { return m.lifecycler.GetState() }

// Owns reports whether this instance is among the owners of the item
// hashed to key for op.
func (m *Member) Owns(key uint32, op ring.Operation) (bool, error) {
	rs, err := m.ring.Get(key, op, nil, nil, nil)
	if err != nil {
		return false, err
	}
	return rs.Includes(m.Addr()), nil
}

// FirstOwnerOf reports whether this instance is the first of the owners
// of the FNV-1a token of name for op (Owns accepts any of them): the one
// member of a ring that does a job such as writing a user index.
func (m *Member) FirstOwnerOf(name string, op ring.Operation) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	rs, err := m.ring.Get(h.Sum32(), op, nil, nil, nil)
	return err == nil && len(rs.Instances) > 0 && rs.Instances[0].Addr == m.Addr()
}

// ServeHTTP serves the ring's status page (dskit's, with "forget").
func (m *Member) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.ring.ServeHTTP(w, r) }
