package distributor

import (
	"net/http"
	"testing"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// BenchmarkPushHandlerZonesAndShards is the write path in front of six
// ingesters that drop what they get (replication factor 3): without zones,
// with zone-aware replication over three zones, and with a tenant shard of
// 3 on top.
func BenchmarkPushHandlerZonesAndShards(b *testing.B) {
	for _, bc := range []struct {
		name    string
		zones   int
		shuffle bool
	}{
		{"no zones", 0, false},
		{"3 zones", 3, false},
		{"3 zones, shard of 3", 3, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newCluster(b, clusterOpts{
				ingesters: 6, discard: true, zones: bc.zones,
				limits: func(l *validation.Limits) { l.IngestionRate = 0; l.IngestionTenantShardSize = 3 },
				cfg: func(cfg *Config) {
					if bc.shuffle {
						cfg.ShardingStrategy = ShardingStrategyShuffle
					}
				},
			})
			body := encodeV1(b, benchRequest())
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if r := c.pushRaw(body, nil); r.StatusCode != http.StatusNoContent {
					b.Fatalf("push: %d", r.StatusCode)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
