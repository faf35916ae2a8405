package ingester

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// TestPushKeepsNothingOfTheRequest checks that what Push stores survives
// the reuse of the request's buffer, into which the decoded request's
// strings point: series labels, per-metric series counts, exemplars,
// metadata and error messages.
func TestPushKeepsNothingOfTheRequest(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	ctx := ctxFor("t")

	// Two requests of the same shape and size: decoding the second into
	// the first's PushRequest overwrites every byte of its buffer.
	request := func(c string, ts int64) []byte {
		name := strings.Repeat(c, 4) + "_total"
		req := &prompb.WriteRequest{
			Timeseries: []prompb.TimeSeries{{
				Labels:    series(name, "job", strings.Repeat(c, 4)),
				Samples:   []prompb.Sample{{Timestamp: ts, Value: 1}},
				Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: strings.Repeat(c, 8)}}, Value: 1, Timestamp: ts}},
			}},
			Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: name, Help: strings.Repeat(c, 4) + " help", Unit: strings.Repeat(c, 2)}},
		}
		b, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rawA, rawZ := request("a", base), request("z", base)
	if len(rawA) != len(rawZ) {
		t.Fatalf("requests of %d and %d bytes", len(rawA), len(rawZ))
	}
	pr := client.GetPushRequest()
	defer pr.Release()
	push := func(raw []byte) error {
		t.Helper()
		if err := pr.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		_, err := h.ing.Push(ctx, pr)
		return err
	}
	if err := push(rawA); err != nil {
		t.Fatal(err)
	}
	job := pr.Timeseries[0].Labels[1].Value
	if err := push(rawZ); err != nil {
		t.Fatal(err)
	}
	if job != "zzzz" {
		t.Fatalf("a decoded string reads %q after the buffer's reuse: the buffer was not reused in place, the test tests nothing", job)
	}
	// A refused sample names its series in the error.
	errPush := push(request("a", base-60000))
	if err := pr.Unmarshal(rawZ); err != nil {
		t.Fatal(err)
	}
	if errPush == nil || !strings.Contains(errPush.Error(), `job="aaaa"`) || !strings.Contains(errPush.Error(), `aaaa_total`) {
		t.Errorf("error after the buffer's reuse: %v", errPush)
	}

	for _, c := range []string{"a", "z"} {
		name, job := strings.Repeat(c, 4)+"_total", strings.Repeat(c, 4)
		got := h.query("t", base, base, eq(model.MetricNameLabel, name))
		if len(got) != 1 {
			t.Fatalf("%s: %d series, want 1", name, len(got))
		}
		if s, want := labelsString(got[0].Labels), fmt.Sprintf(`{__name__=%q, job=%q}`, name, job); s != want {
			t.Errorf("series %s, want %s", s, want)
		}
		// The postings index too: the series is found by its labels.
		if got := h.query("t", base, base, eq("job", job)); len(got) != 1 {
			t.Errorf("job=%q: %d series, want 1", job, len(got))
		}

		eqr, err := h.ing.getTSDB("t").db.ExemplarQuerier(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		res, err := eqr.Select(base-60000, base+60000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, name)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || len(res[0].Exemplars) != 1 || res[0].Exemplars[0].Labels.Get("trace_id") != strings.Repeat(c, 8) ||
			res[0].SeriesLabels.Get("job") != job {
			t.Errorf("%s: exemplars %+v", name, res)
		}

		md, err := h.ing.Metadata(ctx, &client.MetadataRequest{Metric: name})
		if err != nil {
			t.Fatal(err)
		}
		if len(md.Metadata) != 1 || md.Metadata[0].MetricFamilyName != name || md.Metadata[0].Help != job+" help" ||
			md.Metadata[0].Unit != strings.Repeat(c, 2) || md.Metadata[0].Type != "counter" {
			t.Errorf("%s: metadata %+v", name, md.Metadata)
		}
	}
	md, err := h.ing.Metadata(ctx, &client.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Metadata) != 2 || md.Metadata[0].MetricFamilyName != "aaaa_total" || md.Metadata[1].MetricFamilyName != "zzzz_total" {
		t.Errorf("metadata families %+v", md.Metadata)
	}
	u := h.ing.getTSDB("t")
	u.seriesMu.Lock()
	counts := fmt.Sprint(u.seriesInMetric)
	u.seriesMu.Unlock()
	if counts != "map[aaaa_total:1 zzzz_total:1]" {
		t.Errorf("series per metric %s", counts)
	}
}

