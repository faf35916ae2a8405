package cache_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// A multi-level cache reads the second level for what the first misses,
// writes what it found there back to the first (at most
// -max-backfill-items per write), and writes to every level.
func TestMultiLevelReadsDownAndBackfills(t *testing.T) {
	l1 := cache.NewInMemory("l1", 1<<20, 1<<20)
	l2 := cache.NewInMemory("l2", 1<<20, 1<<20)
	reg := prometheus.NewPedanticRegistry()
	ml := cache.NewMultiLevel("test", "test_cache", cache.MultiLevelConfig{MaxAsyncConcurrency: 1, MaxAsyncBufferSize: 10, MaxBackfillItems: 2}, time.Hour, reg, l1, l2)
	ctx := context.Background()

	l1.Store(map[string][]byte{"a": []byte("1")}, 0)
	l2.Store(map[string][]byte{"b": []byte("2"), "c": []byte("3"), "d": []byte("4")}, 0)
	got := ml.Fetch(ctx, []string{"a", "b", "c", "d", "e"})
	if len(got) != 4 || string(got["a"]) != "1" || string(got["b"]) != "2" || string(got["d"]) != "4" {
		t.Fatalf("fetched %v", got)
	}
	testkit.Eventually(t, 10*time.Second, "two of the second level's items backfilled into the first", func() bool {
		return len(l1.Fetch(ctx, []string{"b", "c", "d"})) == 2
	})
	if n := testkit.MetricSum(t, reg, "cortex_store_multilevel_test_cache_backfill_dropped_items_total"); n != 1 {
		t.Fatalf("backfill dropped %v items, want 1 past -max-backfill-items=2", n)
	}

	ml.Store(map[string][]byte{"new": []byte("x")}, time.Hour)
	testkit.Eventually(t, 10*time.Second, "a write in both levels", func() bool {
		return len(l1.Fetch(ctx, []string{"new"})) == 1 && len(l2.Fetch(ctx, []string{"new"})) == 1
	})

	if single := cache.NewMultiLevel("one", "one_cache", cache.MultiLevelConfig{}, 0, nil, l1); single != cache.Cache(l1) {
		t.Fatal("a single level is not used as it is")
	}
}

func TestMultiLevelConfigValidated(t *testing.T) {
	for _, tc := range []struct {
		cfg  cache.MultiLevelConfig
		flag string
	}{
		{cache.MultiLevelConfig{MaxAsyncConcurrency: 0, MaxAsyncBufferSize: 1, MaxBackfillItems: 1}, "-x.multilevel.max-async-concurrency"},
		{cache.MultiLevelConfig{MaxAsyncConcurrency: 1, MaxAsyncBufferSize: 0, MaxBackfillItems: 1}, "-x.multilevel.max-async-buffer-size"},
		{cache.MultiLevelConfig{MaxAsyncConcurrency: 1, MaxAsyncBufferSize: 1, MaxBackfillItems: 0}, "-x.multilevel.max-backfill-items"},
	} {
		if err := tc.cfg.Validate("x.multilevel."); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.flag)
		}
	}
}
