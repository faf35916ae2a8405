package ruler

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// countingPusher takes the rule results of the benchmarks and keeps only
// their number, so that the figures are the ruler's cost, not a store's.
type countingPusher struct{ samples atomic.Int64 }

func (p *countingPusher) Push(_ context.Context, req *prompb.WriteRequest) error {
	p.samples.Add(int64(len(req.Timeseries)))
	return nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordingRuleSumBy evaluates one recording rule,
// sum by (x) (bench_metric), over 1k and 10k series (100 values of x) held
// in a TSDB head, through the ruler's path: the engine's instant query and
// the results' write request. It reports the CPU time of one evaluation
// (cpu-ms/eval) and how many groups of that rule one core evaluates within
// a 1-minute evaluation interval (groups/core@1m).
func BenchmarkRecordingRuleSumBy(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n)+"-series", func(b *testing.B) {
			dbs := newTenantDBs(b)
			now := time.Now()
			series := make([]labels.Labels, n)
			for i := range series {
				series[i] = labels.FromStrings("__name__", "bench_metric", "instance", strconv.Itoa(i), "x", strconv.Itoa(i%100))
			}
			for s := 0; s < 10; s++ { // 10 samples per series, 15s apart
				dbs.add("bench", now.Add(-time.Duration(10-s)*15*time.Second), float64(s), series...)
			}
			pusher := &countingPusher{}
			p := parser.NewParser(parser.Options{})
			expr, err := p.ParseExpr(`sum by (x) (bench_metric)`)
			if err != nil {
				b.Fatal(err)
			}
			engine := NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute}, nil)
			m := newMetrics(nil)
			query := rules.EngineQueryFunc(engine, dbs)
			g := rules.NewGroup(rules.GroupOptions{
				Name:     "bench",
				File:     "ns",
				Interval: time.Minute,
				Rules:    []rules.Rule{rules.NewRecordingRule("x:bench_metric:sum", expr, labels.EmptyLabels())},
				Opts: &rules.ManagerOptions{
					QueryFunc: func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
						return query(tenant.Inject(ctx, "bench"), q, t)
					},
					AppendableV2: &pusherAppendable{pusher: pusher, user: "bench", metrics: m},
					Queryable:    dbs,
					Context:      tenant.Inject(context.Background(), "bench"),
					Metrics:      rules.NewGroupMetrics(nil),
				},
			})
			ctx := tenant.Inject(context.Background(), "bench")
			g.Eval(ctx, now) // warm up
			if err := g.Rules()[0].LastError(); err != nil {
				b.Fatal(err)
			}
			before := pusher.samples.Load()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := 0; i < b.N; i++ {
				g.Eval(ctx, now.Add(time.Duration(i)*time.Millisecond))
			}
			cpu := cpuTime(b) - cpu0
			b.StopTimer()
			if got := pusher.samples.Load() - before; got != int64(100*b.N) {
				b.Fatalf("%d results written, want 100 per evaluation", got)
			}
			perEval := float64(cpu) / float64(time.Millisecond) / float64(b.N)
			b.ReportMetric(perEval, "cpu-ms/eval")
			b.ReportMetric(float64(time.Minute/time.Millisecond)/perEval, "groups/core@1m")
		})
	}
}
