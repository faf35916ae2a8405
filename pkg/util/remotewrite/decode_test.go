package remotewrite

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/cortex-tls/cortex/pkg/util/remotewrite/rwtest"
)

// normalizeV1 clears what the two decoders legitimately disagree on: the
// unknown fields gogo keeps, and nil versus empty slices.
func normalizeV1(r *prompb.WriteRequest) *prompb.WriteRequest {
	out := &prompb.WriteRequest{}
	for _, ts := range r.Timeseries {
		n := prompb.TimeSeries{}
		for _, l := range ts.Labels {
			n.Labels = append(n.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		}
		for _, s := range ts.Samples {
			n.Samples = append(n.Samples, prompb.Sample{Value: s.Value, Timestamp: s.Timestamp})
		}
		n.Exemplars = append(n.Exemplars, ts.Exemplars...)
		n.Histograms = append(n.Histograms, ts.Histograms...)
		out.Timeseries = append(out.Timeseries, n)
	}
	for _, m := range r.Metadata {
		m.XXX_unrecognized = nil
		out.Metadata = append(out.Metadata, m)
	}
	return out
}

// equalV1 compares two decoded requests by their encoding, which, unlike
// reflect.DeepEqual, takes NaN for NaN.
func equalV1(a, b *prompb.WriteRequest) bool {
	ea, err := normalizeV1(a).Marshal()
	if err != nil {
		panic(err)
	}
	eb, err := normalizeV1(b).Marshal()
	if err != nil {
		panic(err)
	}
	return bytes.Equal(ea, eb)
}

func TestDecodeV1MatchesGogo(t *testing.T) {
	raw, err := rwtest.V1Request().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var want prompb.WriteRequest
	if err := want.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	var got prompb.WriteRequest
	if err := DecodeV1(raw, &got, nil); err != nil {
		t.Fatal(err)
	}
	if !equalV1(&want, &got) {
		t.Fatalf("decodeV1 = %+v\nwant %+v", got, want)
	}

	// Reusing the request for a smaller one leaves nothing of the first.
	small := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "x"}},
		Samples: []prompb.Sample{{Value: 7, Timestamp: 7}},
	}}}
	raw2, _ := small.Marshal()
	if err := DecodeV1(raw2, &got, nil); err != nil {
		t.Fatal(err)
	}
	if !equalV1(small, &got) {
		t.Fatalf("reused decodeV1 = %+v\nwant %+v", got, small)
	}
}

func TestDecodeV1Malformed(t *testing.T) {
	raw, _ := rwtest.V1Request().Marshal()
	for name, b := range map[string][]byte{
		"truncated":         raw[:len(raw)-3],
		"wrong wire type":   {0x08, 0x01},             // field 1 as a varint
		"length past end":   {0x0a, 0x10, 0x00},       // series of 16 bytes, 1 present
		"varint overflow":   bytesRepeat(0xff, 11),    // key never ends
		"end group":         {0x0c},                   // wire type 4
		"field zero":        {0x02, 0x00},             // field 0
		"bad label":         {0x0a, 0x02, 0x0a, 0x05}, // label of 5 bytes, 0 present
		"bad sample value":  {0x0a, 0x04, 0x12, 0x02, 0x09, 0x00},
		"unterminated skip": {0x7a, 0x05, 0x01}, // unknown field 15, 5 bytes, 1 present
	} {
		t.Run(name, func(t *testing.T) {
			var req prompb.WriteRequest
			if err := DecodeV1(b, &req, nil); err == nil {
				t.Fatal("decodeV1 accepted malformed input")
			}
			var gogo prompb.WriteRequest
			if err := gogo.Unmarshal(b); err == nil {
				t.Fatal("gogo accepted the input: the case is not malformed")
			}
		})
	}
}

func bytesRepeat(b byte, n int) []byte { return []byte(strings.Repeat(string([]byte{b}), n)) }

func TestDecodeV2(t *testing.T) {
	raw, err := rwtest.V2Request().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var d V2Decoder
	var got prompb.WriteRequest
	var issues SeriesIssues
	if err := d.Decode(raw, &got, &issues); err != nil {
		t.Fatal(err)
	}
	if issues.First != "" {
		t.Fatalf("unexpected issues: %+v", issues)
	}
	if len(got.Timeseries) != 3 {
		t.Fatalf("got %d series, want 3", len(got.Timeseries))
	}
	ts := got.Timeseries[0]
	if s := seriesString(ts.Labels); s != `__name__="http_requests_total",job="api"` {
		t.Errorf("labels = %s", s)
	}
	if len(ts.Samples) != 2 || ts.Samples[1].Value != 2 || ts.Samples[1].Timestamp != 2000 {
		t.Errorf("samples = %+v", ts.Samples)
	}
	if len(ts.Exemplars) != 1 || seriesString(ts.Exemplars[0].Labels) != `trace_id="t1"` || ts.Exemplars[0].Timestamp != 1000 {
		t.Errorf("exemplars = %+v", ts.Exemplars)
	}
	h := got.Timeseries[1].Histograms
	if len(h) != 2 || h[0].GetCountInt() != 6 || h[0].Timestamp != 3000 || len(h[0].PositiveDeltas) != 2 || h[1].GetCountFloat() != 4 || h[1].GetZeroCountFloat() != 1 {
		t.Errorf("histograms = %+v", h)
	}
	wantMeta := []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests."},
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "rpc_seconds", Help: "RPC latency."},
	}
	if !reflect.DeepEqual(got.Metadata, wantMeta) {
		t.Errorf("metadata = %+v, want %+v (one per family)", got.Metadata, wantMeta)
	}
}

