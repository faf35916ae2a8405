package alertstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	dskittenant "github.com/grafana/dskit/tenant"
)

// StateStore is a store that also keeps each tenant's full Alertmanager
// state (silences and notification log), which the sharded alertmanager
// persists every -alertmanager.persist-interval and reads back when no
// other replica of a tenant has it. The object storage backends are; the
// configs service and the local directory are not, as in Cortex.
type StateStore interface {
	// ListUsersWithFullState returns the tenants with a stored state.
	ListUsersWithFullState(ctx context.Context) ([]string, error)
	// GetFullState returns the tenant's state or ErrNotFound.
	GetFullState(ctx context.Context, user string) ([]byte, error)
	// SetFullState creates or replaces the tenant's state.
	SetFullState(ctx context.Context, user string, state []byte) error
	// DeleteFullState removes the tenant's state; a missing one is not an
	// error.
	DeleteFullState(ctx context.Context, user string) error
}

// The states are at alertmanager/<tenant>/fullstate, Cortex's objects: a
// Cortex bucket's states are read here, and the other way round.
const (
	statePrefix   = "alertmanager/"
	fullStateName = "fullstate"
)

func stateObject(user string) string { return statePrefix + user + "/" + fullStateName }

// ListUsersWithFullState lists alertmanager/.
func (s *BucketStore) ListUsersWithFullState(ctx context.Context) ([]string, error) {
	var out []string
	err := s.bkt.Iter(ctx, statePrefix, func(key string) error {
		user := strings.TrimSuffix(strings.TrimPrefix(key, statePrefix), "/")
		if dskittenant.ValidTenantID(user) == nil {
			out = append(out, user)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s in the alertmanager storage bucket: %w", statePrefix, err)
	}
	return out, nil
}

// GetFullState downloads alertmanager/<user>/fullstate.
func (s *BucketStore) GetFullState(ctx context.Context, user string) ([]byte, error) {
	r, err := s.bkt.Get(ctx, stateObject(user))
	if s.bkt.IsObjNotFoundErr(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s from the alertmanager storage bucket: %w", stateObject(user), err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s from the alertmanager storage bucket: %w", stateObject(user), err)
	}
	return b, nil
}

// SetFullState uploads alertmanager/<user>/fullstate.
func (s *BucketStore) SetFullState(ctx context.Context, user string, state []byte) error {
	if err := s.bkt.Upload(ctx, stateObject(user), bytes.NewReader(state)); err != nil {
		return fmt.Errorf("writing %s to the alertmanager storage bucket: %w", stateObject(user), err)
	}
	return nil
}

// DeleteFullState deletes alertmanager/<user>/fullstate.
func (s *BucketStore) DeleteFullState(ctx context.Context, user string) error {
	err := s.bkt.Delete(ctx, stateObject(user))
	if err != nil && !s.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("deleting %s from the alertmanager storage bucket: %w", stateObject(user), err)
	}
	return nil
}

func (s *lazyFilesystemStore) stateStore(create bool) (StateStore, error) {
	st, err := s.get(create)
	if st == nil || err != nil {
		return nil, err
	}
	ss, ok := st.(StateStore)
	if !ok {
		return nil, fmt.Errorf("the alertmanager storage %T keeps no state", st)
	}
	return ss, nil
}

func (s *lazyFilesystemStore) ListUsersWithFullState(ctx context.Context) ([]string, error) {
	st, err := s.stateStore(false)
	if st == nil || err != nil {
		return nil, err
	}
	return st.ListUsersWithFullState(ctx)
}

func (s *lazyFilesystemStore) GetFullState(ctx context.Context, user string) ([]byte, error) {
	st, err := s.stateStore(false)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, ErrNotFound
	}
	return st.GetFullState(ctx, user)
}

func (s *lazyFilesystemStore) SetFullState(ctx context.Context, user string, state []byte) error {
	st, err := s.stateStore(true)
	if err != nil {
		return err
	}
	return st.SetFullState(ctx, user, state)
}

func (s *lazyFilesystemStore) DeleteFullState(ctx context.Context, user string) error {
	st, err := s.stateStore(false)
	if st == nil || err != nil {
		return err
	}
	return st.DeleteFullState(ctx, user)
}
