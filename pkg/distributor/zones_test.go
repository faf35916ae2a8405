package distributor

import (
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// zoneTestSeries is a write request of n series of one sample each.
func zoneTestSeries(n int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	now := nowMs()
	for i := range n {
		req.Timeseries = append(req.Timeseries, series([]int64{now}, "__name__", "zone_test", "i", fmt.Sprint(i)))
	}
	return req
}

// holders waits until the tenant's series is on want ingesters and returns
// their indexes.
func (c *cluster) holders(tenantID, s string, want int) []int {
	c.t.Helper()
	var idx []int
	testkit.EventuallyNil(c.t, 5*time.Second, fmt.Sprintf("series %s of %s on %d ingesters", s, tenantID, want), func() error {
		idx = idx[:0]
		for i, f := range c.ingesters {
			if f.samples(tenantID, s) > 0 {
				idx = append(idx, i)
			}
		}
		if len(idx) != want {
			return fmt.Errorf("it is on %v", idx)
		}
		return nil
	})
	return idx
}

func TestZoneAwareReplicationSpansEveryZone(t *testing.T) {
	const zones = 3
	c := newCluster(t, clusterOpts{ingesters: 6, rf: 3, zones: zones})
	req := zoneTestSeries(200)
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", r.StatusCode, body(t, r))
	}
	for _, s := range req.Timeseries {
		name := seriesString(s.Labels)
		got := map[string]bool{}
		for _, i := range c.holders(testTenant, name, 3) {
			got[zoneOf(i, zones)] = true
		}
		if len(got) != zones {
			t.Fatalf("series %s: replicas in zones %v, want one in each of the %d zones", name, got, zones)
		}
	}
	// The ring itself places every token's replication set in 3 zones.
	for key := uint32(0); key < 1<<31; key += 1 << 24 {
		rs, err := c.d.ring.Get(key, ring.WriteNoExtend, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(rs.GetIDs()); n != 3 {
			t.Fatalf("token %d: %d instances, want 3", key, n)
		}
		if z := rs.ZoneCount(); z != zones {
			t.Fatalf("token %d: replication set spans %d zones, want %d", key, z, zones)
		}
	}
}

func TestZoneAwareReplicationSurvivesLosingAZone(t *testing.T) {
	const zones = 3
	c := newCluster(t, clusterOpts{ingesters: 6, rf: 3, zones: zones})
	// Both ingesters of zone-a refuse every push, as if the zone were gone.
	for i, f := range c.ingesters {
		if zoneOf(i, zones) == "zone-a" {
			f.msg = "zone down"
			f.fail.Store(uint32(codes.Unavailable))
		}
	}
	req := zoneTestSeries(100)
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push with zone-a down: %d %s, want 204 (two of three replicas make the quorum)", r.StatusCode, body(t, r))
	}
	for _, s := range req.Timeseries {
		name := seriesString(s.Labels)
		for _, i := range c.holders(testTenant, name, 2) {
			if z := zoneOf(i, zones); z == "zone-a" {
				t.Fatalf("series %s stored in %s, which refused every push", name, z)
			}
		}
	}

	// Without zone awareness, a series may have two replicas in one zone:
	// losing that zone loses the quorum for some series.
	plain := newCluster(t, clusterOpts{ingesters: 6, rf: 3})
	for i, f := range plain.ingesters {
		if zoneOf(i, zones) == "zone-a" {
			f.msg = "zone down"
			f.fail.Store(uint32(codes.Unavailable))
		}
	}
	if r := plain.push(zoneTestSeries(100)); r.StatusCode == http.StatusNoContent {
		t.Fatal("without zone awareness, losing two of six ingesters still stored every series on a quorum; the zone-aware test above proves nothing")
	}
}

