package compactor

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
)

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompact measures one compaction pass (bucket index update,
// download, merge, upload, marks) over an in-memory bucket, and reports
// the input samples merged per CPU-second of the whole process.
func BenchmarkCompact(b *testing.B) {
	const (
		series = 1000
		step   = int64(15_000)
	)
	perBlock := float64(series * (2 * hour / step))
	for _, bc := range []struct {
		name   string
		blocks [][2]int64 // hours
	}{
		// Three ingesters' copies of one 2h block: vertical compaction.
		{"replicas-rf3", [][2]int64{{0, 2}, {0, 2}, {0, 2}}},
		// Six 2h blocks into one 12h block (the newest, 12h-14h, stays).
		{"adjacent-6x2h", [][2]int64{{0, 2}, {2, 4}, {4, 6}, {6, 8}, {8, 10}, {10, 12}, {12, 14}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tmpl := objstore.NewInMemBucket()
			for _, r := range bc.blocks {
				shipBlock(b, tmpl, "bench", series, r[0]*hour, r[1]*hour, step)
			}
			inSamples := perBlock * float64(len(bc.blocks))
			if bc.name == "adjacent-6x2h" {
				inSamples -= perBlock // the newest block is not compacted
			}
			cfg := testConfig(b)
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
				c, err := New(cfg, bkt, discard, prometheus.NewRegistry())
				if err != nil {
					b.Fatal(err)
				}
				if err := c.starting(context.Background()); err != nil {
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
