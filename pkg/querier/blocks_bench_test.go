package querier

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	sgclient "github.com/cortex-tls/cortex/pkg/storegateway/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// BenchmarkRangeQuery24h answers the same 24-hour queries over the same
// 2,000 series (8 labels, a sample every 30 s: 2,880 per series) from the
// two places the querier reads: an ingester's TSDB and the store-gateway.
// One ingester receives the samples and is flushed, which cuts its head
// into twelve 2-hour blocks and ships them to a filesystem bucket; the
// ingester keeps its local copies (retention 48h), and a BucketStore loads
// the shipped ones. Each source is read over gRPC on loopback (plaintext:
// TLS would cost both alike) through the querier's own queryable for it:
// ingesterQueryable (QueryStreamChunks) and storeGatewayQueryable (Series).
// Both ends run in the benchmark's process, so the figures include the
// servers' work. Queries:
//
//   - sum_rate: sum(rate(bench_metric[5m])) from 24 hours ago to now at a
//     60 s step, what a Grafana panel over a fleet asks for;
//   - select: a raw Select of every series over the 24 hours, iterating
//     every sample, which is the data the engine reads for the above.
func BenchmarkRangeQuery24h(b *testing.B) {
	const (
		numSeries = 2000
		step      = 30 * time.Second
		blockLen  = 2 * time.Hour
	)
	// Aligned on block boundaries so that the data makes exactly 12 blocks.
	end := time.UnixMilli(time.Now().UnixMilli() / blockLen.Milliseconds() * blockLen.Milliseconds())
	start := end.Add(-24 * time.Hour)
	numSamples := int(24 * time.Hour / step)

	bkt, err := filesystem.NewBucket(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	setupStart := time.Now()
	ing, addr := startBlocksIngester(b, bkt)
	pushSeries(b, ing, numSeries, numSamples, start.UnixMilli(), step.Milliseconds())
	flushIngester(b, ing)
	b.Logf("pushed %d samples and flushed in %s", numSeries*numSamples, time.Since(setupStart).Round(time.Millisecond))

	store := startBlocksStoreGateway(b, bkt)
	if n := len(store.Blocks("bench")); n != 12 {
		b.Fatalf("the store-gateway loaded %d blocks, want 12", n)
	}
	sources := []struct {
		name      string
		queryable storage.Queryable
	}{
		{"store-gateway", storeGatewayQueryable24h(b, bkt, store)},
		{"ingester", newBenchQueryable(b, newRing(b, 1, addr))},
	}

	engine := promql.NewEngine(promql.EngineOpts{
		Logger:        slog.New(slog.DiscardHandler),
		MaxSamples:    50_000_000,
		Timeout:       2 * time.Minute,
		LookbackDelta: 5 * time.Minute,
	})
	b.Cleanup(func() { _ = engine.Close() })
	ctx := tenant.Inject(context.Background(), "bench")
	const expr = "sum(rate(bench_metric[5m]))"
	rangeQuery := func(b *testing.B, q storage.Queryable) promql.Matrix {
		qry, err := engine.NewRangeQuery(ctx, q, nil, expr, start, end, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		defer qry.Close()
		res := qry.Exec(ctx)
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		m, err := res.Matrix()
		if err != nil {
			b.Fatal(err)
		}
		return m
	}

	// The comparison means something only if both answer alike.
	want := rangeQuery(b, sources[1].queryable).String()
	if got := rangeQuery(b, sources[0].queryable).String(); got != want {
		b.Fatalf("the store-gateway's answer differs from the ingester's:\n%.500s\nwant\n%.500s", got, want)
	}

	for _, src := range sources {
		b.Run("sum_rate/"+src.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPU(b)
			for b.Loop() {
				if m := rangeQuery(b, src.queryable); len(m) != 1 || len(m[0].Floats) != 24*60 {
					b.Fatalf("%d series in the answer", len(m))
				}
			}
			reportCPU(b, cpu)
		})
	}
	matcher := labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "bench_metric")
	for _, src := range sources {
		b.Run("select/"+src.name, func(b *testing.B) {
			b.ReportAllocs()
			var it chunkenc.Iterator
			cpu := processCPU(b)
			for b.Loop() {
				q, err := src.queryable.Querier(start.UnixMilli(), end.UnixMilli())
				if err != nil {
					b.Fatal(err)
				}
				set := q.Select(ctx, true, &storage.SelectHints{Start: start.UnixMilli(), End: end.UnixMilli()}, matcher)
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
				_ = q.Close()
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(b.N*numSeries*numSamples)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// startBlocksIngester runs an ingester shipping to bkt behind a gRPC server
// on loopback, keeping its blocks for 48 hours so that it still holds the
// 24 hours it ships.
func startBlocksIngester(b *testing.B, bkt objstore.Bucket) (*ingester.Ingester, string) {
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
	cfg.TSDB.Retention = 48 * time.Hour
	lc := &cfg.LifecyclerConfig
	lc.RingConfig.ReplicationFactor = 1
	lc.Addr, lc.Port, lc.ID = "127.0.0.1", 9095, "ingester-0"
	lc.NumTokens, lc.MinReadyDuration = 8, 0

	var limits validation.Limits
	limits.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	ing, err := ingester.New(cfg, kv, validation.NewOverrides(limits, nil), logger, prometheus.NewRegistry(), ingester.WithBucket(bkt))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := services.StartAndAwaitRunning(ctx, ing); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, ing) })
	lis := testkit.Listen(b)
	srv := newBlocksGRPCServer()
	client.RegisterIngesterServer(srv, ing)
	// The querier's pool closes connections that fail health checks for a
	// minute, which a run of this benchmark outlasts.
	hs := health.NewServer()
	hs.SetServingStatus(client.ServiceName, grpc_health_v1.HealthCheckResponse_SERVING)
	grpc_health_v1.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	return ing, lis.Addr().String()
}

// pushSeries pushes numSamples samples of numSeries series, one request
// per timestamp in time order, as a scrape does. The request is reused:
// holding all of them at once would take gigabytes.
func pushSeries(b *testing.B, ing *ingester.Ingester, numSeries, numSamples int, start, step int64) {
	b.Helper()
	ctx := tenant.Inject(context.Background(), "bench")
	req := &client.PushRequest{}
	req.Timeseries = make([]prompb.TimeSeries, numSeries)
	for i := range req.Timeseries {
		req.Timeseries[i] = prompb.TimeSeries{Labels: benchLabels(i), Samples: make([]prompb.Sample, 1)}
	}
	for s := range numSamples {
		for i := range req.Timeseries {
			// A counter, so that rate() has something to compute.
			req.Timeseries[i].Samples[0] = prompb.Sample{Timestamp: start + int64(s)*step, Value: float64(s * (1 + i%7))}
		}
		if _, err := ing.Push(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// flushIngester cuts the whole head into blocks and ships them, as POST
// /ingester/flush does.
func flushIngester(b *testing.B, ing *ingester.Ingester) {
	b.Helper()
	rec := httptest.NewRecorder()
	ing.FlushHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ingester/flush", nil))
	if rec.Code != http.StatusNoContent {
		b.Fatalf("flush: %d %s", rec.Code, rec.Body)
	}
}

// startBlocksStoreGateway loads the blocks of bkt into a BucketStore
// served by a store-gateway gRPC server on loopback.
func startBlocksStoreGateway(b *testing.B, bkt objstore.Bucket) *storegateway.BucketStore {
	b.Helper()
	var cfg storegateway.Config
	cfg.RegisterFlags(flag.NewFlagSet("store-gateway", flag.PanicOnError))
	cfg.SyncDir = b.TempDir()
	cfg.BucketIndex.Enabled = false // no compactor writes one here: scan the bucket
	store, err := storegateway.NewBucketStore(cfg, bkt, nil, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	if err := store.SyncBlocks(context.Background()); err != nil {
		b.Fatal(err)
	}
	return store
}

// storeGatewayQueryable24h serves store over gRPC on loopback and returns
// the querier's queryable over a connection to it.
func storeGatewayQueryable24h(b *testing.B, bkt objstore.Bucket, store *storegateway.BucketStore) storage.Queryable {
	b.Helper()
	srv := newBlocksGRPCServer()
	storegateway.RegisterStoreGatewayServer(srv, storegateway.NewStoreGatewayServer(store, nil))
	lis := testkit.Listen(b)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	var cfg sgclient.Config
	cfg.RegisterFlags(flag.NewFlagSet("querier", flag.PanicOnError))
	conn, err := sgclient.Dial(lis.Addr().String(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	var limits validation.Limits
	limits.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	var sgCfg storegateway.Config
	sgCfg.RegisterFlags(flag.NewFlagSet("store-gateway", flag.PanicOnError))
	sgCfg.BucketIndex.Enabled = false // no compactor writes one here: scan the bucket
	return NewStoreGatewayQueryable(NewBlocksFinder(bkt, sgCfg, nil), StaticGateways{conn}, sgCfg, validation.NewOverrides(limits, nil))
}

// processCPU is the CPU time the process has used, user and system. Both
// ends of each query run in the process, so it is their whole cost; on a
// busy machine it varies far less than the elapsed time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per op since from.
func reportCPU(b *testing.B, from time.Duration) {
	b.ReportMetric(float64(processCPU(b)-from)/float64(b.N), "cpu-ns/op")
}

// newBlocksGRPCServer is a gRPC server set up as pkg/server's: the
// project's codec, the tenant interceptors, and its keepalive policy. With
// gRPC's default policy the clients' 20 s pings get the connection closed
// (too_many_pings) in the middle of a run.
func newBlocksGRPCServer() *grpc.Server {
	return grpc.NewServer(append(tenant.ServerInterceptors(),
		grpc.ForceServerCodecV2(grpccodec.Codec{}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)...)
}