// TestPushOverGRPCReusesRequests pushes many different requests through
// the gRPC server, whose pooled requests are reused from one to the next,
// then checks every series.
func TestPushOverGRPCReusesRequests(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	const requests, perReq = 40, 25
	for r := range requests {
		var ss []prompb.TimeSeries
		for s := range perReq {
			id := r*perReq + s
			ss = append(ss, floats(series("reuse_total", "id", fmt.Sprintf("%04d", id), "pod", fmt.Sprintf("pod-%d-%s", id, strings.Repeat("x", id%7))), float64(base), float64(id)))
		}
		h.mustPush("t", ss...)
	}
	got := h.query("t", base, base, eq(model.MetricNameLabel, "reuse_total"))
	if len(got) != requests*perReq {
		t.Fatalf("%d series, want %d", len(got), requests*perReq)
	}
	for id, s := range got { // sorted by id
		want := fmt.Sprintf(`{__name__="reuse_total", id="%04d", pod="pod-%d-%s"}`, id, id, strings.Repeat("x", id%7))
		if ls := labelsString(s.Labels); ls != want || len(s.Samples) != 1 || s.Samples[0].Value != float64(id) {
			t.Fatalf("series %d: %s %v, want %s", id, ls, s.Samples, want)
		}
	}
}

// TestPushRefusalDetails checks what a partly refused Push answers: the
// error names the first refused series, and its details say what each
// series lost, by its index in the request, which is what the
// distributor counts written samples from.
func TestPushRefusalDetails(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	b := series("temp", "room", "b")
	h.mustPush("t", floats(b, float64(base), 1))

	ex := prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: "1"}}, Value: 1, Timestamp: base + 1000}
	good := floats(series("temp", "room", "a"), float64(base), 1, float64(base+1000), 2)
	ooo := floats(b, float64(base-1000), 2, float64(base+1000), 3)
	noName := floats([]prompb.Label{{Name: "room", Value: "c"}}, float64(base), 1)
	noName.Exemplars = []prompb.Exemplar{ex}
	err := h.push("t", good, ooo, noName)
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), `series {__name__="temp", room="b"}: out-of-order sample at timestamp `+fmt.Sprint(base-1000)) ||
		!strings.Contains(st.Message(), "(and 2 more refused samples or exemplars in this request)") {
		t.Fatalf("push: %v, want InvalidArgument naming room b first", err)
	}
	var resp *client.PushResponse
	for _, d := range st.Details() {
		if r, ok := d.(*client.PushResponse); ok {
			resp = r
		}
	}
	if resp == nil {
		t.Fatalf("no PushResponse in the details of %v", st.Details())
	}
	want := []string{"series:1 samples:1 histograms:0 exemplars:0", "series:2 samples:1 histograms:0 exemplars:1"}
	var got []string
	for _, r := range resp.Refused {
		got = append(got, fmt.Sprintf("series:%d samples:%d histograms:%d exemplars:%d", r.Series, r.Samples, r.Histograms, r.Exemplars))
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("refused = %v, want %v", got, want)
	}
	if resp.FirstSeries != 1 || !strings.HasPrefix(resp.First, `series {__name__="temp", room="b"}: out-of-order`) || strings.Contains(resp.First, "more refused") {
		t.Errorf("first = %d %q", resp.FirstSeries, resp.First)
	}
	// Everything else was stored.
	if got := h.query("t", 0, 0, eq("room", "a")); len(got) != 1 || len(got[0].Samples) != 2 {
		t.Errorf("room a: %v", got)
	}
	if got := h.query("t", 0, 0, eq("room", "b")); len(got) != 1 || len(got[0].Samples) != 2 {
		t.Errorf("room b: %v, want the sample at base and the one after it", got)
	}

	// A request refused in nothing answers an empty PushResponse.
	r, err := h.conn.Push(ctxFor("t"), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{floats(b, float64(base+2000), 4)}})
	if err != nil || len(r.Refused) != 0 || r.First != "" {
		t.Fatalf("clean push: %v %v", r, err)
	}
}

