package compactor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func TestCompactorOptionDefaults(t *testing.T) {
	var cfg Config
	fs := newFlagSet()
	cfg.RegisterFlags(fs)
	for name, def := range map[string]string{
		"compactor.consistency-delay":                 "0s",
		"compactor.meta-sync-concurrency":             "20",
		"compactor.block-files-concurrency":           "10",
		"compactor.blocks-fetch-concurrency":          "3",
		"compactor.enabled-tenants":                   "",
		"compactor.disabled-tenants":                  "",
		"compactor.sharding-strategy":                 "default",
		"compactor.auto-forget-delay":                 "2m0s",
		"compactor.ring.unregister-on-shutdown":       "true",
		"compactor.ring.wait-active-instance-timeout": "10m0s",
	} {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("flag -%s not registered", name)
			continue
		}
		if f.Value.String() != def {
			t.Errorf("-%s defaults to %q, want %q", name, f.Value.String(), def)
		}
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.ConsistencyDelay = -time.Second }, "-compactor.consistency-delay must not be negative"},
		{func(c *Config) { c.MetaSyncConcurrency = 0 }, "-compactor.meta-sync-concurrency must be at least 1"},
		{func(c *Config) { c.BlockFilesConcurrency = 0 }, "-compactor.block-files-concurrency must be at least 1"},
		{func(c *Config) { c.BlocksFetchConcurrency = 0 }, "-compactor.blocks-fetch-concurrency must be at least 1"},
		{func(c *Config) { c.ShardingStrategy = "zone" }, `-compactor.sharding-strategy="zone": unknown strategy`},
		{func(c *Config) { c.ShardingEnabled, c.ShardingRing.AutoForgetDelay = true, -time.Second }, "-compactor.auto-forget-delay must not be negative"},
		{func(c *Config) { c.ShardingEnabled, c.ShardingRing.WaitActiveInstanceTimeout = true, 0 }, "-compactor.ring.wait-active-instance-timeout must be positive"},
	} {
		var c Config
		c.RegisterFlags(newFlagSet())
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

// Only the tenants -compactor.enabled-tenants lists, less those of
// -compactor.disabled-tenants, are compacted and indexed.
func TestEnabledAndDisabledTenants(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	for _, tenant := range []string{"team-a", "team-b", "team-c"} {
		for range 2 {
			shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
		}
	}
	cfg := testConfig(t)
	cfg.EnabledTenants = []string{"team-a", "team-b"}
	cfg.DisabledTenants = []string{"team-b"}
	c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.starting(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]int{"team-a": 1, "team-b": 2, "team-c": 2} {
		if got := len(liveBlocks(t, bkt, tenant)); got != want {
			t.Errorf("tenant %s: %d live blocks, want %d", tenant, got, want)
		}
		_, err := bucketindex.ReadIndex(ctx, bkt, tenant)
		if indexed := err == nil; indexed != (tenant == "team-a") {
			t.Errorf("tenant %s: bucket index read: %v", tenant, err)
		}
	}
}

// Blocks younger than -compactor.consistency-delay are not compacted.
func TestConsistencyDelay(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	const tenant = "team-a"
	for range 2 {
		shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
	}
	cfg := testConfig(t)
	cfg.ConsistencyDelay = time.Hour
	c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.starting(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(liveBlocks(t, bkt, tenant)); got != 2 {
		t.Fatalf("%d live blocks with blocks cut just now and -compactor.consistency-delay=1h, want both left", got)
	}
	c.cfg.ConsistencyDelay = 0
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(liveBlocks(t, bkt, tenant)); got != 1 {
		t.Fatalf("%d live blocks without the delay, want the replicas merged into 1", got)
	}
}

// inFlightBucket counts the reads of block files in flight, and can hold
// each read until gate reads are in flight at once.
type inFlightBucket struct {
	objstore.Bucket
	gate int

	mu       sync.Mutex
	inFlight int
	peak     int
	reached  chan struct{}
}

func (b *inFlightBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if !strings.Contains(name, "/chunks/") && path.Base(name) != block.IndexFilename {
		return b.Bucket.Get(ctx, name)
	}
	b.mu.Lock()
	b.inFlight++
	b.peak = max(b.peak, b.inFlight)
	if b.gate > 0 && b.inFlight == b.gate {
		close(b.reached)
		b.gate = 0
	}
	reached := b.reached
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}()
	if reached != nil {
		select {
		case <-reached:
		case <-time.After(10 * time.Second):
			return nil, errors.New("the reads never overlapped")
		}
	}
	return b.Bucket.Get(ctx, name)
}

// -compactor.blocks-fetch-concurrency and -block-files-concurrency bound
// the block files a compaction downloads at once: one at a time with both
// at 1, and several at once (here 2 blocks of 2 files each) above.
func TestBlockFetchConcurrency(t *testing.T) {
	for _, tc := range []struct {
		blocks, files int
		gate          int // reads that must overlap
		maxPeak       int
	}{
		{blocks: 1, files: 1, maxPeak: 1},
		{blocks: 2, files: 2, gate: 4, maxPeak: 4},
	} {
		t.Run(fmt.Sprintf("blocks=%d,files=%d", tc.blocks, tc.files), func(t *testing.T) {
			ctx := context.Background()
			fs := newFSBucket(t)
			const tenant = "team-a"
			for range 3 {
				shipBlock(t, fs, tenant, 2, 0, 2*hour, testStep)
			}
			bkt := &inFlightBucket{Bucket: fs, gate: tc.gate}
			if tc.gate > 0 {
				bkt.reached = make(chan struct{})
			}
			cfg := testConfig(t)
			cfg.BlocksFetchConcurrency, cfg.BlockFilesConcurrency = tc.blocks, tc.files
			c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry())
			if err != nil {
				t.Fatal(err)
			}
			if err := c.starting(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Compact(ctx); err != nil {
				t.Fatal(err)
			}
			if got := len(liveBlocks(t, fs, tenant)); got != 1 {
				t.Fatalf("%d live blocks, want the 3 replicas merged into 1", got)
			}
			if bkt.peak > tc.maxPeak || (tc.gate > 0 && bkt.peak < tc.gate) {
				t.Fatalf("%d block files read at once, want %d to %d", bkt.peak, max(1, tc.gate), tc.maxPeak)
			}
		})
	}
}

func shardingTestCompactor(t *testing.T, bkt objstore.Bucket, store kv.Client, id string, port int, mod func(*Config), opts ...Option) *Compactor {
	t.Helper()
	cfg := testConfig(t)
	cfg.ShardingEnabled = true
	cfg.ShardingRing.InstanceID = id
	cfg.ShardingRing.HeartbeatPeriod = 50 * time.Millisecond
	cfg.ShardingRing.WaitStabilityMinDuration = 0
	if mod != nil {
		mod(&cfg)
	}
	m, err := shardring.NewMember(cfg.ShardingRing.MemberConfig(), RingName, RingKey, store, "127.0.0.1", port, ring.ACTIVE, discard, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry(), append(opts, WithRing(m))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.joinRing(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.stopping(nil) })
	return c
}

// With -compactor.sharding-strategy=shuffle-sharding, each tenant's
// compactor is taken from its shuffle shard of -compactor.tenant-shard-size
// compactors: still exactly one compactor per tenant, the one dskit's
// shuffle shard gives every reader of the ring.
func TestShuffleSharding(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	bkt := newFSBucket(t)
	var tenants []string
	for i := range 12 {
		tenants = append(tenants, fmt.Sprintf("tenant-%d", i))
	}
	shardSize := func(tenant string) float64 {
		if tenant == "tenant-0" {
			return 0.5 // a fraction of the 3 compactors: 2
		}
		return 1
	}
	var compactors []*Compactor
	for i := range 3 {
		compactors = append(compactors, shardingTestCompactor(t, bkt, store, fmt.Sprintf("compactor-%d", i), 9100+i,
			func(c *Config) { c.ShardingStrategy = "shuffle-sharding" }, WithTenantShardSize(shardSize)))
	}
	testkit.Eventually(t, 10*time.Second, "every compactor sees the 3", func() bool {
		for _, c := range compactors {
			if c.ring.Ring().InstancesCount() != 3 {
				return false
			}
		}
		return true
	})
	if got := compactors[0].tenantShardSize("tenant-0"); got != 2 {
		t.Errorf("tenant-0's shard of 0.5 of 3 compactors: %d, want 2", got)
	}
	owners := map[string][]string{}
	for _, c := range compactors {
		for _, tenant := range c.ownedTenants(tenants) {
			owners[tenant] = append(owners[tenant], c.ring.ID())
		}
	}
	for _, tenant := range tenants {
		if len(owners[tenant]) != 1 {
			t.Fatalf("tenant %s owned by %v, want exactly one compactor", tenant, owners[tenant])
		}
		size := 1
		if tenant == "tenant-0" {
			size = 2
		}
		shard := compactors[0].ring.Ring().ShuffleShard(tenant, size)
		rs, err := shard.GetAllHealthy(ringOp)
		if err != nil {
			t.Fatal(err)
		}
		var inShard []string
		for _, inst := range rs.Instances {
			inShard = append(inShard, inst.Id)
		}
		if !slices.Contains(inShard, owners[tenant][0]) {
			t.Errorf("tenant %s owned by %s, outside its shuffle shard %v", tenant, owners[tenant][0], inShard)
		}
	}
}

func ringInstances(t *testing.T, store kv.Client) []string {
	t.Helper()
	v, err := store.Get(context.Background(), RingKey)
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := v.(*ring.Desc)
	if desc == nil {
		return nil
	}
	var ids []string
	for id := range desc.Ingesters {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// A compactor whose heartbeat is older than -compactor.auto-forget-delay is
// removed from the ring by the others.
func TestAutoForgetDelay(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	err := store.CAS(context.Background(), RingKey, func(any) (any, bool, error) {
		desc := ring.NewDesc()
		inst := desc.AddIngester("crashed", "127.0.0.1:9999", "", []uint32{1}, ring.ACTIVE, time.Now().Add(-time.Hour), false, time.Time{}, nil)
		inst.Timestamp = time.Now().Add(-2 * time.Minute).Unix()
		desc.Ingesters["crashed"] = inst
		return desc, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	shardingTestCompactor(t, newFSBucket(t), store, "compactor-1", 9200, func(c *Config) {
		c.ShardingRing.AutoForgetDelay = time.Minute
	})
	testkit.Eventually(t, 10*time.Second, "the crashed compactor forgotten", func() bool {
		return slices.Equal(ringInstances(t, store), []string{"compactor-1"})
	})
}

// With -compactor.ring.unregister-on-shutdown=false, a stopped compactor
// stays in the ring.
func TestUnregisterOnShutdown(t *testing.T) {
	for _, unregister := range []bool{true, false} {
		t.Run(fmt.Sprint(unregister), func(t *testing.T) {
			store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
			t.Cleanup(func() { _ = closer.Close() })
			c := shardingTestCompactor(t, newFSBucket(t), store, "compactor-1", 9300, func(c *Config) {
				c.ShardingRing.UnregisterOnShutdown = unregister
			})
			if err := c.stopping(nil); err != nil {
				t.Fatal(err)
			}
			want := []string{"compactor-1"}
			if unregister {
				want = nil
			}
			if got := ringInstances(t, store); !slices.Equal(got, want) {
				t.Fatalf("ring after the compactor stopped: %v, want %v", got, want)
			}
		})
	}
}

// The compactor writes the bucket's user index; with sharding, only the
// compactor owning the index's name in the ring does.
func TestUserIndexWritten(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	shipBlock(t, bkt, "team-a", 2, 0, 2*hour, testStep)
	shipBlock(t, bkt, "team-b", 2, 0, 2*hour, testStep)
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	var compactors []*Compactor
	for i := range 2 {
		compactors = append(compactors, shardingTestCompactor(t, bkt, store, fmt.Sprintf("compactor-%d", i), 9400+i, nil,
			WithUserIndex(users.NewIndexUpdater(bkt, prometheus.NewPedanticRegistry()), time.Hour)))
	}
	testkit.Eventually(t, 10*time.Second, "both compactors see both", func() bool {
		return compactors[0].ring.Ring().InstancesCount() == 2 && compactors[1].ring.Ring().InstancesCount() == 2
	})
	var writer, other *Compactor
	for _, c := range compactors {
		if owned, err := c.owns(c.ring.Ring(), users.IndexFilename); err != nil {
			t.Fatal(err)
		} else if owned {
			writer = c
		} else {
			other = c
		}
	}
	if writer == nil || other == nil {
		t.Fatal("want exactly one compactor owning the user index")
	}
	other.updateUserIndex(ctx)
	if _, err := users.ReadIndex(ctx, bkt); !errors.Is(err, users.ErrIndexNotFound) {
		t.Fatalf("after the update of the compactor not owning it, reading the user index: %v, want none", err)
	}
	writer.updateUserIndex(ctx)
	idx, err := users.ReadIndex(ctx, bkt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(idx.Active, []string{"team-a", "team-b"}) || time.Since(idx.GetUpdatedAt()) > time.Minute {
		t.Fatalf("user index %+v, want team-a and team-b, written now", idx)
	}
}

// A running compactor writes the user index when it starts and every
// -blocks-storage.users-scanner.user-index.update-interval.
func TestUserIndexUpdatedEveryInterval(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	shipBlock(t, bkt, "team-a", 2, 0, 2*hour, testStep)
	c, err := New(testConfig(t), bkt, discard, prometheus.NewPedanticRegistry(),
		WithUserIndex(users.NewIndexUpdater(bkt, prometheus.NewPedanticRegistry()), 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(ctx, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, c) })
	active := func() []string {
		idx, err := users.ReadIndex(ctx, bkt)
		if err != nil {
			return nil
		}
		return idx.Active
	}
	testkit.Eventually(t, 10*time.Second, "the user index written at start", func() bool { return slices.Equal(active(), []string{"team-a"}) })
	shipBlock(t, bkt, "team-b", 2, 0, 2*hour, testStep)
	testkit.Eventually(t, 10*time.Second, "the user index updated with team-b", func() bool { return slices.Equal(active(), []string{"team-a", "team-b"}) })
}

// silentKV is a KV store whose watchers never hear of a change: a ring
// client on it never sees the instances that join after it started.
type silentKV struct{ kv.Client }

func (silentKV) WatchKey(ctx context.Context, _ string, _ func(any) bool) { <-ctx.Done() }

func (silentKV) WatchPrefix(ctx context.Context, _ string, _ func(string, any) bool) { <-ctx.Done() }

// A compactor not seen ACTIVE in the ring within
// -compactor.ring.wait-active-instance-timeout fails to start.
func TestWaitActiveInstanceTimeout(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	cfg := testConfig(t)
	cfg.ShardingEnabled = true
	cfg.ShardingRing.InstanceID = "compactor-1"
	cfg.ShardingRing.WaitStabilityMinDuration = 0
	cfg.ShardingRing.WaitActiveInstanceTimeout = 200 * time.Millisecond
	m, err := shardring.NewMember(cfg.ShardingRing.MemberConfig(), RingName, RingKey, silentKV{store}, "127.0.0.1", 9500, ring.ACTIVE, discard, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, newFSBucket(t), discard, prometheus.NewPedanticRegistry(), WithRing(m))
	if err != nil {
		t.Fatal(err)
	}
	err = c.joinRing(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not ACTIVE in the ring within -compactor.ring.wait-active-instance-timeout=200ms") {
		t.Fatalf("joining a ring that never shows the compactor: %v", err)
	}
}
