package querier

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/grafana/dskit/services"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// BenchmarkRemoteRead reads 1,000 series of 240 samples (an hour at 15 s)
// from one ingester, in each response type, end to end: the HTTP request,
// the querier's gRPC call to the ingester, the encoding and the client's
// reading of the body.
func BenchmarkRemoteRead(b *testing.B) {
	f := newFakeIngester()
	for i := range 1000 {
		var samples []prompb.Sample
		for j := range int64(240) {
			samples = append(samples, sample(t0+j*15000, float64(i)+float64(j)))
		}
		f.add("team-a", series(map[string]string{"__name__": "bench_total", "job": "bench", "instance": strconv.Itoa(i)}, samples...))
	}
	lis := testkit.Listen(b)
	gs := grpc.NewServer(append(tenant.ServerInterceptors(), grpc.ForceServerCodecV2(grpccodec.Codec{}))...)
	client.RegisterIngesterServer(gs, f)
	grpc_health_v1.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)

	var limits validation.Limits
	var clientCfg client.Config
	fs := flag.NewFlagSet("bench", flag.PanicOnError)
	limits.RegisterFlags(fs)
	clientCfg.RegisterFlags(fs)
	q, err := New(defaultConfig(), clientCfg, nil, validation.NewOverrides(limits, nil), newRing(b, 1, lis.Addr().String()), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), q); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), q) })
	srv := httptest.NewServer(tenant.HTTPMiddleware(true, q.Handler()))
	b.Cleanup(srv.Close)

	for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		raw, err := (&prompb.ReadRequest{
			Queries: []*prompb.Query{{StartTimestampMs: t0, EndTimestampMs: t0 + 3600_000,
				Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "bench_total"}}}},
			AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt},
		}).Marshal()
		if err != nil {
			b.Fatal(err)
		}
		body := snappy.Encode(nil, raw)
		b.Run(rt.String(), func(b *testing.B) {
			var n int64
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/prometheus/api/v1/read", bytes.NewReader(body))
				req.Header.Set(tenant.HeaderName, "team-a")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("%d %v", resp.StatusCode, err)
				}
			}
			b.ReportMetric(float64(n), "response-bytes")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/240000, "ns/sample")
		})
	}
}