// instanceIndexes maps the instances of a ring to the cluster's ingester indexes.
func (c *cluster) instanceIndexes(r ring.ReadRing) []int {
	c.t.Helper()
	rs, err := r.GetAllHealthy(ring.Write)
	if err != nil {
		c.t.Fatal(err)
	}
	var idx []int
	for i, f := range c.ingesters {
		if rs.Includes(f.addr) {
			idx = append(idx, i)
		}
	}
	return idx
}

func TestShuffleShardingWritesOnlyToTheTenantsShard(t *testing.T) {
	const zones = 3
	c := newCluster(t, clusterOpts{
		ingesters: 6, rf: 3, zones: zones,
		cfg:    func(cfg *Config) { cfg.ShardingStrategy = ShardingStrategyShuffle },
		limits: func(l *validation.Limits) { l.IngestionTenantShardSize = 3 },
	})
	shard := c.instanceIndexes(c.d.ring.ShuffleShard(testTenant, 3))
	if len(shard) != 3 {
		t.Fatalf("shuffle shard of size 3 has ingesters %v", shard)
	}
	shardZones := map[string]bool{}
	for _, i := range shard {
		shardZones[zoneOf(i, zones)] = true
	}
	if len(shardZones) != zones {
		t.Fatalf("zone-aware shuffle shard %v spans zones %v, want all %d", shard, shardZones, zones)
	}

	req := zoneTestSeries(100)
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", r.StatusCode, body(t, r))
	}
	for _, s := range req.Timeseries {
		name := seriesString(s.Labels)
		if got := c.holders(testTenant, name, 3); !slices.Equal(got, shard) {
			t.Fatalf("series %s on ingesters %v, want the tenant's shard %v", name, got, shard)
		}
	}
	for i, f := range c.ingesters {
		if !slices.Contains(shard, i) && f.seriesCount(testTenant) != 0 {
			t.Fatalf("ingester %d, outside the tenant's shard %v, got %d of its series", i, shard, f.seriesCount(testTenant))
		}
	}

	// Another tenant's series go to that tenant's own shard.
	other := "team-b"
	otherShard := c.instanceIndexes(c.d.ring.ShuffleShard(other, 3))
	r := serve(c.handler, encodeV1(t, zoneTestSeries(50)), map[string]string{tenant.HeaderName: other})
	if r.StatusCode != http.StatusNoContent {
		t.Fatalf("push of %s: %d %s", other, r.StatusCode, body(t, r))
	}
	for i, f := range c.ingesters {
		if in := slices.Contains(otherShard, i); !in && f.seriesCount(other) != 0 {
			t.Fatalf("ingester %d, outside %s's shard %v, got its series", i, other, otherShard)
		}
	}
}

func TestShardSizeIgnoredWithTheDefaultStrategy(t *testing.T) {
	c := newCluster(t, clusterOpts{
		ingesters: 6, rf: 3, zones: 3,
		limits: func(l *validation.Limits) { l.IngestionTenantShardSize = 3 },
	})
	if r := c.push(zoneTestSeries(200)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", r.StatusCode, body(t, r))
	}
	testkit.EventuallyNil(t, 5*time.Second, "every ingester holding some of the tenant's series", func() error {
		for i, f := range c.ingesters {
			if f.seriesCount(testTenant) == 0 {
				return fmt.Errorf("ingester %d holds none", i)
			}
		}
		return nil
	})
}

func TestShardingStrategyFlag(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("distributor", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if cfg.ShardingStrategy != "default" {
		t.Fatalf("default -distributor.sharding-strategy is %q, want default", cfg.ShardingStrategy)
	}
	if err := fs.Parse([]string{"-distributor.sharding-strategy=shuffle-sharding"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.ShardingStrategy = "zones"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `-distributor.sharding-strategy must be "default" or "shuffle-sharding", got "zones"`) {
		t.Fatalf("Validate() = %v", err)
	}

	l := defaultLimits()
	l.IngestionTenantShardSize = -1
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "-distributor.ingestion-tenant-shard-size must not be negative") {
		t.Fatalf("Limits.Validate() = %v", err)
	}
}