func TestDecodeV2BadReferences(t *testing.T) {
	req := rwtest.V2Request()
	req.Timeseries[1].LabelsRefs = append(req.Timeseries[1].LabelsRefs, 999, 1) // out of the table
	req.Timeseries[0].Exemplars[0].LabelsRefs = []uint32{1}                     // odd
	raw, _ := req.Marshal()
	var d V2Decoder
	var got prompb.WriteRequest
	var issues SeriesIssues
	if err := d.Decode(raw, &got, &issues); err != nil {
		t.Fatal(err)
	}
	if len(got.Timeseries) != 2 {
		t.Fatalf("got %d series, want 2: the one with bad references is left out", len(got.Timeseries))
	}
	if len(got.Timeseries[0].Exemplars) != 0 || len(got.Timeseries[0].Samples) != 2 {
		t.Errorf("bad exemplar not dropped alone: %+v", got.Timeseries[0])
	}
	if issues.Samples != 2 || issues.Exemplars != 1 || !strings.Contains(issues.First, "invalid labelRefs length 1") {
		t.Errorf("issues = %+v", issues)
	}
}

func TestFamilyName(t *testing.T) {
	for _, c := range []struct {
		name string
		typ  prompb.MetricMetadata_MetricType
		want string
	}{
		{"foo_bucket", prompb.MetricMetadata_HISTOGRAM, "foo"},
		{"foo_count", prompb.MetricMetadata_SUMMARY, "foo"},
		{"foo_bucket", prompb.MetricMetadata_SUMMARY, "foo_bucket"},
		{"foo_total", prompb.MetricMetadata_COUNTER, "foo_total"},
		{"_sum", prompb.MetricMetadata_HISTOGRAM, "_sum"},
	} {
		if got := familyName(c.name, c.typ); got != c.want {
			t.Errorf("familyName(%q, %v) = %q, want %q", c.name, c.typ, got, c.want)
		}
	}
}

// oracleV2 decodes with gogo's generated code and converts as decode is
// documented to, so that the fuzzer compares two independent decoders.
func oracleV2(b []byte) (*prompb.WriteRequest, SeriesIssues, error) {
	var req writev2.Request
	var issues SeriesIssues
	if err := req.Unmarshal(b); err != nil {
		return nil, issues, err
	}
	d := V2Decoder{symbols: req.Symbols, families: map[string]struct{}{}}
	out := &prompb.WriteRequest{}
	for _, ts := range req.Timeseries {
		var n prompb.TimeSeries
		for _, s := range ts.Samples {
			n.Samples = append(n.Samples, prompb.Sample{Value: s.Value, Timestamp: s.Timestamp})
		}
		for i := range ts.Histograms {
			n.Histograms = append(n.Histograms, histogramFromV2(&ts.Histograms[i]))
		}
		for _, e := range ts.Exemplars {
			ls, err := d.labels(nil, e.LabelsRefs)
			if err != nil {
				issues.Exemplars++
				issues.add("exemplar")
				continue
			}
			n.Exemplars = append(n.Exemplars, prompb.Exemplar{Labels: ls, Value: e.Value, Timestamp: e.Timestamp})
		}
		ls, err := d.labels(nil, ts.LabelsRefs)
		if err != nil {
			issues.Samples += len(n.Samples) + len(n.Histograms)
			issues.Exemplars += len(n.Exemplars)
			issues.add("labels")
			continue
		}
		n.Labels = ls
		out.Timeseries = append(out.Timeseries, n)
		md := ts.Metadata
		d.metadata(out, &out.Timeseries[len(out.Timeseries)-1], &md, &issues)
	}
	return out, issues, nil
}

func fuzzSeeds(f *testing.F, valid ...[]byte) {
	for _, b := range valid {
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-1])
		c := append([]byte(nil), b...)
		c[len(c)/3] ^= 0xff
		f.Add(c)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x10, 0x00})
	f.Add(bytesRepeat(0xff, 11))
	f.Add([]byte{0x7b, 0x08, 0x01, 0x7c}) // a group around a varint
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0xff})
}

