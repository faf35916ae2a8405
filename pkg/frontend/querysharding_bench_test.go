package frontend

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// BenchmarkQuerySharding runs sum by (job) (rate(x[5m])) over 100,000
// series (50 jobs of 2,000 instances, 30 minutes at 1 sample a minute) as
// a 30-minute range query through the frontend and 4 querier workers,
// whole and as 4 shard queries, side by side. Besides the wall time it
// reports the process CPU time per query and per shard query.
func BenchmarkQuerySharding(b *testing.B) {
	const (
		jobs      = 50
		instances = 2000
		minutes   = 30
	)
	st := teststorage.New(b)
	b.Cleanup(func() { _ = st.Close() })
	for m := range minutes + 1 {
		app := st.Appender(context.Background())
		for j := range jobs {
			for i := range instances {
				ls := labels.FromStrings("__name__", "x", "job", fmt.Sprintf("job-%02d", j), "instance", fmt.Sprintf("i-%04d", i))
				if _, err := app.Append(0, ls, int64(m)*60_000, float64(m*(1+(i+j)%7))); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	eng := promqltest.NewTestEngineWithOpts(b, promql.EngineOpts{
		MaxSamples: 500_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
		NoStepSubqueryIntervalFn: func(int64) int64 { return 60_000 },
	})
	api := &promAPI{engine: eng, st: querysharding.Queryable{Queryable: st}}
	const query = `sum by (job) (rate(x[5m]))`
	params := rangeParams(query, 300, minutes*60, 60)
	want := direct(api, query, 300, minutes*60, 60)

	for _, shards := range []int{1, 4} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			cfg := defaultConfig()
			cfg.SplitQueriesByInterval = 0
			h := newHarness(b, cfg, api, 4)
			h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: shards}, nil)
			if code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params); code != 200 || sameMatrix(got, want, 1e-9) != nil {
				b.Fatalf("%d shards: %d, %v", shards, code, sameMatrix(got, want, 1e-9))
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				if code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params); code != 200 {
					b.Fatalf("%d %s", code, body)
				}
			}
			b.StopTimer()
			cpu := (cpuTime() - cpu0).Seconds() * 1000 / float64(b.N)
			b.ReportMetric(cpu, "cpu-ms/op")
			b.ReportMetric(cpu/float64(shards), "cpu-ms/shard")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
