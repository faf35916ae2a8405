package ingester

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// BenchmarkQueryPostingsCache runs the same query over and over against a
// head of 100,000 series (benchRequests' 8 labels and a name), with the
// expanded postings caches off and on, through the ingester's gRPC
// QueryStream: a dashboard refreshing. "regex" selects 256 series by a
// regular expression on instance, which the index resolves by matching
// all 100,000 instance values; "equal" selects one series by pod.
func BenchmarkQueryPostingsCache(b *testing.B) {
	queries := []struct {
		name   string
		ms     []*prompb.LabelMatcher
		series int
	}{
		{"regex", []*prompb.LabelMatcher{eq("__name__", "bench_metric_total"), {Type: prompb.LabelMatcher_RE, Name: "instance", Value: `10\.0\.1\..*`}}, 256},
		{"equal", []*prompb.LabelMatcher{eq("__name__", "bench_metric_total"), eq("pod", "pod-4242")}, 1},
	}
	for _, enabled := range []bool{false, true} {
		cfg := testConfig(b, b.TempDir(), newKV(b))
		cfg.TSDB.PostingsCache.Head.Enabled = enabled
		h := startHarness(b, cfg, newTestLimits(b, func(l *validation.Limits) {
			l.MaxGlobalSeriesPerUser, l.MaxSeriesPerUser, l.MaxSeriesPerMetric, l.MaxGlobalSeriesPerMetric = 0, 0, 0, 0
		}))
		for _, req := range benchRequests(100000, 1000) {
			for i := range req.Timeseries {
				req.Timeseries[i].Samples[0].Timestamp = base
			}
			h.mustPush("bench", req.Timeseries...)
		}
		for _, q := range queries {
			b.Run(fmt.Sprintf("%s/cache=%v", q.name, map[bool]string{false: "off", true: "on"}[enabled]), func(b *testing.B) {
				b.ReportAllocs()
				cpu := processCPU(b)
				for b.Loop() {
					if got := h.query("bench", base, base, q.ms...); len(got) != q.series {
						b.Fatalf("%d series, want %d", len(got), q.series)
					}
				}
				// CPU time, server and client together, varies less than
				// wall time on a busy machine.
				b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
			})
		}
		h.stop()
	}
}

// processCPU is the process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
