package storegateway

import (
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func (b *block) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tb != nil
}

// With -blocks-storage.bucket-store.index-header-lazy-loading-enabled a
// block's index is opened by the first query, not by the sync, and closed
// once no query used it for -index-header-lazy-loading-idle-timeout; the
// next query opens it again. An index a querier reads is never closed.
func TestLazyIndexLoading(t *testing.T) {
	bkt := newBucket(t)
	gs := testSeries(0, func(i int, _ int64) float64 { return float64(i) })
	id := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(gs)), true)
	cfg := testConfig(t)
	cfg.IndexHeaderLazyLoadingEnabled = true
	cfg.IndexHeaderLazyLoadingIdleTimeout = 200 * time.Millisecond
	s, reg := newStore(t, cfg, bkt)
	syncStore(t, s)
	b := s.blocks["t1"][id]
	if b.isOpen() {
		t.Fatal("the sync opened the block's index")
	}
	metric := func(name string) float64 { return testkit.MetricSum(t, reg, name) }

	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	q, err := s.Querier("t1", minT, maxT)
	if err != nil {
		t.Fatal(err)
	}
	names, got := selectAll(t, q, nil, up)
	if len(names) != 6 || !reflect.DeepEqual(got[gs[0].lset.String()], expected(gs[0], minT, maxT)) {
		t.Fatalf("first query: %d series", len(names))
	}
	if !b.isOpen() || metric("cortex_bucket_store_indexheader_lazy_load_total") != 1 {
		t.Fatal("the first query did not open the index")
	}
	// In use: not closed however long ago it was opened.
	s.unloadIdle(time.Now().Add(time.Hour))
	if !b.isOpen() {
		t.Fatal("an index a querier reads was closed")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the idle index to be closed", func() bool {
		return !b.isOpen() && metric("cortex_bucket_store_indexheader_lazy_unload_total") == 1
	})

	names, _ = selectAll(t, querier(t, s, "t1", minT, maxT), nil, up)
	if len(names) != 6 || metric("cortex_bucket_store_indexheader_lazy_load_total") != 2 {
		t.Fatalf("a query after the unload: %d series, %v loads", len(names), metric("cortex_bucket_store_indexheader_lazy_load_total"))
	}
}

// Without lazy loading the sync opens each index, which stays open.
func TestIndexOpenedAtSyncByDefault(t *testing.T) {
	bkt := newBucket(t)
	id := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, func(int, int64) float64 { return 1 }))), true)
	s, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, s)
	b := s.blocks["t1"][id]
	if !b.isOpen() {
		t.Fatal("the sync did not open the index")
	}
	s.unloadIdle(time.Now().Add(time.Hour))
	if !b.isOpen() {
		t.Fatal("without lazy loading the index was closed")
	}
}