// FuzzDecodeV1 checks decodeV1 against gogo's generated Unmarshal: the same
// inputs are accepted, they decode to the same request, and a reused
// request decodes as a fresh one does.
func FuzzDecodeV1(f *testing.F) {
	raw, _ := rwtest.V1Request().Marshal()
	fuzzSeeds(f, raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		var want prompb.WriteRequest
		wantErr := want.Unmarshal(b)
		var got prompb.WriteRequest
		var spans [][2]int32
		gotErr := DecodeV1(b, &got, &spans)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("decodeV1 error %v, gogo error %v", gotErr, wantErr)
		}
		if wantErr != nil {
			return
		}
		if !equalV1(&want, &got) {
			t.Fatalf("decodeV1 = %+v\ngogo = %+v", got, want)
		}
		// Each series' bytes, forwarded as they are to the ingesters,
		// decode there to what the distributor validated.
		if len(spans) != len(got.Timeseries) {
			t.Fatalf("%d spans for %d series", len(spans), len(got.Timeseries))
		}
		for i, sp := range spans {
			var ts prompb.TimeSeries
			if err := ts.Unmarshal(b[sp[0]:sp[1]]); err != nil {
				t.Fatalf("series %d: %v", i, err)
			}
			one := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}
			mine := &prompb.WriteRequest{Timeseries: got.Timeseries[i : i+1]}
			if !equalV1(one, mine) {
				t.Fatalf("series %d forwarded as %+v, validated as %+v", i, ts, got.Timeseries[i])
			}
		}
		var reused prompb.WriteRequest
		if err := DecodeV1(raw, &reused, nil); err != nil {
			t.Fatal(err)
		}
		if err := DecodeV1(b, &reused, nil); err != nil {
			t.Fatal(err)
		}
		if !equalV1(&want, &reused) {
			t.Fatalf("reused decodeV1 = %+v\ngogo = %+v", reused, want)
		}
	})
}

// FuzzDecodeV2 checks the 2.0 decoder against gogo's generated Unmarshal
// followed by a plain conversion.
func FuzzDecodeV2(f *testing.F) {
	raw, _ := rwtest.V2Request().Marshal()
	bad := rwtest.V2Request()
	bad.Timeseries[0].LabelsRefs = append(bad.Timeseries[0].LabelsRefs, 77)
	rawBad, _ := bad.Marshal()
	fuzzSeeds(f, raw, rawBad)
	var d V2Decoder
	var got prompb.WriteRequest
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantIssues, wantErr := oracleV2(b)
		// d and got are reused across inputs, as in the distributor.
		var issues SeriesIssues
		gotErr := d.Decode(b, &got, &issues)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("decode error %v, gogo error %v", gotErr, wantErr)
		}
		if wantErr != nil {
			return
		}
		if !equalV1(want, &got) {
			t.Fatalf("decode = %+v\noracle = %+v", got, *want)
		}
		if issues.Samples != wantIssues.Samples || issues.Exemplars != wantIssues.Exemplars || (issues.First == "") != (wantIssues.First == "") {
			t.Fatalf("issues = %+v, oracle %+v", issues, wantIssues)
		}
	})
}

// seriesString renders labels as the tests name series: a="b",c="d".
func seriesString(ls []prompb.Label) string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	return b.String()
}

func TestStartTimestampCarried(t *testing.T) {
	req := rwtest.V2Request()
	req.Timeseries[0].Samples[0].StartTimestamp = 500
	req.Timeseries[1].Histograms[0].StartTimestamp = 2500
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var d V2Decoder
	var got prompb.WriteRequest
	var issues SeriesIssues
	if err := d.Decode(raw, &got, &issues); err != nil {
		t.Fatal(err)
	}
	s := got.Timeseries[0].Samples
	if st := StartTimestamp(s[0].XXX_unrecognized, 3); st != 500 {
		t.Errorf("sample start timestamp = %d, want 500", st)
	}
	if len(s[1].XXX_unrecognized) != 0 {
		t.Errorf("sample without a start timestamp has unknown fields %x", s[1].XXX_unrecognized)
	}
	h := got.Timeseries[1].Histograms
	if st := StartTimestamp(h[0].XXX_unrecognized, 17); st != 2500 {
		t.Errorf("histogram start timestamp = %d, want 2500", st)
	}

	// Forwarded as 1.0, as the distributor forwards series to the
	// ingesters, the start timestamps decode again.
	v1, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var again prompb.WriteRequest
	if err := DecodeV1(v1, &again, nil); err != nil {
		t.Fatal(err)
	}
	if st := StartTimestamp(again.Timeseries[0].Samples[0].XXX_unrecognized, 3); st != 500 {
		t.Errorf("forwarded sample start timestamp = %d, want 500", st)
	}
	if st := StartTimestamp(again.Timeseries[1].Histograms[0].XXX_unrecognized, 17); st != 2500 {
		t.Errorf("forwarded histogram start timestamp = %d, want 2500", st)
	}
}
