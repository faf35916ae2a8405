package ingester

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

func dumpExemplars(res *prompb.QueryResult) string {
	var b strings.Builder
	for _, ts := range res.Timeseries {
		b.WriteString(labelsString(ts.Labels))
		for _, e := range ts.Exemplars {
			fmt.Fprintf(&b, " %s=%g@%d", labelsString(e.Labels), e.Value, e.Timestamp-base)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// QueryExemplars answers the tenant's exemplars of the series matching any
// of the queries' matcher sets, within the queries' time range.
func TestQueryExemplars(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	ex := func(trace string, v float64, ts int64) prompb.Exemplar {
		return prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: trace}}, Value: v, Timestamp: base + ts}
	}
	h.mustPush("t",
		prompb.TimeSeries{Labels: series("requests_total", "job", "api"), Samples: []prompb.Sample{{Timestamp: base, Value: 1}, {Timestamp: base + 1000, Value: 2}},
			Exemplars: []prompb.Exemplar{ex("a1", 1, 0), ex("a2", 2, 1000)}},
		prompb.TimeSeries{Labels: series("requests_total", "job", "web"), Samples: []prompb.Sample{{Timestamp: base, Value: 5}},
			Exemplars: []prompb.Exemplar{ex("w1", 5, 0)}},
		prompb.TimeSeries{Labels: series("errors_total", "job", "api"), Samples: []prompb.Sample{{Timestamp: base, Value: 1}}},
	)
	query := func(tenantID string, qs ...*prompb.Query) string {
		t.Helper()
		res, err := h.ing.QueryExemplars(ctxFor(tenantID), &prompb.ReadRequest{Queries: qs})
		if err != nil {
			t.Fatal(err)
		}
		return dumpExemplars(res)
	}
	q := func(from, to int64, ms ...*prompb.LabelMatcher) *prompb.Query {
		return &prompb.Query{StartTimestampMs: base + from, EndTimestampMs: base + to, Matchers: ms}
	}
	if got, want := query("t", q(0, 1000, eq("job", "api"))),
		`{__name__="requests_total", job="api"} {trace_id="a1"}=1@0 {trace_id="a2"}=2@1000`+"\n"; got != want {
		t.Errorf("job=api: got\n%swant\n%s", got, want)
	}
	if got, want := query("t", q(500, 1000, eq("job", "api")), q(500, 1000, eq("job", "web"))),
		`{__name__="requests_total", job="api"} {trace_id="a2"}=2@1000`+"\n"; got != want {
		t.Errorf("two selectors from 500 ms: got\n%swant\n%s", got, want)
	}
	if got := query("other", q(0, 1000, eq("__name__", "requests_total"))); got != "" {
		t.Errorf("another tenant read:\n%s", got)
	}
	if _, err := h.ing.QueryExemplars(ctxFor("t"), &prompb.ReadRequest{Queries: []*prompb.Query{q(0, 1, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "job", Value: "("})}}); err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Errorf("a bad regexp: %v, want InvalidArgument", err)
	}
}
