package querier

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/util/annotations"
	promstats "github.com/prometheus/prometheus/util/stats"

	"github.com/cortex-tls/cortex/pkg/querier/codec"
)

// codecTestHistogram has buckets on both sides of zero and an empty one.
func codecTestHistogram() *histogram.FloatHistogram {
	return &histogram.FloatHistogram{
		Schema: 0, Count: 12, Sum: 34.5, ZeroThreshold: 0.001, ZeroCount: 2,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
		PositiveBuckets: []float64{1, 0, 5},
		NegativeSpans:   []histogram.Span{{Offset: 1, Length: 1}},
		NegativeBuckets: []float64{4},
	}
}

func codecTestStats() promstats.QueryStats {
	timers := promstats.NewQueryTimers()
	timer, _ := timers.GetSpanTimer(context.Background(), promstats.EvalTotalTime)
	timer.Finish()
	samples := promstats.NewQuerySamples(true)
	samples.InitStepTracking(1000, 3000, 1000)
	samples.IncrementSamplesAtStep(0, 4)
	samples.IncrementSamplesAtStep(2, 6)
	samples.UpdatePeak(7)
	return promstats.NewQueryStats(&promstats.Statistics{Timers: timers, Samples: samples})
}

// answer writes d as the querier answers a request with accept.
func answer(t *testing.T, d queryData, warnings annotations.Annotations, accept string) *httptest.ResponseRecorder {
	t.Helper()
	q := &Querier{logger: slog.New(slog.DiscardHandler)}
	r := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	q.respondNegotiated(w, r, d, warnings)
	return w
}

// TestProtobufAnswersTurnBackIntoTheSameJSON: every kind of query answer
// the querier writes in Cortex's protobuf encoding becomes, decoded as the
// query-frontend decodes it, the very bytes the querier writes in JSON:
// values (special floats, escaped labels, native histograms), statistics,
// warnings and infos.
func TestProtobufAnswersTurnBackIntoTheSameJSON(t *testing.T) {
	weird := labels.FromStrings("__name__", "up", "job", "a\"b\\c\nd\u00e9<&>", "empty", "")
	var warnings annotations.Annotations
	warnings.Add(errors.New("results truncated due to limit"))
	warnings.Add(annotations.NewPossibleNonCounterInfo("up", posrange.PositionRange{}))
	for name, d := range map[string]queryData{
		"matrix": {v: promql.Matrix{
			{Metric: weird, Floats: []promql.FPoint{{T: 1000, F: 1.5}, {T: 2001, F: math.NaN()}, {T: 3010, F: math.Inf(1)}, {T: 4100, F: math.Inf(-1)}, {T: 5000, F: math.Copysign(0, -1)}, {T: 6000, F: 1e-7}, {T: 7000, F: 1e21}, {T: 8000, F: 0}}},
			{Metric: labels.FromStrings("job", "h"), Histograms: []promql.HPoint{{T: 1000, H: codecTestHistogram()}, {T: 2000, H: &histogram.FloatHistogram{}}}},
			{Metric: labels.EmptyLabels(), Floats: []promql.FPoint{{T: -1500, F: -2}}},
		}, stats: codecTestStats()},
		"empty matrix": {v: promql.Matrix{}},
		"vector": {v: promql.Vector{
			{Metric: weird, T: 1234, F: 42},
			{Metric: labels.FromStrings("job", "h"), T: 1234, H: codecTestHistogram()},
		}, stats: codecTestStats()},
		"empty vector": {v: promql.Vector{}},
		"scalar":       {v: promql.Scalar{T: 1234, V: 2.5}, stats: codecTestStats()},
		"string":       {v: promql.String{T: 1234, V: "a \"string\""}},
	} {
		t.Run(name, func(t *testing.T) {
			wantJSON := answer(t, d, warnings, "application/json")
			if ct := wantJSON.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Accept: application/json answered %q", ct)
			}
			for _, accept := range []string{codec.MIMEProtobuf + ", " + codec.MIMEJSON, codec.MIMECortexQuery + "," + codec.MIMEJSON} {
				w := answer(t, d, warnings, accept)
				mime, _, _ := strings.Cut(accept, ",")
				if ct := w.Header().Get("Content-Type"); ct != mime {
					t.Fatalf("Accept: %s answered %q", accept, ct)
				}
				if got := w.Header().Get("X-Uncompressed-Length"); got != strconv.Itoa(w.Body.Len()) {
					t.Errorf("X-Uncompressed-Length %q for %d bytes", got, w.Body.Len())
				}
				if mime == codec.MIMECortexQuery && name == "vector" {
					// The ruler's encoding carries the histogram whole;
					// its JSON is the buckets again.
					v, _, err := codec.DecodeInstant(w.Body.Bytes())
					if err != nil {
						t.Fatal(err)
					}
					if h := v.(promql.Vector)[1].H; h == nil || !h.Equals(codecTestHistogram()) {
						t.Fatalf("the ruler's encoding carried the histogram as %v", h)
					}
				}
				got, err := codec.ToJSON(nil, w.Body.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, wantJSON.Body.Bytes()) {
					t.Errorf("%s decoded to\n%s\nwant\n%s", accept, got, wantJSON.Body.Bytes())
				}
			}
		})
	}
}

// Errors and answers other than queries' are JSON whatever is asked.
func TestProtobufOnlyForQueryAnswers(t *testing.T) {
	q := &Querier{logger: slog.New(slog.DiscardHandler)}
	r := httptest.NewRequest(http.MethodGet, "/api/v1/series", nil)
	r.Header.Set("Accept", codec.MIMEProtobuf)
	w := httptest.NewRecorder()
	q.respondNegotiated(w, r, seriesData{labels.FromStrings("job", "a")}, nil)
	if ct := w.Header().Get("Content-Type"); ct != "application/json" || w.Body.String() != `{"status":"success","data":[{"job":"a"}]}` {
		t.Fatalf("series answered %q: %s", ct, w.Body)
	}
}
