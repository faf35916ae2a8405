package querier

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

// BenchmarkMergeReplicas merges what three ingesters (replication factor 3)
// return for 1,000 series of 8 labels with 120 samples each: the querier's
// fan-out merge.
func BenchmarkMergeReplicas(b *testing.B) {
	replica := make([]*prompb.TimeSeries, 1000)
	for i := range replica {
		ts := &prompb.TimeSeries{Labels: benchLabels(i)}
		for t := range 120 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: int64(t) * 15000, Value: float64(i + t)})
		}
		replica[i] = ts
	}
	replicas := [][]*prompb.TimeSeries{replica, replica, replica}
	b.ReportAllocs()
	for b.Loop() {
		if got := mergeReplicas(replicas); len(got) != 1000 || len(got[0].floats) != 120 {
			b.Fatalf("merged %d series", len(got))
		}
	}
	b.ReportMetric(float64(b.N*3*1000*120)/b.Elapsed().Seconds(), "samples/s")
}
