package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
	cortextenant "github.com/cortex-tls/cortex/pkg/tenant"
)

// The key prefixes of a tenant's replicated state parts, Cortex's.
const (
	silencesKeyPrefix = "sil:"
	nflogKeyPrefix    = "nfl:"
)

// stateQueueSize bounds the state changes waiting to be sent to the other
// replicas of one tenant; past it a change is dropped (and counted): the
// replicas catch up on the next change of the same silence or entry, and
// a replica that starts the tenant reads the full state.
const stateQueueSize = 1024

// replicatedState carries one tenant's silences and notification log
// between its replicas, as Cortex's state replication does over its own
// gRPC service instead of Alertmanager's gossip cluster: every change is
// sent to the other replicas (UpdateState), and a replica starting the
// tenant first merges the others' full state (ReadState).
type replicatedState struct {
	tenant string
	am     *MultitenantAlertmanager
	logger *slog.Logger

	mtx    sync.Mutex
	states map[string]cluster.State

	msgc chan *alertmanagerpb.Part
	done chan struct{}
	wg   sync.WaitGroup

	replications, replicationFailures *prometheus.CounterVec
	merges, mergeFailures             *prometheus.CounterVec
	dropped                           prometheus.Counter
	persists, persistFailures         prometheus.Counter
}

func newReplicatedState(tenantID string, am *MultitenantAlertmanager, logger *slog.Logger, reg prometheus.Registerer) *replicatedState {
	return &replicatedState{
		tenant: tenantID, am: am, logger: logger,
		states: map[string]cluster.State{},
		msgc:   make(chan *alertmanagerpb.Part, stateQueueSize),
		done:   make(chan struct{}),
		replications: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "alertmanager_state_replication_total",
			Help: "Number of times we have tried to replicate a state to other alertmanagers.",
		}, []string{"key"}),
		replicationFailures: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "alertmanager_state_replication_failed_total",
			Help: "Number of times we have failed to replicate a state to other alertmanagers.",
		}, []string{"key"}),
		merges: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "alertmanager_partial_state_merges_total",
			Help: "Number of times we have received a partial state to merge for a key.",
		}, []string{"key"}),
		mergeFailures: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "alertmanager_partial_state_merges_failed_total",
			Help: "Number of times we have failed to merge a partial state received for a key.",
		}, []string{"key"}),
		dropped: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "alertmanager_state_replication_dropped_total",
			Help: "State changes not sent to the other replicas because too many were waiting.",
		}),
		persists: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "alertmanager_state_persist_total",
			Help: "Number of times we have tried to persist the running state to remote storage.",
		}),
		persistFailures: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "alertmanager_state_persist_failed_total",
			Help: "Number of times we have failed to persist the running state to remote storage.",
		}),
	}
}

// add registers a state (Alertmanager's silences or notification log, as
// its cluster package takes them) under key and returns the channel its
// changes are broadcast on (their SetBroadcast).
func (s *replicatedState) add(key string, st cluster.State) cluster.ClusterChannel {
	s.mtx.Lock()
	s.states[key] = st
	s.mtx.Unlock()
	for _, c := range []*prometheus.CounterVec{s.replications, s.replicationFailures, s.merges, s.mergeFailures} {
		c.WithLabelValues(key)
	}
	return stateChannel{s: s, key: key}
}

// stateChannel queues a state's changes for the other replicas, as
// Cortex's does. Broadcast never blocks: the libraries call it holding
// their own lock.
type stateChannel struct {
	s   *replicatedState
	key string
}

func (c stateChannel) Broadcast(b []byte) {
	select {
	case c.s.msgc <- &alertmanagerpb.Part{Key: c.key, Data: b}:
	default:
		c.s.dropped.Inc()
	}
}

// merge merges a part sent by another replica.
func (s *replicatedState) merge(p *alertmanagerpb.Part) error {
	s.mtx.Lock()
	st, ok := s.states[p.GetKey()]
	s.mtx.Unlock()
	if !ok {
		return fmt.Errorf("tenant %q has no state %q", s.tenant, p.GetKey())
	}
	s.merges.WithLabelValues(p.GetKey()).Inc()
	if err := st.Merge(p.GetData()); err != nil {
		s.mergeFailures.WithLabelValues(p.GetKey()).Inc()
		return fmt.Errorf("merging %q: %w", p.GetKey(), err)
	}
	return nil
}

