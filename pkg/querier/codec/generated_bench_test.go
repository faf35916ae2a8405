package codec

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"google.golang.org/protobuf/proto"

	"github.com/cortex-tls/cortex/pkg/querier/codec/internal/querypb"
)

// The hand-written protowire codec set against the structs protoc-gen-go
// generates from Cortex's messages (internal/querypb), on a range query's
// answer of 1,000 series of 240 points each: the package doc's figures.

func benchMatrix() promql.Matrix {
	m := make(promql.Matrix, 1000)
	for i := range m {
		points := make([]promql.FPoint, 240)
		for j := range points {
			points[j] = promql.FPoint{T: 1_700_000_000_000 + int64(j)*15_000, F: float64(i*j%977) / 7}
		}
		m[i] = promql.Series{
			Metric: labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "10.0.0."+strconv.Itoa(i%250)+":9090", "pod", "api-"+strconv.Itoa(i)),
			Floats: points,
		}
	}
	return m
}

// generatedFromMatrix is the querier's answer as generated structs: one
// LabelPair per label and one CortexSample per point.
func generatedFromMatrix(m promql.Matrix) *querypb.PrometheusResponse {
	streams := make([]*querypb.SampleStream, len(m))
	for i, s := range m {
		st := &querypb.SampleStream{
			Labels:  make([]*querypb.LabelPair, 0, s.Metric.Len()),
			Samples: make([]*querypb.CortexSample, len(s.Floats)),
		}
		s.Metric.Range(func(l labels.Label) {
			st.Labels = append(st.Labels, &querypb.LabelPair{Name: []byte(l.Name), Value: []byte(l.Value)})
		})
		for j, p := range s.Floats {
			st.Samples[j] = &querypb.CortexSample{Value: p.F, TimestampMs: p.T}
		}
		streams[i] = st
	}
	return &querypb.PrometheusResponse{
		Status: "success",
		Data: &querypb.PrometheusData{
			ResultType: "matrix",
			Result:     &querypb.PrometheusQueryResult{Result: &querypb.PrometheusQueryResult_Matrix{Matrix: &querypb.Matrix{SampleStreams: streams}}},
		},
	}
}

// generatedMatrixJSON writes a decoded float matrix answer as Prometheus'
// JSON with the package's writers, as the frontend would after a generated
// Unmarshal.
func generatedMatrixJSON(b []byte, r *querypb.PrometheusResponse) []byte {
	b = append(b, `{"status":"success","data":{"resultType":`...)
	b = AppendString(b, r.GetData().GetResultType())
	b = append(b, `,"result":[`...)
	for i, s := range r.GetData().GetResult().GetMatrix().GetSampleStreams() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"metric":{`...)
		for j, l := range s.GetLabels() {
			if j > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, string(l.GetName()))
			b = append(b, ':')
			b = AppendString(b, string(l.GetValue()))
		}
		b = append(b, `},"values":[`...)
		for j, p := range s.GetSamples() {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = AppendTimestamp(b, p.GetTimestampMs())
			b = append(b, ',')
			b = AppendFloat(b, p.GetValue())
			b = append(b, ']')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}}"...)
}

// TestGeneratedStructsAgree: the benchmark's two sides do the same work,
// the same bytes on the wire and the same JSON out.
func TestGeneratedStructsAgree(t *testing.T) {
	m := benchMatrix()
	hand, err := AppendProtobuf(nil, Answer{Value: m}, MIMEProtobuf)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := proto.Marshal(generatedFromMatrix(m))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hand, gen) {
		t.Fatalf("hand-written encoding is %d bytes, generated %d, and they differ", len(hand), len(gen))
	}
	handJSON, err := ToJSON(nil, hand)
	if err != nil {
		t.Fatal(err)
	}
	var r querypb.PrometheusResponse
	if err := proto.Unmarshal(gen, &r); err != nil {
		t.Fatal(err)
	}
	genJSON := generatedMatrixJSON(nil, &r)
	if !bytes.Equal(handJSON, genJSON) {
		t.Fatalf("JSON differs:\nhand-written %.300s\ngenerated    %.300s", handJSON, genJSON)
	}
	if want := `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"http_requests_total","instance":"10.0.0.0:9090","job":"api","pod":"api-0"},"values":[[1700000000,"0"],[1700000015,"0"]`; !bytes.HasPrefix(handJSON, []byte(want)) {
		t.Fatalf("JSON starts %.200s, want %s", handJSON, want)
	}
}

func BenchmarkEncodeMatrix(b *testing.B) {
	m := benchMatrix()
	b.Run("codec=protowire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := AppendProtobuf(nil, Answer{Value: m}, MIMEProtobuf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("codec=generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(generatedFromMatrix(m)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeMatrixToJSON(b *testing.B) {
	body, err := AppendProtobuf(nil, Answer{Value: benchMatrix()}, MIMEProtobuf)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("codec=protowire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ToJSON(make([]byte, 0, 2*len(body)), body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("codec=generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r querypb.PrometheusResponse
			if err := proto.Unmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
			generatedMatrixJSON(make([]byte, 0, 2*len(body)), &r)
		}
	})
}
