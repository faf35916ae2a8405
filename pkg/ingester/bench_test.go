package ingester

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// BenchmarkPush pushes requests of 1,000 series of 8 labels, one sample
// each, to 20,000 existing series, as the remote-write load of the design
// figures does. Reports the ingester's cost per sample, decoding excluded.
func BenchmarkPush(b *testing.B) {
	h := startHarness(b, testConfig(b, b.TempDir(), newKV(b)), newTestLimits(b, nil))
	reqs := benchRequests(20000, 1000)
	preqs := make([]*client.PushRequest, len(reqs))
	for r, req := range reqs {
		preqs[r] = &client.PushRequest{WriteRequest: *req} // shares the series
	}
	benchPush(b, reqs, func(r int) error {
		_, err := h.ing.Push(ctxFor("bench"), preqs[r])
		return err
	})
}

// BenchmarkPushGRPC is BenchmarkPush through the ingester's gRPC server on
// loopback with the project's codec: the client's marshalling, the
// server's decoding and the append, as a distributor's push costs the
// process that runs both (-target=all).
func BenchmarkPushGRPC(b *testing.B) {
	h := startHarness(b, testConfig(b, b.TempDir(), newKV(b)), newTestLimits(b, nil))
	reqs := benchRequests(20000, 1000)
	benchPush(b, reqs, func(r int) error {
		_, err := h.conn.Push(ctxFor("bench"), reqs[r])
		return err
	})
}

// benchPush creates every series first, so that the loop measures pushes
// to existing series only, then pushes the requests in turn, a scrape
// interval later on each round.
func benchPush(b *testing.B, reqs []*prompb.WriteRequest, push func(r int) error) {
	ts := base
	setTS := func(req *prompb.WriteRequest) {
		for i := range req.Timeseries {
			req.Timeseries[i].Samples[0].Timestamp = ts
		}
	}
	for r, req := range reqs {
		setTS(req)
		if err := push(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		r := n % len(reqs)
		if r == 0 {
			ts += 15000
		}
		setTS(reqs[r])
		if err := push(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(reqs[0].Timeseries)), "ns/sample")
}

// benchRequests returns numSeries series of 8 labels and a name, one
// sample each, in requests of perReq series.
func benchRequests(numSeries, perReq int) []*prompb.WriteRequest {
	reqs := make([]*prompb.WriteRequest, numSeries/perReq)
	for r := range reqs {
		reqs[r] = &prompb.WriteRequest{}
		for s := range perReq {
			id := r*perReq + s
			reqs[r].Timeseries = append(reqs[r].Timeseries, prompb.TimeSeries{
				// Sorted, as remote-write senders send them.
				Labels: series("bench_metric_total", "cluster", "eu-west-1", "container", "exporter", "instance", fmt.Sprintf("10.0.%d.%d:9100", id/256, id%256),
					"job", "node", "namespace", "monitoring", "pod", fmt.Sprintf("pod-%d", id), "series", fmt.Sprint(id)),
				Samples: []prompb.Sample{{Value: 1}},
			})
		}
	}
	return reqs
}
