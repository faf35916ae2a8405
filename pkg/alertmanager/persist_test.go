package alertmanager

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
)

// TestFullStateIsCortexsFormat: the stored state is Cortex's FullStateDesc
// (field 1: Alertmanager's FullState, whose parts are key 1, data 2).
func TestFullStateIsCortexsFormat(t *testing.T) {
	b, err := encodeFullState([]*alertmanagerpb.Part{{Key: "sil:t", Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	part := []byte{0x0a, 5, 's', 'i', 'l', ':', 't', 0x12, 1, 'x'}
	fullState := append([]byte{0x0a, byte(len(part))}, part...)
	want := append([]byte{0x0a, byte(len(fullState))}, fullState...)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	parts, err := decodeFullState(append(b, 0x10, 0x01)) // an unknown field is skipped
	if err != nil || len(parts) != 1 || parts[0].GetKey() != "sil:t" || string(parts[0].GetData()) != "x" {
		t.Fatalf("decoded %v, %v", parts, err)
	}
	if _, err := decodeFullState([]byte{0x0a, 9}); err == nil {
		t.Fatal("a truncated state decodes")
	}
}

func newStateStore(t *testing.T) alertstore.StateStore {
	t.Helper()
	var st alertstore.Config
	st.Backend = bucket.Filesystem
	st.Filesystem.Directory = filepath.Join(t.TempDir(), "bucket")
	store, err := alertstore.NewStore(context.Background(), st, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss, ok := store.(alertstore.StateStore)
	if !ok {
		t.Fatalf("the filesystem store %T keeps no state", store)
	}
	return ss
}

// TestStatePersistsAndRestores: a tenant's silences written to the storage
// are merged into a replica that starts the tenant with no other replica
// to read them from; the states of tenants without configuration go.
func TestStatePersistsAndRestores(t *testing.T) {
	store := newStateStore(t)
	ctx := context.Background()
	if _, err := store.GetFullState(ctx, "tenant-a"); !errors.Is(err, alertstore.ErrNotFound) {
		t.Fatalf("state of a tenant never stored: %v", err)
	}
	am := &MultitenantAlertmanager{logger: slog.New(slog.DiscardHandler)}
	a, b := newSilences(t), newSilences(t)
	sa := newReplicatedState("tenant-a", am, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	sb := newReplicatedState("tenant-a", am, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	sa.add(silencesKeyPrefix+"tenant-a", a)
	sb.add(silencesKeyPrefix+"tenant-a", b)
	now := time.Now()
	sil := &silencepb.Silence{
		Matchers: []*silencepb.Matcher{{Name: "alertname", Pattern: "Maintenance", Type: silencepb.Matcher_EQUAL}},
		StartsAt: timestamppb.New(now), EndsAt: timestamppb.New(now.Add(time.Hour)),
		CreatedBy: "test", Comment: "planned",
	}
	if err := a.Set(ctx, sil); err != nil {
		t.Fatal(err)
	}
	if err := sa.persist(store); err != nil {
		t.Fatal(err)
	}
	sb.restore(ctx, store)
	if got, _, err := b.Query(ctx, silence.QIDs(sil.Id)); err != nil || len(got) != 1 {
		t.Fatalf("silence not restored from the storage: %v %v", got, err)
	}

	if err := store.SetFullState(ctx, "tenant-gone", []byte{}); err != nil {
		t.Fatal(err)
	}
	am.allowed = nil
	am.deleteUnusedStates(ctx, store, []string{"tenant-a"})
	users, err := store.ListUsersWithFullState(ctx)
	if err != nil || !slices.Equal(users, []string{"tenant-a"}) {
		t.Fatalf("tenants with a state after the cleanup: %v %v", users, err)
	}
}
