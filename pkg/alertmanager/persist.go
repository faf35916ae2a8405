package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/cluster/clusterpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
)

// persistTimeout bounds one write of a tenant's state, Cortex's.
const persistTimeout = 30 * time.Second

// encodeFullState is Cortex's FullStateDesc of parts: field 1 holding
// Alertmanager's clusterpb.FullState, so that the objects are Cortex's.
func encodeFullState(parts []*alertmanagerpb.Part) ([]byte, error) {
	fs := &clusterpb.FullState{}
	for _, p := range parts {
		fs.Parts = append(fs.Parts, &clusterpb.Part{Key: p.GetKey(), Data: p.GetData()})
	}
	b, err := proto.Marshal(fs)
	if err != nil {
		return nil, err
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), b), nil
}

// decodeFullState reads encodeFullState's format.
func decodeFullState(b []byte) ([]*alertmanagerpb.Part, error) {
	fs := &clusterpb.FullState{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			if err := proto.Unmarshal(v, fs); err != nil {
				return nil, err
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	out := make([]*alertmanagerpb.Part, 0, len(fs.GetParts()))
	for _, p := range fs.GetParts() {
		out = append(out, &alertmanagerpb.Part{Key: p.GetKey(), Data: p.GetData()})
	}
	return out, nil
}

// stateStore is the alertmanager storage when it keeps tenants' states
// (an object storage backend), else nil.
func (am *MultitenantAlertmanager) stateStore() alertstore.StateStore {
	ss, _ := am.store.(alertstore.StateStore)
	return ss
}

// persistLoop writes the tenant's full state to the storage every
// -alertmanager.persist-interval while this instance is its first replica
// (so that one replica writes it, as in Cortex), until stop.
func (s *replicatedState) persistLoop(store alertstore.StateStore, interval time.Duration) {
	s.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				if !s.am.ring.first(s.tenant) {
					continue
				}
				if err := s.persist(store); err != nil {
					s.logger.Error("failed to persist the tenant's state to the alertmanager storage", "err", err)
				}
			}
		}
	})
}

func (s *replicatedState) persist(store alertstore.StateStore) error {
	s.persists.Inc()
	parts, err := s.full()
	if err == nil {
		var b []byte
		if b, err = encodeFullState(parts); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), persistTimeout)
			defer cancel()
			err = store.SetFullState(ctx, s.tenant, b)
		}
	}
	if err != nil {
		s.persistFailures.Inc()
	}
	return err
}

// restore merges the tenant's state from the storage, when no other
// replica gave it: logged, never fatal.
func (s *replicatedState) restore(ctx context.Context, store alertstore.StateStore) {
	ctx, cancel := context.WithTimeout(ctx, persistTimeout)
	defer cancel()
	b, err := store.GetFullState(ctx, s.tenant)
	if errors.Is(err, alertstore.ErrNotFound) {
		s.logger.Info("no state for the tenant in the alertmanager storage; continuing with the local state")
		return
	}
	var parts []*alertmanagerpb.Part
	if err == nil {
		parts, err = decodeFullState(b)
	}
	for _, p := range parts {
		if err != nil {
			break
		}
		err = s.merge(p)
	}
	if err != nil {
		s.logger.Warn("failed to read the tenant's state from the alertmanager storage; continuing with the local state", "err", err)
		return
	}
	s.logger.Info("state read from the alertmanager storage", "parts", len(parts))
}

// deleteUnusedStates removes the stored states of the tenants that have
// no configuration any more (users are all the configured tenants), as
// Cortex does; tenants this instance may not serve are left alone.
func (am *MultitenantAlertmanager) deleteUnusedStates(ctx context.Context, store alertstore.StateStore, users []string) {
	configured := make(map[string]bool, len(users))
	for _, u := range users {
		configured[u] = true
	}
	withState, err := store.ListUsersWithFullState(ctx)
	if err != nil {
		am.logger.Warn("failed to list the tenants with a state in the alertmanager storage", "err", err)
		return
	}
	for _, u := range withState {
		if configured[u] || !am.allowed.IsAllowed(u) {
			continue
		}
		if err := store.DeleteFullState(ctx, u); err != nil {
			am.logger.Warn("failed to delete the state of a tenant without configuration", "tenant", u, "err", err)
			continue
		}
		am.logger.Info("deleted the stored state of a tenant without configuration", "tenant", u)
	}
}

// validatePersistInterval is Cortex's check of -alertmanager.persist-interval.
func validatePersistInterval(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("-alertmanager.persist-interval must be positive, got %s", d)
	}
	return nil
}
