package querier

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// zoneCluster is six fake ingesters, two in each of three zones, on a
// zone-aware ring of replication factor 3, and a querier over them.
type zoneCluster struct {
	ingesters []*fakeIngester
	addrs     []string
	ring      *ring.Ring
	querier   *Querier
}

// newZoneCluster registers the ingesters two hours ago, except those in
// recent, registered a minute ago.
func newZoneCluster(t *testing.T, cfg Config, shardSize int, recent ...int) *zoneCluster {
	t.Helper()
	c := &zoneCluster{}
	logger := kitlog.New(slog.New(slog.DiscardHandler))
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), logger, nil)
	t.Cleanup(func() { _ = closer.Close() })
	tokens := ring.NewRandomTokenGeneratorWithSeed(7)
	desc := ring.NewDesc()
	var taken []uint32
	for i := range 6 {
		f := newFakeIngester()
		c.ingesters = append(c.ingesters, f)
		addr := serve(t, f)
		c.addrs = append(c.addrs, addr)
		tk := tokens.GenerateTokens(32, taken)
		taken = append(taken, tk...)
		slices.Sort(tk)
		registered := time.Now().Add(-2 * time.Hour)
		if slices.Contains(recent, i) {
			registered = time.Now().Add(-time.Minute)
		}
		desc.AddIngester(fmt.Sprintf("ingester-%d", i), addr, fmt.Sprintf("zone-%c", 'a'+i%3), tk, ring.ACTIVE, registered, false, time.Time{}, nil)
	}
	ctx := context.Background()
	if err := kv.CAS(ctx, "ring", func(any) (any, bool, error) { return desc, true, nil }); err != nil {
		t.Fatal(err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(ring.Config{HeartbeatTimeout: time.Hour, ReplicationFactor: 3, ZoneAwarenessEnabled: true}, "ingester", "ring", kv, ring.NewDefaultReplicationStrategy(), nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(ctx, r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, r) })
	c.ring = r

	var limits validation.Limits
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	limits.RegisterFlags(fs)
	limits.IngestionTenantShardSize = shardSize
	var clientCfg client.Config
	clientCfg.RegisterFlags(fs)
	q, err := New(cfg, clientCfg, nil, validation.NewOverrides(limits, nil), r, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(ctx, q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, q) })
	c.querier = q
	return c
}

// shard is the indexes of the ingesters of the tenant's shuffle shard.
func (c *zoneCluster) shard(t *testing.T, tenantID string, size int) []int {
	t.Helper()
	rs, err := c.ring.ShuffleShard(tenantID, size).GetAllHealthy(ring.Read)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for i, addr := range c.addrs {
		if rs.Includes(addr) {
			idx = append(idx, i)
		}
	}
	return idx
}

// readSet is the indexes of the ingesters the querier's replication set
// for the tenant's reads holds: those a query may ask.
func (c *zoneCluster) readSet(t *testing.T, tenantID string) []int {
	t.Helper()
	rs, err := c.querier.queryable.tenantRing(tenant.Inject(context.Background(), tenantID)).GetReplicationSetForOperation(ring.Read)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for i, addr := range c.addrs {
		if rs.Includes(addr) {
			idx = append(idx, i)
		}
	}
	return idx
}

