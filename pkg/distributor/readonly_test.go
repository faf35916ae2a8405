package distributor

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// setReadOnly sets the read-only flag of ingester i's ring entry, as
// POST /ingester/mode does, and waits until the distributor writes to
// writable ingesters only.
func (c *cluster) setReadOnly(i int, readOnly bool, writable int) {
	c.t.Helper()
	id := c.ingesters[i].id
	err := c.kv.CAS(context.Background(), "ring", func(in any) (any, bool, error) {
		desc := ring.GetOrCreateRingDesc(in)
		inst := desc.Ingesters[id]
		inst.ReadOnly = readOnly
		inst.ReadOnlyUpdatedTimestamp = time.Now().Unix()
		desc.Ingesters[id] = inst
		return desc, true, nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	testkit.Eventually(c.t, 5*time.Second, fmt.Sprintf("%d writable ingesters", writable), func() bool {
		return c.d.tenantRing(testTenant, 0).InstancesCount() == writable
	})
}

func readOnlyTestSeries(name string, n int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	now := nowMs()
	for i := range n {
		req.Timeseries = append(req.Timeseries, series([]int64{now}, "__name__", name, "i", fmt.Sprint(i)))
	}
	return req
}

// TestReadOnlyIngesterTakesNoWrites: a read-only ingester gets none of
// the series pushed while it is read-only, each of which still reaches
// the replication factor's ingesters; writable again, it takes its share.
func TestReadOnlyIngesterTakesNoWrites(t *testing.T) {
	c := newCluster(t, clusterOpts{ingesters: 4, rf: 3})
	c.setReadOnly(0, true, 3)
	req := readOnlyTestSeries("while_read_only", 100)
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", r.StatusCode, body(t, r))
	}
	for _, s := range req.Timeseries {
		if got := c.holders(testTenant, seriesString(s.Labels), 3); slices.Contains(got, 0) {
			t.Fatalf("series %s written to the read-only ingester: on %v", seriesString(s.Labels), got)
		}
	}

	c.setReadOnly(0, false, 4)
	if r := c.push(readOnlyTestSeries("writable_again", 100)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", r.StatusCode, body(t, r))
	}
	testkit.Eventually(t, 5*time.Second, "ingester 0 taking series again", func() bool {
		return c.ingesters[0].seriesCount(testTenant) > 0
	})
}

// TestEveryIngesterReadOnly: with no writable ingester a push answers
// 503 naming why.
func TestEveryIngesterReadOnly(t *testing.T) {
	c := newCluster(t, clusterOpts{ingesters: 1, rf: 1})
	c.setReadOnly(0, true, 0)
	r := c.push(readOnlyTestSeries("nowhere", 1))
	if b := body(t, r); r.StatusCode != http.StatusServiceUnavailable || b != "no writable ingesters in the ring (none, or every one read-only): the write cannot be stored\n" {
		t.Fatalf("push: %d %q, want 503", r.StatusCode, b)
	}
}

// TestReadOnlyIngesterLeftOutOfTheTenantsShard: with shuffle sharding a
// read-only ingester is out of every tenant's shard for writes.
func TestReadOnlyIngesterLeftOutOfTheTenantsShard(t *testing.T) {
	c := newCluster(t, clusterOpts{
		ingesters: 4, rf: 1,
		cfg:    func(cfg *Config) { cfg.ShardingStrategy = ShardingStrategyShuffle },
		limits: func(l *validation.Limits) { l.IngestionTenantShardSize = 2 },
	})
	shard := c.instanceIndexes(c.d.ring.ShuffleShard(testTenant, 2))
	c.setReadOnly(shard[0], true, 3)
	req := readOnlyTestSeries("sharded", 50)
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", r.StatusCode, body(t, r))
	}
	for _, s := range req.Timeseries {
		c.holders(testTenant, seriesString(s.Labels), 1)
	}
	if n := c.ingesters[shard[0]].seriesCount(testTenant); n != 0 {
		t.Errorf("the read-only ingester %d of the tenant's shard got %d series", shard[0], n)
	}
}
