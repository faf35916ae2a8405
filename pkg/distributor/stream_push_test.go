package distributor

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// With -distributor.use-stream-push the pushes reach the ingesters over
// their PushStreams, signed, and a refusal comes back as from a Push call.
func TestUseStreamPush(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) {
		cfg.UseStreamPush = true
		cfg.SignWriteRequests = true
		cfg.SignWriteRequestsKeys = []string{"k1"}
	}})
	for _, f := range c.ingesters {
		f.verify = true
	}
	now := nowMs()
	req := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "Up."}}}
	for i := range 20 {
		req.Timeseries = append(req.Timeseries, series([]int64{now}, "__name__", "up", "i", fmt.Sprint(i)))
	}
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push over streams: %d %q", r.StatusCode, body(t, r))
	}
	c.waitStored(`__name__="up",i="7"`, 3)
	for i, f := range c.ingesters {
		if n := f.streamed.Load(); n != 1 {
			t.Fatalf("ingester %d got %d pushes over its stream, want 1", i, n)
		}
	}

	// Two replicas of three down: the push fails, naming why.
	c.ingesters[0].fail.Store(uint32(codes.Unavailable))
	c.ingesters[0].msg = "ingester 0 stopping"
	c.ingesters[1].fail.Store(uint32(codes.Unavailable))
	c.ingesters[1].msg = "ingester 1 stopping"
	r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series([]int64{now + 1}, "__name__", "up", "i", "0")}})
	if b := body(t, r); r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b, "Unavailable: ingester 0 stopping") {
		t.Fatalf("push with two replicas down: %d %q, want 503 naming the ingesters' errors", r.StatusCode, b)
	}
	// The streams survived their refusals.
	c.ingesters[0].fail.Store(uint32(codes.OK))
	c.ingesters[1].fail.Store(uint32(codes.OK))
	if r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series([]int64{now + 2}, "__name__", "up", "i", "0")}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push after the refusals: %d %q", r.StatusCode, body(t, r))
	}
	if got := c.metric("cortex_ingester_clients", "client", "distributor"); got != 3 {
		t.Fatalf("%v ingester clients, want 3", got)
	}
}

// BenchmarkStreamPush is BenchmarkPushHandler with Push calls and with
// -distributor.use-stream-push, one push at a time and from parallel
// writers: 1,000 series a request, replication factor 3.
func BenchmarkStreamPush(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		for _, stream := range []bool{false, true} {
			name := "unary"
			if stream {
				name = "stream"
			}
			if parallel {
				name += "-parallel"
			}
			b.Run(name, func(b *testing.B) {
				c := newCluster(b, clusterOpts{discard: true, limits: func(l *validation.Limits) { l.IngestionRate = 0 }, cfg: func(cfg *Config) { cfg.UseStreamPush = stream }})
				body := encodeV1(b, benchRequest())
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				push := func() {
					if r := c.pushRaw(body, nil); r.StatusCode != http.StatusNoContent {
						b.Errorf("push: %d", r.StatusCode)
					}
				}
				if parallel {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							push()
						}
					})
				} else {
					for b.Loop() {
						push()
					}
				}
				b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
