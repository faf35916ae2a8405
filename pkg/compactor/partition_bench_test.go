package compactor

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// BenchmarkCompactPartitioned measures one compaction pass over three
// replicas of a 2h block of 1,000 series with the default strategy and
// with the partitioning strategy writing 1 and 4 partitions, and reports
// the input samples merged per CPU-second of the whole process.
func BenchmarkCompactPartitioned(b *testing.B) {
	const (
		series = 1000
		step   = int64(15_000)
	)
	inSamples := float64(3 * series * (2 * hour / step))
	tmpl := objstore.NewInMemBucket()
	for range 3 {
		shipBlock(b, tmpl, "bench", series, 0, 2*hour, step)
	}
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	b.Cleanup(func() { _ = closer.Close() })
	ringCfg := testConfig(b)
	ringCfg.ShardingEnabled = true
	ringCfg.ShardingStrategy = shardring.StrategyShuffle
	ringCfg.ShardingRing.InstanceID = "compactor-bench"
	ringCfg.ShardingRing.WaitStabilityMinDuration = 0
	m, err := shardring.NewMember(ringCfg.ShardingRing.MemberConfig(), RingName, RingKey, store, "127.0.0.1", 9150, ring.ACTIVE, discard, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Stop() })
	testkit.Eventually(b, 10*time.Second, "the compactor is in the ring", func() bool { return m.Ring().InstancesCount() == 1 })

	for _, bc := range []struct {
		name        string
		strategy    string
		seriesLimit int64
	}{
		{"default", CompactionStrategyDefault, 0},
		{"partitioning-1", CompactionStrategyPartitioning, 0},
		// 3,000 series in the group over 250 times the replication factor 3.
		{"partitioning-4", CompactionStrategyPartitioning, 250},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := ringCfg
			cfg.DataDir = b.TempDir()
			cfg.CompactionStrategy = bc.strategy
			cfg.ShardingPlannerDelay = 0
			var cpu time.Duration
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				bkt := objstore.NewInMemBucket()
				for name, data := range tmpl.Objects() {
					if err := bkt.Upload(context.Background(), name, bytes.NewReader(data)); err != nil {
						b.Fatal(err)
					}
				}
				c, err := New(cfg, bkt, discard, prometheus.NewRegistry(), WithRing(m),
					WithTenantShardSize(func(string) float64 { return 1 }),
					WithPartitionLimits(func(string) (int64, int64) { return 0, bc.seriesLimit }),
					WithIngestionReplicationFactor(3))
				if err != nil {
					b.Fatal(err)
				}
				if err := os.MkdirAll(c.workDir(), 0o750); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := cpuTime(b)
				if err := c.Compact(context.Background()); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime(b) - start
			}
			b.ReportMetric(inSamples*float64(b.N)/cpu.Seconds(), "samples/cpu-s")
		})
	}
}
