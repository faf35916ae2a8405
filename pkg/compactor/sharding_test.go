package compactor

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// Two compactors on one ring split the tenants: each tenant is compacted
// and cleaned up by exactly one of them.
func TestShardingSplitsTenants(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	var tenants []string
	for i := range 8 {
		tenant := fmt.Sprintf("tenant-%d", i)
		tenants = append(tenants, tenant)
		for range 2 {
			shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
		}
	}
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })

	var (
		compactors []*Compactor
		regs       []*prometheus.Registry
	)
	for i, id := range []string{"compactor-1", "compactor-2"} {
		cfg := testConfig(t)
		cfg.ShardingEnabled = true
		cfg.ShardingRing.InstanceID = id
		cfg.ShardingRing.HeartbeatPeriod = 100 * time.Millisecond
		cfg.ShardingRing.WaitStabilityMinDuration = 0
		cfg.DeletionDelay = time.Hour
		m, err := shardring.NewMember(cfg.ShardingRing.MemberConfig(), RingName, RingKey, store, "127.0.0.1", 9000+i, ring.ACTIVE, discard, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewPedanticRegistry()
		c, err := New(cfg, bkt, discard, reg, WithRing(m))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.joinRing(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.stopping(nil) })
		compactors = append(compactors, c)
		regs = append(regs, reg)
	}
	testkit.Eventually(t, 10*time.Second, "both compactors see both in the ring", func() bool {
		return compactors[0].ring.Ring().InstancesCount() == 2 && compactors[1].ring.Ring().InstancesCount() == 2
	})

	owned := [2][]string{compactors[0].ownedTenants(tenants), compactors[1].ownedTenants(tenants)}
	if len(owned[0]) == 0 || len(owned[1]) == 0 {
		t.Fatalf("tenants owned: %v: one compactor owns none", owned)
	}
	all := slices.Concat(owned[0], owned[1])
	slices.Sort(all)
	if !slices.Equal(all, tenants) {
		t.Fatalf("owned %v, want each of %v exactly once", owned, tenants)
	}

	// The first compactor compacts and indexes its tenants only.
	if err := compactors[0].Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := compactors[0].Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range tenants {
		mine := slices.Contains(owned[0], tenant)
		_, err := bucketindex.ReadIndex(ctx, bkt, tenant)
		if mine != (err == nil) {
			t.Errorf("tenant %s (owned by compactor-1: %v): bucket index read: %v", tenant, mine, err)
		}
		want := 2 // the replicas, untouched
		if mine {
			want = 1 // merged, sources marked
		}
		if got := len(liveBlocks(t, bkt, tenant)); got != want {
			t.Errorf("tenant %s (owned by compactor-1: %v): %d live blocks, want %d", tenant, mine, got, want)
		}
	}
	if err := compactors[1].Compact(ctx); err != nil {
		t.Fatal(err)
	}
	for i, reg := range regs {
		if got := testkit.MetricSum(t, reg, "cortex_compactor_group_compactions_total"); got != float64(len(owned[i])) {
			t.Errorf("compactor-%d: %v compactions, want one per owned tenant (%d)", i+1, got, len(owned[i]))
		}
	}
	for _, tenant := range tenants {
		if got := len(liveBlocks(t, bkt, tenant)); got != 1 {
			t.Errorf("tenant %s: %d live blocks after both compacted, want 1", tenant, got)
		}
	}

	// The ring page is the ring's status page, listing both.
	rec := httptest.NewRecorder()
	compactors[0].RingHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/compactor/ring", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != 200 || !strings.Contains(string(body), "compactor-1") || !strings.Contains(string(body), "compactor-2") {
		t.Fatalf("/compactor/ring: %d %s", rec.Code, body)
	}

	// Once one leaves, the other owns every tenant.
	if err := compactors[1].stopping(nil); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "compactor-1 owns every tenant once compactor-2 left", func() bool {
		return slices.Equal(compactors[0].ownedTenants(tenants), tenants)
	})
}

func TestRingPageWithoutSharding(t *testing.T) {
	c, err := New(testConfig(t), newFSBucket(t), discard, prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	c.RingHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/compactor/ring", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != 200 || !strings.Contains(string(body), "sharding is disabled") {
		t.Fatalf("/compactor/ring without sharding: %d %s", rec.Code, body)
	}
}

func TestShardingNeedsRing(t *testing.T) {
	cfg := testConfig(t)
	cfg.ShardingEnabled = true
	if _, err := New(cfg, newFSBucket(t), discard, prometheus.NewPedanticRegistry()); err == nil || !strings.Contains(err.Error(), "-compactor.sharding-enabled") {
		t.Fatalf("got %v, want an error naming -compactor.sharding-enabled", err)
	}
}