// full returns every state of the tenant.
func (s *replicatedState) full() ([]*alertmanagerpb.Part, error) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	out := make([]*alertmanagerpb.Part, 0, len(s.states))
	for key, st := range s.states {
		b, err := st.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encoding %q: %w", key, err)
		}
		out = append(out, &alertmanagerpb.Part{Key: key, Data: b})
	}
	return out, nil
}

// settle merges the full state of every other replica that answers, so
// that a replica starting the tenant (a new owner after an instance left,
// or a restart) has its silences and notification log before it notifies.
// Replicas that do not answer within -alertmanager.alertmanager-client.remote-timeout
// are skipped: the state then arrives with the next changes.
//
// When no other replica gave it (all down, or none left in the ring) and
// the tenant has replicas (-alertmanager.sharding-ring.replication-factor
// above 1), the state -alertmanager.persist-interval last stored is merged
// instead, when the storage keeps states (an object storage backend).
func (s *replicatedState) settle(ctx context.Context) {
	peers := s.am.otherReplicas(s.tenant)
	if len(peers) == 0 {
		s.restoreFromStorage(ctx)
		return
	}
	var (
		wg      sync.WaitGroup
		mtx     sync.Mutex
		settled int
		errs    []error
	)
	for _, addr := range peers {
		wg.Go(func() {
			parts, err := s.am.readState(ctx, s.tenant, addr)
			if err == nil {
				for _, p := range parts {
					if err = s.merge(p); err != nil {
						break
					}
				}
			}
			mtx.Lock()
			defer mtx.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", addr, err))
				return
			}
			settled++
		})
	}
	wg.Wait()
	if settled > 0 {
		s.logger.Info("state settled from the other replicas", "replicas", settled)
		return
	}
	s.logger.Info("state not settled from any other replica", "err", errors.Join(errs...))
	s.restoreFromStorage(ctx)
}

// restoreFromStorage merges the stored state when the tenant has replicas
// and the storage keeps states.
func (s *replicatedState) restoreFromStorage(ctx context.Context) {
	store := s.am.stateStore()
	if store == nil || s.am.cfg.Sharding.ShardingRing.ReplicationFactor <= 1 {
		return
	}
	s.restore(ctx, store)
}

// run sends the state changes to the other replicas until stop.
func (s *replicatedState) run() {
	s.wg.Go(func() {
		for {
			select {
			case <-s.done:
				return
			case p := <-s.msgc:
				s.replications.WithLabelValues(p.GetKey()).Inc()
				if err := s.am.replicateState(s.tenant, p); err != nil {
					s.replicationFailures.WithLabelValues(p.GetKey()).Inc()
					s.logger.Warn("failed to replicate state to other alertmanagers", "key", p.GetKey(), "err", err)
				}
			}
		}
	})
}

func (s *replicatedState) stop() {
	close(s.done)
	s.wg.Wait()
}

// otherReplicas are the tenant's replicas but this instance.
func (am *MultitenantAlertmanager) otherReplicas(tenantID string) []string {
	addrs, err := am.ring.replicas(tenantID)
	if err != nil {
		return nil
	}
	out := addrs[:0:0]
	for _, a := range addrs {
		if a != am.ring.addr {
			out = append(out, a)
		}
	}
	return out
}

// replicateState sends p to every other replica of the tenant, at once.
func (am *MultitenantAlertmanager) replicateState(tenantID string, p *alertmanagerpb.Part) error {
	var (
		wg   sync.WaitGroup
		mtx  sync.Mutex
		errs []error
	)
	for _, addr := range am.otherReplicas(tenantID) {
		wg.Go(func() {
			ctx, cancel := am.remoteContext(cortextenant.Inject(context.Background(), tenantID))
			defer cancel()
			c, err := am.pool.client(addr)
			if err == nil {
				_, err = c.UpdateState(ctx, p)
			}
			if err != nil {
				mtx.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", addr, err))
				mtx.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readState asks the replica at addr for the tenant's full state.
func (am *MultitenantAlertmanager) readState(ctx context.Context, tenantID, addr string) ([]*alertmanagerpb.Part, error) {
	ctx, cancel := am.remoteContext(cortextenant.Inject(ctx, tenantID))
	defer cancel()
	c, err := am.pool.client(addr)
	if err != nil {
		return nil, err
	}
	resp, err := c.ReadState(ctx, &alertmanagerpb.ReadStateRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetParts(), nil
}