// subset reports whether every element of a is in b.
func subset(a, b []int) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// asked is the indexes of the ingesters a query reached. Those of the
// last zone may be cancelled once two zones answered, before they are
// reached.
func (c *zoneCluster) asked() []int {
	var idx []int
	for i, f := range c.ingesters {
		if f.queries.Load() > 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

func shardConfig(lookback time.Duration) Config {
	cfg := defaultConfig()
	cfg.MinimizeIngesterRequests = false // ask every ingester of the replication set
	cfg.ShuffleShardIngesters = true
	cfg.ShuffleShardingIngestersLookbackPeriod = lookback
	return cfg
}

func TestQueriesAskOnlyTheTenantsShuffleShard(t *testing.T) {
	c := newZoneCluster(t, shardConfig(time.Hour), 3)
	shard := c.shard(t, "team-a", 3)
	if len(shard) != 3 {
		t.Fatalf("shuffle shard %v, want 3 ingesters", shard)
	}
	for _, i := range shard {
		c.ingesters[i].add("team-a", series(map[string]string{"__name__": "up", "job": "a"}, sample(1000, 1)))
	}
	got, err := selectAll(tenant.Inject(context.Background(), "team-a"), c.querier.queryable, "up")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{__name__="up", job="a"}`; len(got) != 1 || !slices.Equal(got[want], []float64{1000, 1}) {
		t.Fatalf("got %v, want %s with the sample 1 at 1000", got, want)
	}
	if set := c.readSet(t, "team-a"); !slices.Equal(set, shard) {
		t.Fatalf("the querier's read set for team-a is %v, want its shard %v", set, shard)
	}
	// A zone-aware quorum is two of the three zones.
	if asked := c.asked(); len(asked) < 2 || !subset(asked, shard) {
		t.Fatalf("the query reached ingesters %v, want two or three of the tenant's shard %v only", asked, shard)
	}
}

func TestShuffleShardLookbackAsksRecentlyJoinedIngesters(t *testing.T) {
	// Register a member of team-a's shard recently: before it joined, the
	// other ingester of its zone was in the shard and holds the series
	// written then, so the querier asks both.
	probe := newZoneCluster(t, shardConfig(time.Hour), 3)
	shard := probe.shard(t, "team-a", 3)
	joined := shard[0]
	previous := (joined + 3) % 6 // the other ingester of its zone
	c := newZoneCluster(t, shardConfig(time.Hour), 3, joined)
	if got := c.shard(t, "team-a", 3); !slices.Equal(got, shard) {
		t.Fatalf("the shard changed from %v to %v with registration times only", shard, got)
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(shard), previous)))
	if set := c.readSet(t, "team-a"); !slices.Equal(set, want) {
		t.Fatalf("the querier's read set for team-a is %v, want the shard %v and ingester %d, which held the shard's place in its zone before ingester %d joined within the lookback", set, shard, previous, joined)
	}
	if _, err := selectAll(tenant.Inject(context.Background(), "team-a"), c.querier.queryable, "up"); err != nil {
		t.Fatal(err)
	}
	if asked := c.asked(); !subset(asked, want) {
		t.Fatalf("the query reached ingesters %v, outside %v", asked, want)
	}

	// Past the lookback, the querier asks the shard alone.
	c = newZoneCluster(t, shardConfig(30*time.Second), 3, joined)
	if set := c.readSet(t, "team-a"); !slices.Equal(set, shard) {
		t.Fatalf("with a lookback of 30s, the read set is %v, want the shard %v", set, shard)
	}
}

func TestShuffleShardingOffAsksEveryIngester(t *testing.T) {
	for name, cfg := range map[string]Config{
		"default strategy": func() Config { c := shardConfig(time.Hour); c.ShuffleShardIngesters = false; return c }(),
		"no lookback":      shardConfig(0),
	} {
		t.Run(name, func(t *testing.T) {
			c := newZoneCluster(t, cfg, 3)
			if set := c.readSet(t, "team-a"); len(set) != 6 {
				t.Fatalf("the querier's read set for team-a is %v, want all 6 ingesters", set)
			}
		})
	}
}

func TestShuffleShardingLookbackValidation(t *testing.T) {
	cfg := shardConfig(-time.Minute)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-querier.shuffle-sharding-ingesters-lookback-period must not be negative") {
		t.Fatalf("Validate() = %v", err)
	}
	cfg = shardConfig(time.Hour)
	cfg.QueryIngestersWithin = 2 * time.Hour
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "-querier.shuffle-sharding-ingesters-lookback-period (1h0m0s) must be at least -querier.query-ingesters-within (2h0m0s)") {
		t.Fatalf("Validate() = %v", err)
	}
}

// The series of a zone-aware ring's replication set span every zone, and a
// query still answers with one zone's ingesters down.
func TestQueryWithAZoneDown(t *testing.T) {
	cfg := defaultConfig()
	c := newZoneCluster(t, cfg, 0)
	for i, f := range c.ingesters {
		f.add("team-a", series(map[string]string{"__name__": "up"}, sample(1000, 1)))
		if i%3 == 0 { // zone-a
			f.fail.Store(true)
		}
	}
	got, err := selectAll(tenant.Inject(context.Background(), "team-a"), c.querier.queryable, "up")
	if err != nil {
		t.Fatalf("query with zone-a down: %v", err)
	}
	if !slices.Equal(got[`{__name__="up"}`], []float64{1000, 1}) {
		t.Fatalf("got %v", got)
	}
}
