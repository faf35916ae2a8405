package codec

import (
	"math"
	"os"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// cortexResponseType is Cortex v1.21.1's tripperware.PrometheusResponse,
// from testdata/cortex_query.binpb: the descriptors protoc
// (--include_imports --descriptor_set_out) makes of Cortex's
// pkg/querier/tripperware/query.proto and the cortexpb messages it uses
// (LabelPair, Sample, Histogram, BucketSpan), their gogoproto options taken
// out (they change the Go code, not the wire).
func cortexResponseType(t *testing.T) protoreflect.MessageType {
	t.Helper()
	raw, err := os.ReadFile("testdata/cortex_query.binpb")
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		t.Fatal(err)
	}
	d, err := files.FindDescriptorByName("tripperware.PrometheusResponse")
	if err != nil {
		t.Fatal(err)
	}
	return dynamicpb.NewMessageType(d.(protoreflect.MessageDescriptor))
}

// get walks a dynamic message along field names (and list indexes).
func get(m protoreflect.Message, path ...any) protoreflect.Value {
	var (
		v protoreflect.Value
		f protoreflect.FieldDescriptor
	)
	for _, p := range path {
		switch p := p.(type) {
		case string:
			f = m.Descriptor().Fields().ByName(protoreflect.Name(p))
			v = m.Get(f)
			if f.Message() != nil && !f.IsList() {
				m = v.Message()
			}
		case int:
			v = v.List().Get(p)
			if f.Message() != nil {
				m = v.Message()
			}
		}
	}
	return v
}

// TestCortexReadsOurAnswers: what AppendProtobuf writes is Cortex's
// message as Cortex's generated code reads it, without unknown fields
// but the statistics Cortex's message lacks.
func TestCortexReadsOurAnswers(t *testing.T) {
	typ := cortexResponseType(t)
	h := &histogram.FloatHistogram{Count: 3, Sum: 4.5, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{1, 2}}
	matrix := promql.Matrix{{Metric: labels.FromStrings("job", "api", "le", "x"), Floats: []promql.FPoint{{T: 1000, F: 1.5}, {T: 2000, F: math.Inf(1)}}, Histograms: []promql.HPoint{{T: 3000, H: h}}}}
	enc, err := AppendProtobuf(nil, Answer{Value: matrix, Warnings: []string{"w"}, Infos: []string{"i"}}, MIMEProtobuf)
	if err != nil {
		t.Fatal(err)
	}
	m := typ.New()
	if err := proto.Unmarshal(enc, m.Interface()); err != nil {
		t.Fatal(err)
	}
	if len(m.GetUnknown()) != 0 {
		t.Errorf("unknown fields %x", m.GetUnknown())
	}
	stream := []any{"Data", "Result", "matrix", "sampleStreams", 0}
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"Status"}, "success"},
		{[]any{"Data", "ResultType"}, "matrix"},
		{append(stream, "labels", 1, "name"), []byte("le")},
		{append(stream, "labels", 1, "value"), []byte("x")},
		{append(stream, "samples", 0, "value"), 1.5},
		{append(stream, "samples", 0, "timestamp_ms"), int64(1000)},
		{append(stream, "samples", 1, "value"), math.Inf(1)},
		{append(stream, "histograms", 0, "timestamp_ms"), int64(3000)},
		{append(stream, "histograms", 0, "histogram", "count"), 3.0},
		{append(stream, "histograms", 0, "histogram", "buckets", 1, "upper"), 2.0},
		{append(stream, "histograms", 0, "histogram", "buckets", 1, "count"), 2.0},
		{[]any{"Warnings", 0}, "w"},
		{[]any{"Infos", 0}, "i"},
	} {
		got := get(m, c.path...).Interface()
		if b, ok := got.([]byte); ok {
			got = string(b)
			c.want = string(c.want.([]byte))
		}
		if got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
	// The ruler's encoding: the vector's histogram whole.
	vector := promql.Vector{{Metric: labels.FromStrings("job", "api"), T: 5000, H: h}}
	if enc, err = AppendProtobuf(nil, Answer{Value: vector}, MIMECortexQuery); err != nil {
		t.Fatal(err)
	}
	m = typ.New()
	if err := proto.Unmarshal(enc, m.Interface()); err != nil {
		t.Fatal(err)
	}
	sample := []any{"Data", "Result", "vector", "samples", 0}
	if got := get(m, append(sample, "rawHistogram", "timestamp_ms")...).Int(); got != 5000 {
		t.Errorf("rawHistogram timestamp %d", got)
	}
	if got := get(m, append(sample, "rawHistogram", "positive_counts")...).List().Len(); got != 2 {
		t.Errorf("rawHistogram positive counts: %d", got)
	}
}

// TestWeReadCortexAnswers: a message as Cortex's generated code writes it
// reads as Prometheus' JSON.
func TestWeReadCortexAnswers(t *testing.T) {
	typ := cortexResponseType(t)
	m := typ.New()
	set := func(m protoreflect.Message, name string, v any) protoreflect.Message {
		f := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		switch {
		case f.IsList():
			l := m.Mutable(f).List()
			if msg, ok := v.(func(protoreflect.Message)); ok {
				e := l.NewElement()
				msg(e.Message())
				l.Append(e)
			} else {
				l.Append(protoreflect.ValueOf(v))
			}
		case f.Message() != nil:
			return m.Mutable(f).Message()
		default:
			m.Set(f, protoreflect.ValueOf(v))
		}
		return nil
	}
	set(m, "Status", "success")
	data := set(m, "Data", nil)
	set(data, "ResultType", "matrix")
	matrix := set(set(data, "Result", nil), "matrix", nil)
	set(matrix, "sampleStreams", func(s protoreflect.Message) {
		set(s, "labels", func(l protoreflect.Message) {
			set(l, "name", []byte("job"))
			set(l, "value", []byte("a\"b"))
		})
		set(s, "samples", func(p protoreflect.Message) {
			set(p, "value", 0.25)
			set(p, "timestamp_ms", int64(1500))
		})
		set(s, "samples", func(p protoreflect.Message) {
			set(p, "timestamp_ms", int64(2000))
		})
	})
	samples := set(set(data, "stats", nil), "samples", nil)
	set(samples, "totalQueryableSamples", int64(2))
	set(samples, "peakSamples", int64(2))
	set(m, "Warnings", "careful")
	enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(m.Interface())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ToJSON(nil, enc)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a\"b"},"values":[[1.500,"0.25"],[2,"0"]]}],"stats":{"timings":{"evalTotalTime":0,"resultSortTime":0,"queryPreparationTime":0,"innerEvalTime":0,"execQueueTime":0,"execTotalTime":0},"samples":{"totalQueryableSamples":2,"samplesRead":0,"seriesTouched":0,"peakSamples":2}}},"warnings":["careful"]}`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
