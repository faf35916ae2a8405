package distributor

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// benchOTLP is benchRequest as an OTLP counter: the same 1,000 series
// (bench_metric_total with the same labels) and one sample each.
func benchOTLP(req *prompb.WriteRequest) pmetric.Metrics {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("bench_metric")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for _, ts := range req.Timeseries {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(ts.Samples[0].Timestamp * 1e6))
		dp.SetDoubleValue(ts.Samples[0].Value)
		for _, l := range ts.Labels {
			if l.Name != "__name__" {
				dp.Attributes().PutStr(l.Name, l.Value)
			}
		}
	}
	return md
}

// benchV2 is req as a remote write 2.0 request.
func benchV2(req *prompb.WriteRequest) *writev2.Request {
	st := writev2.NewSymbolTable()
	out := &writev2.Request{}
	for _, ts := range req.Timeseries {
		var refs []uint32
		for _, l := range ts.Labels {
			refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
		}
		out.Timeseries = append(out.Timeseries, writev2.TimeSeries{
			LabelsRefs: refs,
			Samples:    []writev2.Sample{{Value: ts.Samples[0].Value, Timestamp: ts.Samples[0].Timestamp}},
		})
	}
	out.Symbols = st.Symbols()
	return out
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngestFormats writes the same 1,000 series, one sample each,
// through the distributor's HTTP handler as OTLP (protobuf, protobuf with
// gzip, JSON), remote write 2.0 and remote write 1.0, in front of three
// ingesters (replication factor 3) that drop what they get. samples/cpu-s
// is per CPU-second of the whole process: handler, distributor and the
// ingesters' gRPC servers.
func BenchmarkIngestFormats(b *testing.B) {
	req := benchRequest()
	md := benchOTLP(req)
	otlpBody, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	otlpJSON, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	v2, err := benchV2(req).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	v2 = snappy.Encode(nil, v2)
	v1 := encodeV1(b, req)
	otlpGzip := gzipped(b, otlpBody)

	c := newCluster(b, clusterOpts{discard: true, limits: func(l *validation.Limits) { l.IngestionRate = 0 }})
	otlpHandler := tenant.HTTPMiddleware(true, c.d.OTLPHandler())

	// The OTLP request translates to the remote-write request's series.
	or := &otlpRequest{}
	or.raw.Write(otlpBody)
	if err := c.d.translateOTLP(context.Background(), testTenant, otlpContentTypeProtobuf, or); err != nil {
		b.Fatal(err)
	}
	var got, want []string
	for i := range or.wr.Timeseries {
		got = append(got, seriesString(or.wr.Timeseries[i].Labels))
		want = append(want, seriesString(req.Timeseries[i].Labels))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		b.Fatalf("the OTLP request translates to other series: %v..., want %v...", got[:2], want[:2])
	}

	for _, bc := range []struct {
		name  string
		serve func() int
	}{
		{"otlp-protobuf", func() int { return postOTLP(otlpHandler, otlpBody, nil).Code }},
		{"otlp-protobuf-gzip", func() int {
			return postOTLP(otlpHandler, otlpGzip, map[string]string{"Content-Encoding": "gzip"}).Code
		}},
		{"otlp-json", func() int {
			return postOTLP(otlpHandler, otlpJSON, map[string]string{"Content-Type": "application/json"}).Code
		}},
		{"remote-write-2.0", func() int {
			return c.pushRaw(v2, map[string]string{
				"Content-Type":                      "application/x-protobuf;proto=io.prometheus.write.v2.Request",
				"X-Prometheus-Remote-Write-Version": "2.0.0",
			}).StatusCode
		}},
		{"remote-write-1.0", func() int { return c.pushRaw(v1, nil).StatusCode }},
	} {
		// Warm the pools and the heap first, so that the first format
		// measured pays no more for them than the others.
		for range 20 {
			if code := bc.serve(); code/100 != 2 {
				b.Fatalf("push: %d", code)
			}
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := processCPU(b)
			for b.Loop() {
				if code := bc.serve(); code/100 != 2 {
					b.Fatalf("push: %d", code)
				}
			}
			cpu := processCPU(b) - start
			samples := float64(b.N * len(req.Timeseries))
			b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(samples/cpu.Seconds(), "samples/cpu-s")
		})
	}
}
