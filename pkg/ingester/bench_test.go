package ingester

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

// BenchmarkPush pushes requests of 1,000 series of 8 labels, one sample
// each, to 20,000 existing series, as the remote-write load of the design
// figures does. Reports the ingester's cost per sample.
func BenchmarkPush(b *testing.B) {
	h := startHarness(b, testConfig(b, b.TempDir(), newKV(b)), newTestLimits(b, nil))
	const numSeries, perReq = 20000, 1000
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
	ctx := ctxFor("bench")
	ts := base
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		req := reqs[n%len(reqs)]
		if n%len(reqs) == 0 {
			ts += 15000
		}
		for i := range req.Timeseries {
			req.Timeseries[i].Samples[0].Timestamp = ts
		}
		if _, err := h.ing.Push(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perReq), "ns/sample")
}