// TestPushStartTimestamp checks that a sample's start timestamp, carried
// in its unknown field 3 (field 17 of a native histogram), is stored as
// Prometheus stores it: a zero sample at that time before the series'
// first sample, and ignored once the series is past it.
func TestPushStartTimestamp(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, enableNativeHistograms))
	stField := func(field int32, st int64) []byte {
		b := binary.AppendUvarint(nil, uint64(field)<<3)
		return binary.AppendUvarint(b, uint64(st))
	}
	counter := floats(series("requests_total"), float64(base), 5)
	counter.Samples[0].XXX_unrecognized = stField(3, base-10_000)
	hist := prompb.FromIntHistogram(base, &histogram.Histogram{Count: 3, Sum: 2, Schema: 0, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{3}})
	hist.XXX_unrecognized = stField(17, base-20_000)
	h.mustPush("t", counter, prompb.TimeSeries{Labels: series("latency_seconds"), Histograms: []prompb.Histogram{hist}})

	got := h.query("t", 0, 0, eq("__name__", "requests_total"))
	if len(got) != 1 || len(got[0].Samples) != 2 || !sameSample(got[0].Samples[0], prompb.Sample{Timestamp: base - 10_000, Value: 0}) || !sameSample(got[0].Samples[1], prompb.Sample{Timestamp: base, Value: 5}) {
		t.Fatalf("requests_total = %v, want 0 at the start timestamp, then 5", got)
	}
	got = h.query("t", 0, 0, eq("__name__", "latency_seconds"))
	if len(got) != 1 || len(got[0].Histograms) != 2 || got[0].Histograms[0].Timestamp != base-20_000 || got[0].Histograms[0].GetCountInt() != 0 || got[0].Histograms[1].GetCountInt() != 3 {
		t.Fatalf("latency_seconds = %v, want an empty histogram at the start timestamp, then the sample", got)
	}

	// The next sample of the same counter carries the same start
	// timestamp, now behind the series: nothing more is stored.
	next := floats(series("requests_total"), float64(base+15_000), 7)
	next.Samples[0].XXX_unrecognized = stField(3, base-10_000)
	h.mustPush("t", next)
	if got := h.query("t", 0, 0, eq("__name__", "requests_total")); len(got) != 1 || len(got[0].Samples) != 3 {
		t.Fatalf("requests_total = %v, want 3 samples", got)
	}
}

// TestPushSeriesLimitRefusalDetails: a series over the tenant's series
// limit loses all its samples, and the details name that series alone.
func TestPushSeriesLimitRefusalDetails(t *testing.T) {
	limits := newTestLimits(t, nil)
	limits.set("t", func(l *validation.Limits) { l.MaxSeriesPerUser = 2 })
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), limits)
	err := h.push("t",
		floats(series("a"), float64(base), 1),
		floats(series("b"), float64(base), 2),
		floats(series("c"), float64(base), 3, float64(base+1), 4),
		floats(series("a"), float64(base+1), 5),
	)
	st := status.Convert(err)
	var resp *client.PushResponse
	for _, d := range st.Details() {
		if r, ok := d.(*client.PushResponse); ok {
			resp = r
		}
	}
	if st.Code() != codes.InvalidArgument || resp == nil || len(resp.Refused) != 1 {
		t.Fatalf("push: %v with details %v, want InvalidArgument refusing one series", err, st.Details())
	}
	if r := resp.Refused[0]; r.Series != 2 || r.Samples != 2 || r.Histograms != 0 || r.Exemplars != 0 || resp.FirstSeries != 2 || !strings.Contains(resp.First, "per-user series limit of 2") {
		t.Errorf("refused %v, first %d %q; want series 2's 2 samples, over the per-user limit", r, resp.FirstSeries, resp.First)
	}
}
