package querier

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// BenchmarkSelect reads 2,000 series of 8 labels with 120 samples each
// (30 minutes at a 15 s interval) from real ingesters over gRPC on
// loopback, through the querier's Select and the iteration the engine
// does, as samples (QueryStream, the path before chunk streaming) and as
// chunks (QueryStreamChunks). With three ingesters every series has three
// identical replicas, as with replication factor 3. Both ends run in the
// benchmark's process, so the figures include the ingesters' work.
func BenchmarkSelect(b *testing.B) {
	const numSeries, numSamples, step = 2000, 120, 15_000
	for _, ingesters := range []int{1, 3} {
		end := time.Now().Truncate(time.Minute).UnixMilli()
		start := end - (numSamples-1)*step
		var addrs []string
		for i := range ingesters {
			addrs = append(addrs, startBenchIngester(b, i, benchSeries(numSeries, numSamples, start, step)))
		}
		r := newRing(b, ingesters, addrs...)
		for _, path := range []string{"QueryStream", "QueryStreamChunks"} {
			b.Run(fmt.Sprintf("ingesters=%d/rpc=%s", ingesters, path), func(b *testing.B) {
				q := newBenchQueryable(b, r)
				q.streamSamples = path == "QueryStream"
				ctx := tenant.Inject(context.Background(), "bench")
				m := labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "bench_metric")
				var it chunkenc.Iterator
				b.ReportAllocs()
				for b.Loop() {
					querier, _ := q.Querier(start, end)
					set := querier.Select(ctx, true, &storage.SelectHints{Start: start, End: end}, m)
					var series, samples int
					for set.Next() {
						series++
						it = set.At().Iterator(it)
						for it.Next() != chunkenc.ValNone {
							samples++
						}
						if err := it.Err(); err != nil {
							b.Fatal(err)
						}
					}
					if err := set.Err(); err != nil {
						b.Fatal(err)
					}
					if series != numSeries || samples != numSeries*numSamples {
						b.Fatalf("read %d series, %d samples", series, samples)
					}
				}
			})
		}
	}
}

// benchLabels are the labels of series i of a node exporter fleet, sorted.
func benchLabels(i int) []prompb.Label {
	return []prompb.Label{
		{Name: "__name__", Value: "bench_metric"},
		{Name: "cluster", Value: "eu-west-1"},
		{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9100", i/256, i%256)},
		{Name: "job", Value: "node"},
		{Name: "namespace", Value: "monitoring"},
		{Name: "pod", Value: fmt.Sprintf("node-%05d", i)},
		{Name: "series", Value: fmt.Sprint(i)},
		{Name: "zone", Value: "eu-west-1a"},
	}
}

// benchSeries returns remote-write requests of numSeries series, one per
// timestamp, in time order.
func benchSeries(numSeries, numSamples int, start, step int64) []*prompb.WriteRequest {
	ls := make([][]prompb.Label, numSeries)
	for i := range ls {
		ls[i] = benchLabels(i)
	}
	reqs := make([]*prompb.WriteRequest, numSamples)
	for s := range reqs {
		reqs[s] = &prompb.WriteRequest{}
		for i := range numSeries {
			ts := start + int64(s)*step
			reqs[s].Timeseries = append(reqs[s].Timeseries, prompb.TimeSeries{
				Labels:  ls[i],
				Samples: []prompb.Sample{{Timestamp: ts, Value: float64(i*s%1000) / 8}},
			})
		}
	}
	return reqs
}

// startBenchIngester runs an ingester holding reqs behind a gRPC server on
// loopback and returns its address.
func startBenchIngester(b *testing.B, id int, reqs []*prompb.WriteRequest) string {
	b.Helper()
	logger := slog.New(slog.DiscardHandler)
	var cfg ingester.Config
	fs := flag.NewFlagSet("ingester", flag.PanicOnError)
	cfg.RegisterFlags(fs, logger)
	cfg.TSDB.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		b.Fatal(err)
	}
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), kitlog.New(logger), nil)
	b.Cleanup(func() { _ = closer.Close() })
	cfg.TSDB.Dir = b.TempDir()
	lc := &cfg.LifecyclerConfig
	lc.RingConfig.ReplicationFactor = 1
	lc.Addr, lc.Port, lc.ID = "127.0.0.1", 9095, fmt.Sprintf("ingester-%d", id)
	lc.NumTokens, lc.MinReadyDuration = 8, 0

	var limits validation.Limits
	limits.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	ing, err := ingester.New(cfg, kv, validation.NewOverrides(limits, nil), logger, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := services.StartAndAwaitRunning(ctx, ing); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, ing) })
	lis := testkit.Listen(b)
	srv := grpc.NewServer(append(tenant.ServerInterceptors(), grpc.ForceServerCodecV2(grpccodec.Codec{}))...)
	client.RegisterIngesterServer(srv, ing)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	for _, req := range reqs {
		if _, err := ing.Push(tenant.Inject(ctx, "bench"), &client.PushRequest{WriteRequest: *req}); err != nil {
			b.Fatal(err)
		}
	}
	return lis.Addr().String()
}

// newBenchQueryable returns the fan-out queryable over r with a started
// connection pool.
func newBenchQueryable(b *testing.B, r ring.ReadRing) *ingesterQueryable {
	b.Helper()
	var (
		clientCfg client.Config
		limits    validation.Limits
	)
	fs := flag.NewFlagSet("querier", flag.PanicOnError)
	clientCfg.RegisterFlags(fs)
	limits.RegisterFlags(fs)
	pool := client.NewPool(r, clientCfg, nil, slog.New(slog.DiscardHandler), nil, "bench")
	ctx := context.Background()
	if err := services.StartAndAwaitRunning(ctx, pool); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, pool) })
	return &ingesterQueryable{ring: r, pool: pool, limits: validation.NewOverrides(limits, nil)}
}
