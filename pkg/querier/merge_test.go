package querier

import (
	"math"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

type point struct {
	t int64
	f float64
	h *histogram.FloatHistogram
}

// drain reads a series the way the engine does, in time order.
func drain(t *testing.T, s *mergedSeries) []point {
	t.Helper()
	return points(t, s.Iterator(nil))
}

func floats(ps []point) []float64 {
	var out []float64
	for _, p := range ps {
		out = append(out, float64(p.t), p.f)
	}
	return out
}

// mergeReplicas merges the answers of ingesters that send samples
// (QueryStream), as the querier does during a rolling upgrade.
func mergeReplicas(replicas [][]*prompb.TimeSeries) []*mergedSeries {
	answers := make([]ingesterAnswer, len(replicas))
	for i, r := range replicas {
		answers[i] = ingesterAnswer{sampled: r}
	}
	var out []*mergedSeries
	for _, s := range mergeAnswers(answers, math.MinInt64, math.MaxInt64) {
		m, err := s.merged()
		if err != nil {
			panic(err)
		}
		out = append(out, m)
	}
	return out
}

func ptrs(ts ...prompb.TimeSeries) []*prompb.TimeSeries {
	out := make([]*prompb.TimeSeries, len(ts))
	for i := range ts {
		out[i] = &ts[i]
	}
	return out
}

func TestMergeReplicasIdenticalAppearOnce(t *testing.T) {
	a := series(map[string]string{"__name__": "m", "job": "a"}, sample(1000, 1), sample(2000, 2), sample(3000, 3))
	b := series(map[string]string{"__name__": "m", "job": "b"}, sample(1000, 10))
	merged := mergeReplicas([][]*prompb.TimeSeries{ptrs(a, b), ptrs(b, a), ptrs(a, b)})
	if len(merged) != 2 {
		t.Fatalf("got %d series, want 2", len(merged))
	}
	if got := merged[0].Labels().String(); got != `{__name__="m", job="a"}` {
		t.Fatalf("series not sorted by labels: first is %s", got)
	}
	if got, want := floats(drain(t, merged[0])), []float64{1000, 1, 2000, 2, 3000, 3}; !slices.Equal(got, want) {
		t.Fatalf("job=a: got %v, want %v", got, want)
	}
	if got, want := floats(drain(t, merged[1])), []float64{1000, 10}; !slices.Equal(got, want) {
		t.Fatalf("job=b: got %v, want %v", got, want)
	}
}

func TestMergeReplicasDisjointInOrder(t *testing.T) {
	lbls := map[string]string{"__name__": "m"}
	// Each replica misses a different sample, as after a restart of one
	// ingester; any two of them together hold every sample.
	r1 := series(lbls, sample(1000, 1), sample(2000, 2))
	r2 := series(lbls, sample(2000, 2), sample(3000, 3), sample(5000, 5))
	r3 := series(lbls, sample(1000, 1), sample(4000, 4), sample(5000, 5))
	merged := mergeReplicas([][]*prompb.TimeSeries{ptrs(r1), ptrs(r2), ptrs(r3)})
	if len(merged) != 1 {
		t.Fatalf("got %d series, want 1", len(merged))
	}
	want := []float64{1000, 1, 2000, 2, 3000, 3, 4000, 4, 5000, 5}
	if got := floats(drain(t, merged[0])); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestMergeReplicasConflictIsDeterministic(t *testing.T) {
	lbls := map[string]string{"__name__": "m"}
	a := series(lbls, sample(1000, 1), sample(2000, 7))
	b := series(lbls, sample(1000, 1), sample(2000, 9))
	stale := series(lbls, sample(1000, math.Float64frombits(value.StaleNaN)), sample(2000, 8))
	orders := [][][]*prompb.TimeSeries{
		{ptrs(a), ptrs(b), ptrs(stale)},
		{ptrs(b), ptrs(stale), ptrs(a)},
		{ptrs(stale), ptrs(a), ptrs(b)},
	}
	for i, replicas := range orders {
		got := floats(drain(t, mergeReplicas(replicas)[0]))
		// A number beats a staleness marker; the greater value wins.
		if want := []float64{1000, 1, 2000, 9}; !slices.Equal(got, want) {
			t.Fatalf("order %d: got %v, want %v", i, got, want)
		}
	}
}

func TestMergeReplicasUnsortedInput(t *testing.T) {
	s := series(map[string]string{"__name__": "m"}, sample(3000, 3), sample(1000, 1), sample(3000, 4), sample(2000, 2))
	got := floats(drain(t, mergeReplicas([][]*prompb.TimeSeries{ptrs(s)})[0]))
	if want := []float64{1000, 1, 2000, 2, 3000, 4}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func testHistogram(i int) *histogram.Histogram {
	return &histogram.Histogram{
		Count:           uint64(5 + i),
		ZeroCount:       1,
		ZeroThreshold:   0.001,
		Sum:             float64(10 + i),
		Schema:          0,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets: []int64{2, int64(i)},
	}
}

func TestMergeReplicasHistograms(t *testing.T) {
	ls := prompb.FromLabels(labels.FromStrings("__name__", "h"), nil)
	full := prompb.TimeSeries{Labels: ls, Histograms: []prompb.Histogram{
		prompb.FromIntHistogram(1000, testHistogram(0)),
		prompb.FromIntHistogram(2000, testHistogram(1)),
	}}
	partial := prompb.TimeSeries{Labels: ls, Histograms: []prompb.Histogram{
		prompb.FromIntHistogram(2000, testHistogram(1)),
		prompb.FromFloatHistogram(3000, testHistogram(2).ToFloat(nil)),
	}}
	// A float at a histogram's timestamp loses: one value per timestamp.
	mixed := prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{sample(500, 0.5), sample(2000, 42)}}
	merged := mergeReplicas([][]*prompb.TimeSeries{ptrs(full), ptrs(partial), ptrs(mixed)})
	if len(merged) != 1 {
		t.Fatalf("got %d series, want 1", len(merged))
	}
	got := drain(t, merged[0])
	if len(got) != 4 {
		t.Fatalf("got %d points, want 4: %+v", len(got), got)
	}
	if got[0].t != 500 || got[0].f != 0.5 || got[0].h != nil {
		t.Fatalf("first point %+v, want the float at 500", got[0])
	}
	for i, p := range got[1:] {
		want := testHistogram(i).ToFloat(nil)
		if p.t != int64(1000*(i+1)) || p.h == nil || !p.h.Equals(want) {
			t.Fatalf("point %d: %+v, want %v at %d", i+1, p, want, 1000*(i+1))
		}
	}

	// Seek lands on histograms and floats alike.
	it := merged[0].Iterator(nil)
	if vt := it.Seek(1500); vt != chunkenc.ValHistogram || it.AtT() != 2000 {
		t.Fatalf("Seek(1500) = %v at %d", vt, it.AtT())
	}
	if vt := it.Seek(0); vt != chunkenc.ValHistogram || it.AtT() != 2000 {
		t.Fatalf("Seek backwards moved the iterator: %v at %d", vt, it.AtT())
	}
	if vt := it.Next(); vt != chunkenc.ValFloatHistogram || it.AtT() != 3000 {
		t.Fatalf("Next = %v at %d", vt, it.AtT())
	}
	if vt := it.Seek(3001); vt != chunkenc.ValNone {
		t.Fatalf("Seek past the end = %v", vt)
	}
	// The iterator is reused for the next series.
	if it2 := merged[0].Iterator(it); it2 != it || it2.Next() != chunkenc.ValFloat {
		t.Fatal("iterator not reset for reuse")
	}
}

func TestPreferHistogramIsCommutative(t *testing.T) {
	a := prompb.FromIntHistogram(1000, testHistogram(1))
	b := prompb.FromIntHistogram(1000, testHistogram(2))
	c := prompb.FromIntHistogram(1000, testHistogram(1))
	c.PositiveDeltas = []int64{1, 2} // same count and sum, different buckets
	for _, pair := range [][2]prompb.Histogram{{a, b}, {a, c}} {
		x, y := preferHistogram(pair[0], pair[1]), preferHistogram(pair[1], pair[0])
		if !histogramsEqual(&x, &y) {
			t.Fatalf("preferHistogram depends on argument order: %v vs %v", x, y)
		}
	}
}
