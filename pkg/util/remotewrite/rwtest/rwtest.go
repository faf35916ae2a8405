// Package rwtest holds remote-write requests shared by the tests of the
// decoders and of the distributor.
//
// Only tests may import it: no package of the cortex binary must.
package rwtest

import (
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// V1Request is a remote-write 1.0 request with samples, an exemplar, native
// histograms of both kinds and a series without data.
func V1Request() *prompb.WriteRequest {
	return &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "node"}},
				Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}, {Value: 2.5, Timestamp: 2000}},
				Exemplars: []prompb.Exemplar{{
					Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 3, Timestamp: 1500,
				}},
			},
			{
				Labels: []prompb.Label{{Name: "__name__", Value: "latency"}, {Name: "le", Value: ""}},
				Histograms: []prompb.Histogram{
					{Count: &prompb.Histogram_CountInt{CountInt: 5}, ZeroCount: &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1}, Sum: 10, Schema: 1,
						PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{2, 0}, Timestamp: 3000},
					{Count: &prompb.Histogram_CountFloat{CountFloat: 5.5}, ZeroCount: &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: 0.5}, Sum: 1,
						NegativeSpans: []prompb.BucketSpan{{Offset: -1, Length: 1}}, NegativeCounts: []float64{5}, Timestamp: 4000, ResetHint: prompb.Histogram_GAUGE},
				},
			},
			{Labels: []prompb.Label{{Name: "__name__", Value: "empty"}}},
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "up", Help: "Up.", Unit: "s"}},
	}
}

// V2Request is a remote-write 2.0 request with samples, an exemplar,
// histograms and metadata.
func V2Request() *writev2.Request {
	st := writev2.NewSymbolTable()
	ref := func(kv ...string) []uint32 {
		var out []uint32
		for _, s := range kv {
			out = append(out, st.Symbolize(s))
		}
		return out
	}
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{
			LabelsRefs: ref("__name__", "http_requests_total", "job", "api"),
			Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000, StartTimestamp: 10}, {Value: 2, Timestamp: 2000}},
			Exemplars:  []writev2.Exemplar{{LabelsRefs: ref("trace_id", "t1"), Value: 1, Timestamp: 1000}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Requests."), UnitRef: st.Symbolize("")},
		},
		{
			LabelsRefs: ref("__name__", "rpc_seconds", "job", "api"),
			Histograms: []writev2.Histogram{
				writev2.FromIntHistogram(0, 3000, IntHistogram()),
				{Count: &writev2.Histogram_CountFloat{CountFloat: 4}, ZeroCount: &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: 1}, Sum: 2, Timestamp: 4000},
			},
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: st.Symbolize("RPC latency.")},
		},
		{
			LabelsRefs: ref("__name__", "rpc_seconds_bucket", "le", "1"),
			Samples:    []writev2.Sample{{Value: 3, Timestamp: 3000}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: st.Symbolize("RPC latency.")},
		},
	}}
	req.Symbols = st.Symbols()
	return req
}

// IntHistogram is a small integer native histogram.
func IntHistogram() *histogram.Histogram {
	return &histogram.Histogram{Count: 6, ZeroCount: 1, Sum: 3, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 1}}
}
