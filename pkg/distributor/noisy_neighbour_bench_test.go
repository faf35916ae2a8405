package distributor

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// ingesterCapacity models an ingester's bounded capacity: it handles one
// push at a time, each busy for perSeries per series it holds, so that
// pushes queue at a flooded ingester as at a saturated one. The service
// time is slept, not spent: the benchmark's own CPU stays with the
// distributor, whose work is real and shared by both tenants.
type ingesterCapacity struct {
	slot      chan struct{}
	perSeries time.Duration

	mu      sync.Mutex
	tenants map[string]bool // the tenants whose pushes it got
}

func newIngesterCapacity(perSeries time.Duration) *ingesterCapacity {
	return &ingesterCapacity{slot: make(chan struct{}, 1), perSeries: perSeries, tenants: map[string]bool{}}
}

func (c *ingesterCapacity) admit(ctx context.Context, series int) error {
	if id, err := tenant.ID(ctx); err == nil {
		c.mu.Lock()
		c.tenants[id] = true
		c.mu.Unlock()
	}
	select {
	case c.slot <- struct{}{}:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	defer func() { <-c.slot }()
	time.Sleep(time.Duration(series) * c.perSeries)
	return nil
}

func (c *ingesterCapacity) got(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tenants[id]
}

// BenchmarkNoisyNeighbour measures the push latency of a quiet tenant
// (10 series per push, one push at a time) while another tenant floods the
// same distributor with 1,000-series pushes from 4 writers, over six
// ingesters in three zones (replication factor 3) that each handle one
// push at a time at 5µs per series: with every tenant on every ingester
// (default sharding), and with shuffle sharding, a shard of 3 per tenant,
// for quiet tenants whose shard shares 0, 1 and 2 ingesters with the noisy
// tenant's (which two tenants share depends on their IDs; over six
// ingesters in three zones, two shards of 3 share 2 or more half of the
// time); "no flood" is the quiet tenant alone. It reports the quiet
// tenant's p50 and p99 latency, the flood's pushes per second, and how
// many ingesters the two tenants share.
func BenchmarkNoisyNeighbour(b *testing.B) {
	const noisy = "tenant-noisy"
	for _, bc := range []struct {
		name    string
		writers int // the noisy tenant's
		shuffle bool
		shared  int // ingesters the shuffle shards share
	}{
		{"no flood", 0, false, 0},
		{"default sharding", 4, false, 0},
		{"shuffle sharding, shard of 3, 0 shared", 4, true, 0},
		{"shuffle sharding, shard of 3, 1 shared", 4, true, 1},
		{"shuffle sharding, shard of 3, 2 shared", 4, true, 2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newCluster(b, clusterOpts{
				ingesters: 6, discard: true, zones: 3,
				limits: func(l *validation.Limits) { l.IngestionRate = 0; l.IngestionTenantShardSize = 3 },
				cfg: func(cfg *Config) {
					if bc.shuffle {
						cfg.ShardingStrategy = ShardingStrategyShuffle
					}
				},
			})
			quiet := "tenant-quiet"
			if bc.shuffle {
				quiet = quietTenantSharing(b, c, noisy, 3, bc.shared)
			}
			caps := make([]*ingesterCapacity, len(c.ingesters))
			for i, f := range c.ingesters {
				caps[i] = newIngesterCapacity(5 * time.Microsecond)
				f.admit = caps[i].admit
			}
			flood := encodeV1(b, benchRequest())
			small := benchRequest()
			small.Timeseries = small.Timeseries[:10]
			quietBody := encodeV1(b, small)

			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var floodPushes atomic.Int64
			for range bc.writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						if r := serve(c.handler, flood, map[string]string{tenant.HeaderName: noisy}); r.StatusCode == http.StatusNoContent {
							floodPushes.Add(1)
						}
					}
				}()
			}
			// Let the flood fill the ingesters' queues first.
			if bc.writers > 0 {
				time.Sleep(200 * time.Millisecond)
			}

			latencies := make([]time.Duration, 0, 1024)
			floodStart, floodBefore := time.Now(), floodPushes.Load()
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				r := serve(c.handler, quietBody, map[string]string{tenant.HeaderName: quiet})
				latencies = append(latencies, time.Since(start))
				if r.StatusCode != http.StatusNoContent {
					b.Fatalf("quiet tenant's push: %d", r.StatusCode)
				}
			}
			b.StopTimer()
			floodRate := float64(floodPushes.Load()-floodBefore) / time.Since(floodStart).Seconds()
			stop()
			wg.Wait()

			slices.Sort(latencies)
			pct := func(p float64) float64 {
				return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
			}
			shared := 0
			for _, ic := range caps {
				if ic.got(noisy) && ic.got(quiet) {
					shared++
				}
			}
			b.ReportMetric(pct(0.50), "quiet-p50-ms")
			b.ReportMetric(pct(0.99), "quiet-p99-ms")
			b.ReportMetric(floodRate, "flood-pushes/s")
			b.ReportMetric(float64(shared), "shared-ingesters")
		})
	}
}

// quietTenantSharing returns the first tenant ID tenant-quiet-<n> whose
// shuffle shard of size shares exactly shared ingesters with noisy's.
func quietTenantSharing(b *testing.B, c *cluster, noisy string, size, shared int) string {
	b.Helper()
	shard := func(id string) map[string]bool {
		rs, err := c.d.ring.ShuffleShard(id, size).GetAllHealthy(ring.Write)
		if err != nil {
			b.Fatal(err)
		}
		addrs := map[string]bool{}
		for _, inst := range rs.Instances {
			addrs[inst.Addr] = true
		}
		return addrs
	}
	noisyShard := shard(noisy)
	for n := range 1000 {
		id := fmt.Sprintf("tenant-quiet-%d", n)
		common := 0
		for addr := range shard(id) {
			if noisyShard[addr] {
				common++
			}
		}
		if common == shared {
			return id
		}
	}
	b.Fatalf("no tenant-quiet-<n> shares %d ingesters with %s", shared, noisy)
	return ""
}
