package ingester

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// dumpTSDBStats writes stats largest first, equal counts by name (the
// TSDB's heap leaves their order open).
func dumpTSDBStats(stats []*client.TSDBStat) string {
	stats = slices.Clone(stats)
	slices.SortStableFunc(stats, func(a, b *client.TSDBStat) int {
		if a.Value != b.Value {
			return cmp.Compare(b.Value, a.Value)
		}
		return strings.Compare(a.Name, b.Name)
	})
	parts := make([]string, 0, len(stats))
	for _, s := range stats {
		parts = append(parts, fmt.Sprintf("%s=%d", s.Name, s.Value))
	}
	return strings.Join(parts, " ")
}

// TSDBStatus answers the head statistics of the caller's TSDB only, top
// limit entries of each list, largest first.
func TestTSDBStatus(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	sample := []prompb.Sample{{Timestamp: base, Value: 1}, {Timestamp: base + 2000, Value: 2}}
	h.mustPush("t",
		prompb.TimeSeries{Labels: series("requests_total", "job", "api", "code", "200"), Samples: sample},
		prompb.TimeSeries{Labels: series("requests_total", "job", "api", "code", "500"), Samples: sample},
		prompb.TimeSeries{Labels: series("requests_total", "job", "web", "code", "200"), Samples: sample},
		prompb.TimeSeries{Labels: series("up", "job", "api"), Samples: sample[:1]},
	)
	h.mustPush("other", prompb.TimeSeries{Labels: series("other_metric", "job", "x"), Samples: sample})

	res, err := h.ing.TSDBStatus(ctxFor("t"), &client.TSDBStatusRequest{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Pairs: __name__ x2, job x2, code x2.
	if res.NumSeries != 4 || res.NumLabelPairs != 6 || res.ChunkCount != 4 || res.MinTime != base || res.MaxTime != base+2000 {
		t.Errorf("head stats: series %d, label pairs %d, chunks %d, time %d..%d; want 4, 6, 4, %d..%d",
			res.NumSeries, res.NumLabelPairs, res.ChunkCount, res.MinTime, res.MaxTime, base, base+2000)
	}
	for _, c := range []struct {
		name string
		got  []*client.TSDBStat
		want string
	}{
		{"series by metric name", res.SeriesCountByMetricName, "requests_total=3 up=1"},
		// Two values each; the heap's order of equal counts is not fixed,
		// so limit 2 of three equal label names is checked below.
		{"series by label pair", res.SeriesCountByLabelValuePair, "__name__=requests_total=3 job=api=3"},
	} {
		if got := dumpTSDBStats(c.got); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	if len(res.LabelValueCountByLabelName) != 2 || res.LabelValueCountByLabelName[0].Value != 2 {
		t.Errorf("values by label name: got %q, want two names of 2 values", dumpTSDBStats(res.LabelValueCountByLabelName))
	}
	// labels.SizeOfLabels: name, value and 2 bytes per series holding
	// the pair: __name__ 3*(8+14+2)+1*(8+2+2) = 84, job 4*(3+3+2) = 32,
	// code 3*(4+3+2) = 27.
	if got, want := dumpTSDBStats(res.MemoryInBytesByLabelName), "__name__=84 job=32"; got != want {
		t.Errorf("memory by label name: got %q, want %q", got, want)
	}

	other, err := h.ing.TSDBStatus(ctxFor("other"), &client.TSDBStatusRequest{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if other.NumSeries != 1 || dumpTSDBStats(other.SeriesCountByMetricName) != "other_metric=1" {
		t.Errorf("tenant other: %d series, by metric %q; want 1, other_metric=1", other.NumSeries, dumpTSDBStats(other.SeriesCountByMetricName))
	}

	empty, err := h.ing.TSDBStatus(ctxFor("nobody"), &client.TSDBStatusRequest{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if empty.NumSeries != 0 || len(empty.SeriesCountByMetricName) != 0 {
		t.Errorf("tenant without a TSDB: %v, want empty", empty)
	}

	if _, err := h.ing.TSDBStatus(ctxFor("t"), &client.TSDBStatusRequest{Limit: 0}); err == nil || !strings.Contains(err.Error(), "TSDB status limit 0: must be between 1 and 10000") {
		t.Errorf("limit 0: %v", err)
	}
	if _, err := h.ing.TSDBStatus(t.Context(), &client.TSDBStatusRequest{Limit: 1}); err == nil {
		t.Error("no tenant: no error")
	}
}

// BenchmarkTSDBStatus computes the head statistics of a tenant of 10,000
// series (100 metrics of 100 series, each with job and instance labels).
// The limit alternates between 10 and 11 so that every call computes them:
// the TSDB caches its answer for one (metric label, limit) pair for 30 s.
func BenchmarkTSDBStatus(b *testing.B) {
	h := startHarness(b, testConfig(b, b.TempDir(), newKV(b)), newTestLimits(b, nil))
	for m := range 100 {
		batch := make([]prompb.TimeSeries, 0, 100)
		for i := range 100 {
			batch = append(batch, prompb.TimeSeries{
				Labels:  series(fmt.Sprintf("metric_%d", m), "job", fmt.Sprintf("job-%d", i%10), "instance", fmt.Sprintf("host-%d", i)),
				Samples: []prompb.Sample{{Timestamp: base, Value: 1}},
			})
		}
		h.mustPush("t", batch...)
	}
	ctx := ctxFor("t")
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		res, err := h.ing.TSDBStatus(ctx, &client.TSDBStatusRequest{Limit: int32(10 + n%2)})
		if err != nil {
			b.Fatal(err)
		}
		if res.NumSeries != 10000 {
			b.Fatalf("%d series, want 10000", res.NumSeries)
		}
		n++
	}
}
