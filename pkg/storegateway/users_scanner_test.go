package storegateway

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
)

// With -blocks-storage.users-scanner.strategy=user_index, the tenants
// synced are those of the compactor's user index while it is fresh, not
// the bucket's folders.
func TestUsersScannerSynced(t *testing.T) {
	bkt := newBucket(t)
	val := func(int, int64) float64 { return 1 }
	ids := map[string]ulid.ULID{}
	for _, tenant := range []string{"t1", "t2"} {
		ids[tenant] = uploadBlock(t, bkt, tenant, writeBlock(t, asSeries(testSeries(0, val))), true)
	}
	idx := &users.Index{Version: 1, UpdatedAt: time.Now().Unix(), Active: []string{"t1"}}
	if err := users.WriteIndex(context.Background(), bkt, idx); err != nil {
		t.Fatal(err)
	}
	scanner, err := users.NewScanner(users.Config{Strategy: users.StrategyUserIndex, MaxStalePeriod: time.Hour}, bkt, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewBucketStore(testConfig(t), bkt, nil, prometheus.NewPedanticRegistry(), WithUsersScanner(scanner))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	syncStore(t, s)
	if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{ids["t1"]}) {
		t.Fatalf("t1 of the user index: loaded %v, want %s", got, ids["t1"])
	}
	if got := s.Blocks("t2"); len(got) != 0 {
		t.Fatalf("t2 is not in the user index yet, but %v were loaded", got)
	}
}
