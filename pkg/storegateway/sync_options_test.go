package storegateway

import (
	"flag"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/tenantfilter"
)

// -store-gateway.enabled-tenants and -disabled-tenants: a tenant left out
// is neither listed nor loaded, and its loaded blocks are dropped when a
// restart leaves it out.
func TestAllowedTenantsSynced(t *testing.T) {
	bkt := newBucket(t)
	val := func(int, int64) float64 { return 1 }
	ids := map[string]ulid.ULID{}
	for _, tenant := range []string{"t1", "t2", "t3"} {
		ids[tenant] = uploadBlock(t, bkt, tenant, writeBlock(t, asSeries(testSeries(0, val))), true)
	}
	cfg := testConfig(t)
	s, err := NewBucketStore(cfg, bkt, nil, prometheus.NewPedanticRegistry(),
		WithAllowedTenants(tenantfilter.New([]string{"t1", "t2"}, []string{"t2"})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	syncStore(t, s)
	if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{ids["t1"]}) {
		t.Fatalf("enabled tenant t1: loaded %v, want %s", got, ids["t1"])
	}
	for _, tenant := range []string{"t2", "t3"} {
		if got := s.Blocks(tenant); len(got) != 0 {
			t.Fatalf("tenant %s is not allowed but %v were loaded", tenant, got)
		}
	}

	// The same sync directory, t1 now disabled: its local copy goes.
	s2, err := NewBucketStore(cfg, bkt, nil, prometheus.NewPedanticRegistry(),
		WithAllowedTenants(tenantfilter.New(nil, []string{"t1"})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	syncStore(t, s2)
	if got := s2.Blocks("t1"); len(got) != 0 {
		t.Fatalf("disabled tenant t1: loaded %v", got)
	}
	if got := s2.Blocks("t3"); !reflect.DeepEqual(got, []ulid.ULID{ids["t3"]}) {
		t.Fatalf("t3: loaded %v, want %s", got, ids["t3"])
	}
}

// -blocks-storage.bucket-store.ignore-blocks-within leaves out the blocks
// whose samples start too recently, -ignore-blocks-before those whose
// samples all end too long ago, through a bucket listing and the bucket
// index alike; a loaded block that ages past -ignore-blocks-before is
// dropped.
func TestIgnoreBlocksWithinAndBefore(t *testing.T) {
	for _, useIndex := range []bool{false, true} {
		name := "listing"
		if useIndex {
			name = "bucket index"
		}
		t.Run(name, func(t *testing.T) {
			bkt := newBucket(t)
			val := func(int, int64) float64 { return 1 }
			now := time.Now().UnixMilli()
			old := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(now-72*hour, val))), true)    // ends 70h ago
			middle := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(now-24*hour, val))), true) // starts 24h ago
			recent := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(now-hour, val))), true)    // starts 1h ago
			cfg := testConfig(t)
			if useIndex {
				writeIndex(t, bkt, "t1")
				cfg.BucketIndex = BucketIndexConfig{Enabled: true, UpdateOnErrorInterval: time.Minute, IdleTimeout: time.Hour}
			}
			cfg.IgnoreBlocksWithin = 10 * time.Hour
			cfg.IgnoreBlocksBefore = 48 * time.Hour
			s, _ := newStore(t, cfg, bkt)
			syncStore(t, s)
			if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{middle}) {
				t.Fatalf("loaded %v, want only %s (old %s and recent %s ignored)", got, middle, old, recent)
			}

			// The middle block ends 22h ago: past -ignore-blocks-before=12h.
			s.cfg.IgnoreBlocksBefore = 12 * time.Hour
			syncStore(t, s)
			if got := s.Blocks("t1"); len(got) != 0 {
				t.Fatalf("loaded %v after -ignore-blocks-before left every block out", got)
			}
		})
	}
}

// The recursive discovery strategy lists every object of a tenant at once
// and reads only the files it found: no read of a missing deletion mark or
// of a partial block's meta.json, which the concurrent strategy tries.
func TestRecursiveBlockDiscovery(t *testing.T) {
	bkt := newBucket(t)
	val := func(int, int64) float64 { return 1 }
	good := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(2*hour, val))), false) // partial
	marked := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(4*hour, val))), true)
	markForDeletion(t, bkt, "t1", marked, time.Now().Add(-7*time.Hour))

	gets := map[string]int64{}
	for _, strategy := range []string{DiscoveryConcurrent, DiscoveryRecursive} {
		cfg := testConfig(t)
		cfg.IgnoreDeletionMarksDelay = 6 * time.Hour
		cfg.BlockDiscoveryStrategy = strategy
		s, _ := newStore(t, cfg, bkt)
		syncStore(t, s)
		if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{good}) {
			t.Fatalf("%s: loaded %v, want %s", strategy, got, good)
		}
		before := bkt.gets.Load()
		syncStore(t, s)
		gets[strategy] = bkt.gets.Load() - before
	}
	// Concurrent: three deletion marks tried, one meta.json read and one
	// tried (the partial block's). Recursive: the one deletion mark and
	// the one meta.json there are.
	if gets[DiscoveryConcurrent] != 5 || gets[DiscoveryRecursive] != 2 {
		t.Fatalf("whole-object reads per sync: %v, want concurrent 5, recursive 2", gets)
	}
}

func TestBlockDiscoveryStrategyValidated(t *testing.T) {
	cfg := testConfig(t)
	cfg.BlockDiscoveryStrategy = "scan"
	if _, err := NewBucketStore(cfg, newBucket(t), slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.block-discovery-strategy") {
		t.Fatalf("an unknown strategy: %v", err)
	}
	cfg.BlockDiscoveryStrategy = DiscoveryBucketIndex
	if _, err := NewBucketStore(cfg, newBucket(t), nil, nil); err == nil || !strings.Contains(err.Error(), "bucket index is enabled") {
		t.Fatalf("bucket_index without the bucket index: %v", err)
	}
	cfg.BucketIndex = BucketIndexConfig{Enabled: true, UpdateOnErrorInterval: time.Minute, IdleTimeout: time.Hour}
	if _, err := NewBucketStore(cfg, newBucket(t), nil, nil); err != nil {
		t.Fatalf("bucket_index with the bucket index: %v", err)
	}
}

// Cortex 1.21's bucket store type takes tsdb, the only one built; parquet
// is refused naming the flag.
func TestBucketStoreTypeValidated(t *testing.T) {
	var flags Config
	flags.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	if flags.BucketStoreType != "tsdb" {
		t.Fatalf("default bucket store type %q, want tsdb", flags.BucketStoreType)
	}
	cfg := testConfig(t)
	cfg.BucketStoreType = "parquet"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `-blocks-storage.bucket-store.bucket-store-type="parquet"`) {
		t.Fatalf("parquet: %v", err)
	}
}
