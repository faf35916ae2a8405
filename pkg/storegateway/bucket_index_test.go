package storegateway

import (
	"context"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
)

func writeIndex(t *testing.T, bkt *countingBucket, tenant string) {
	t.Helper()
	idx, _, err := bucketindex.NewUpdater(bkt, tenant, slog.New(slog.DiscardHandler)).UpdateIndex(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bucketindex.WriteIndex(context.Background(), bkt, tenant, idx); err != nil {
		t.Fatal(err)
	}
}

func sortedIDs(ids ...ulid.ULID) []ulid.ULID {
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	return ids
}

// With the bucket index enabled, a store-gateway serves the blocks the
// index names (not those only the bucket listing shows), reads meta.json
// only for blocks it has not loaded, and serves nothing of a tenant whose
// index is gone.
func TestBlocksFoundThroughBucketIndex(t *testing.T) {
	bkt := newBucket(t)
	val := func(i int, t int64) float64 { return 1 }
	a := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	b := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(2*hour, val))), true)
	marked := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(4*hour, val))), true)
	markForDeletion(t, bkt, "t1", marked, time.Now().Add(-7*time.Hour))
	uploadBlock(t, bkt, "t2", writeBlock(t, asSeries(testSeries(0, val))), true) // t2 has no index
	writeIndex(t, bkt, "t1")

	cfg := testConfig(t)
	cfg.IgnoreDeletionMarksDelay = 6 * time.Hour
	cfg.BucketIndex = BucketIndexConfig{Enabled: true, UpdateOnErrorInterval: time.Minute, IdleTimeout: time.Hour}
	s, _ := newStore(t, cfg, bkt)
	syncStore(t, s)
	if got, want := s.Blocks("t1"), sortedIDs(a, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("t1 loaded %v, want %v (marked %s not served)", got, want, marked)
	}
	if got := s.Blocks("t2"); len(got) != 0 {
		t.Fatalf("t2 has no bucket index but %v were loaded", got)
	}

	// A new block is served once the index names it; the loaded ones are
	// not read again: one read of each tenant's bucket index, one of the
	// new meta.json and one of its index file.
	c := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(6*hour, val))), true)
	syncStore(t, s)
	if got := s.Blocks("t1"); slices.Contains(got, c) {
		t.Fatalf("block %s loaded before the bucket index names it", c)
	}
	writeIndex(t, bkt, "t1")
	before := bkt.gets.Load()
	syncStore(t, s)
	if got, want := s.Blocks("t1"), sortedIDs(a, b, c); !reflect.DeepEqual(got, want) {
		t.Fatalf("t1 loaded %v, want %v", got, want)
	}
	if n := bkt.gets.Load() - before; n != 4 {
		t.Fatalf("the sync made %d whole-object reads, want 4 (two bucket indexes, new meta.json, new block index)", n)
	}

	if err := bucketindex.DeleteIndex(context.Background(), bkt, "t1"); err != nil {
		t.Fatal(err)
	}
	syncStore(t, s)
	if got := s.Blocks("t1"); len(got) != 0 {
		t.Fatalf("t1's index is gone but %v are served", got)
	}
}

// An unreadable index keeps what is loaded: a transient error does not
// empty the store-gateway.
func TestUnreadableBucketIndexKeepsBlocks(t *testing.T) {
	bkt := newBucket(t)
	val := func(i int, t int64) float64 { return 1 }
	a := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	writeIndex(t, bkt, "t1")
	cfg := testConfig(t)
	cfg.BucketIndex = BucketIndexConfig{Enabled: true, UpdateOnErrorInterval: time.Minute, IdleTimeout: time.Hour}
	s, _ := newStore(t, cfg, bkt)
	syncStore(t, s)

	failing := bucketindex.IndexCompressedFilename
	bkt.failing.Store(&failing)
	if err := s.SyncBlocks(context.Background()); err == nil {
		t.Fatal("sync with an unreadable bucket index reported no error")
	}
	if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{a}) {
		t.Fatalf("loaded %v after a failed index read, want %s kept", got, a)
	}
}

// A block filter (the store-gateway's share of the sharding ring) limits
// what is loaded, and a selected querier reports which of the asked blocks
// it holds.
func TestBlockFilterAndSelectedQuerier(t *testing.T) {
	bkt := newBucket(t)
	val := func(i int, t int64) float64 { return float64(i) }
	a := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	b := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(2*hour, val))), true)
	s, _ := newStore(t, testConfig(t), bkt)
	s.SetBlockFilter(func(tenant string, id ulid.ULID, loaded bool) bool { return id == a })
	syncStore(t, s)
	if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{a}) {
		t.Fatalf("loaded %v, want only %s", got, a)
	}

	q, held, err := s.SelectedQuerier("t1", minT, maxT, []ulid.ULID{a, b})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if !reflect.DeepEqual(held, []ulid.ULID{a}) {
		t.Fatalf("held %v, want %s (%s is not loaded here)", held, a, b)
	}
	_, got := selectAll(t, q, nil, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
	for name, samples := range got {
		for _, smp := range samples {
			if smp.T >= 2*hour {
				t.Fatalf("series %s has a sample at %d from the unselected block", name, smp.T)
			}
		}
	}
	if len(got) == 0 {
		t.Fatal("no series from the selected block")
	}
}
