package alertmanager

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
)

// RegisterGRPC registers the alertmanager's gRPC service
// (alertmanagerpb.Alertmanager) on s: forwarded API requests and the
// replication of the tenants' state.
func (am *MultitenantAlertmanager) RegisterGRPC(s grpc.ServiceRegistrar) {
	alertmanagerpb.RegisterAlertmanagerServer(s, grpcServer{am})
}

// replicate connects a new tenant's silences and notification log to its
// other replicas: changes are sent to them, their full state is merged
// before the tenant's first notification, and the tenant's notifications
// wait its position among the replicas times -alertmanager.cluster.peer-timeout,
// so that the first replica sends and the others find the notification
// in the replicated log.
func (am *MultitenantAlertmanager) replicate(t *tenant) {
	st := newReplicatedState(t.id, am, t.logger, t.reg)
	t.silences.SetBroadcast(st.add(silencesKeyPrefix+t.id, t.silences).Broadcast)
	t.nflog.SetBroadcast(st.add(nflogKeyPrefix+t.id, t.nflog).Broadcast)
	am.statesMtx.Lock()
	am.states[t.id] = st
	am.statesMtx.Unlock()
	t.state = st
	t.release = func() {
		am.statesMtx.Lock()
		if am.states[t.id] == st {
			delete(am.states, t.id)
		}
		am.statesMtx.Unlock()
	}
	// Bounded by the client's timeout per replica, asked all at once.
	st.settle(context.Background())
	st.run()
	if store := am.stateStore(); store != nil {
		st.persistLoop(store, am.cfg.PersistInterval)
	}
	id, peerTimeout := t.id, am.peerTimeout
	t.wait = func() time.Duration { return time.Duration(am.ring.position(id)) * peerTimeout }
}

// stateOf returns the replicated state of a tenant running here, or nil.
func (am *MultitenantAlertmanager) stateOf(tenantID string) *replicatedState {
	am.statesMtx.Lock()
	defer am.statesMtx.Unlock()
	return am.states[tenantID]
}
