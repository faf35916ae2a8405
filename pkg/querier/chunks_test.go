package querier

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// chunked encodes series as an ingester's QueryStreamChunks answer, in
// chunks of at most perChunk samples.
func chunked(t *testing.T, perChunk int, ts ...prompb.TimeSeries) ingesterAnswer {
	t.Helper()
	var a ingesterAnswer
	for _, s := range ts {
		cs, err := encodeChunks(s, perChunk)
		if err != nil {
			t.Fatal(err)
		}
		a.chunked = append(a.chunked, cs)
	}
	return a
}

func points(t *testing.T, it chunkenc.Iterator) []point {
	t.Helper()
	var out []point
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		switch vt {
		case chunkenc.ValFloat:
			ts, f := it.At()
			out = append(out, point{t: ts, f: f})
		case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
			ts, h := it.AtFloatHistogram(nil)
			out = append(out, point{t: ts, h: h})
		}
		if n := len(out); n > 1 && out[n-1].t <= out[n-2].t {
			t.Fatalf("time went from %d to %d", out[n-2].t, out[n-1].t)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func floatSeries(from, to, step int64, value func(int64) float64) prompb.TimeSeries {
	s := series(map[string]string{"__name__": "m"})
	for ts := from; ts <= to; ts += step {
		s.Samples = append(s.Samples, sample(ts, value(ts)))
	}
	return s
}

func ident(ts int64) float64 { return float64(ts) }

func TestChunkReplicasIdenticalKeptOnceAndTrimmed(t *testing.T) {
	a := floatSeries(0, 299_000, 1000, ident) // three chunks of 120, 120, 60
	b := series(map[string]string{"__name__": "m", "job": "b"}, sample(1000, 1))
	answers := []ingesterAnswer{chunked(t, 120, a, b), chunked(t, 120, b, a), chunked(t, 120, a, b)}
	merged := mergeAnswers(answers, 50_500, 250_000)
	if len(merged) != 2 || merged[0].Labels().String() != `{__name__="m"}` {
		t.Fatalf("got %d series, first %v", len(merged), merged[0].Labels())
	}
	s := merged[0]
	if len(s.chunkLists) != 1 || len(s.chunkLists[0]) != 3 {
		t.Fatalf("kept %d chunk lists, want one copy of three chunks", len(s.chunkLists))
	}
	it := s.Iterator(nil)
	if _, ok := it.(*chunksIterator); !ok {
		t.Fatalf("identical replicas are read through %T, want the chunks themselves", it)
	}
	got := points(t, it)
	if len(got) != 200 || got[0].t != 51_000 || got[199].t != 250_000 {
		t.Fatalf("got %d samples, want the 200 in [50500, 250000]", len(got))
	}
	var d chunkDecoder
	if n := s.numSamples(&d); n != 300 {
		t.Errorf("counted %d samples, want the 300 of the fetched chunks", n)
	}
	// The iterator is reused for the next series.
	if it2 := merged[1].Iterator(it); it2 != it {
		t.Error("iterator not reused")
	}
	if got := points(t, it); len(got) != 0 {
		t.Errorf("job=b has no sample in range, got %v", got)
	}
}

func TestChunkReplicasDivergingAreMerged(t *testing.T) {
	full := floatSeries(1000, 10_000, 1000, ident)
	// Restarted: misses the first half.
	late := floatSeries(6000, 10_000, 1000, ident)
	// Differs at 3000 and holds a staleness marker at 4000.
	other := floatSeries(1000, 10_000, 1000, func(ts int64) float64 {
		switch ts {
		case 3000:
			return 3500
		case 4000:
			return math.Float64frombits(value.StaleNaN)
		}
		return float64(ts)
	})
	want := []float64{}
	for ts := int64(2000); ts <= 9000; ts += 1000 {
		v := float64(ts)
		if ts == 3000 {
			v = 3500 // the greater value wins
		}
		want = append(want, float64(ts), v)
	}
	orders := [][]prompb.TimeSeries{{full, late, other}, {other, full, late}, {late, other, full}}
	for i, order := range orders {
		var answers []ingesterAnswer
		for _, s := range order {
			answers = append(answers, chunked(t, 4, s))
		}
		merged := mergeAnswers(answers, 2000, 9000)
		if len(merged) != 1 || len(merged[0].chunkLists) != 3 {
			t.Fatalf("order %d: %d series", i, len(merged))
		}
		if got := floats(points(t, merged[0].Iterator(nil))); !slices.Equal(got, want) {
			t.Fatalf("order %d: got %v, want %v", i, got, want)
		}
	}
}

func TestChunkReplicasWithOlderIngester(t *testing.T) {
	// One ingester predates QueryStreamChunks and sent samples, one of them
	// outside the range.
	s := floatSeries(1000, 5000, 1000, ident)
	answers := []ingesterAnswer{chunked(t, 120, s), {sampled: ptrs(floatSeries(1000, 6000, 1000, ident))}}
	merged := mergeAnswers(answers, 0, 5500)
	if len(merged) != 1 || len(merged[0].sampled) != 1 {
		t.Fatalf("got %d series", len(merged))
	}
	want := []float64{1000, 1000, 2000, 2000, 3000, 3000, 4000, 4000, 5000, 5000}
	if got := floats(points(t, merged[0].Iterator(nil))); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestChunkReplicasHistograms(t *testing.T) {
	ls := prompb.FromLabels(labels.FromStrings("__name__", "h"), nil)
	ts := prompb.TimeSeries{Labels: ls}
	for i := range 10 {
		h := prompb.FromIntHistogram(int64(i+1)*1000, testHistogram(i))
		if i >= 5 {
			h = prompb.FromFloatHistogram(int64(i+1)*1000, testHistogram(i).ToFloat(nil))
		}
		ts.Histograms = append(ts.Histograms, h)
	}
	check := func(name string, s *chunkSeries, from int) {
		t.Helper()
		got := points(t, s.Iterator(nil))
		if len(got) != 10-from {
			t.Fatalf("%s: got %d histograms, want %d", name, len(got), 10-from)
		}
		for j, p := range got {
			i := from + j
			if want := testHistogram(i).ToFloat(nil); p.t != int64(i+1)*1000 || p.h == nil || !p.h.Equals(want) {
				t.Fatalf("%s: point %d = %+v, want %v", name, i, p, want)
			}
		}
	}
	a := chunked(t, 120, ts)
	if types := []prompb.Chunk_Encoding{a.chunked[0].Chunks[0].Type, a.chunked[0].Chunks[1].Type}; types[0] != prompb.Chunk_HISTOGRAM || types[1] != prompb.Chunk_FLOAT_HISTOGRAM {
		t.Fatalf("chunk types %v", types)
	}
	check("identical", mergeAnswers([]ingesterAnswer{a, a}, 0, 1<<40)[0], 0)

	partial := ts
	partial.Histograms = ts.Histograms[3:]
	check("diverging", mergeAnswers([]ingesterAnswer{chunked(t, 120, partial), a}, 0, 1<<40)[0], 0)
	check("trimmed", mergeAnswers([]ingesterAnswer{a}, 3500, 1<<40)[0], 3)
}

// Chunks that overlap in time, which Prometheus's chunked series allow, are
// merged rather than read in turn.
func TestChunkReplicaOverlappingChunks(t *testing.T) {
	a, err := encodeChunks(floatSeries(1000, 5000, 1000, ident), 120)
	if err != nil {
		t.Fatal(err)
	}
	b, err := encodeChunks(floatSeries(3000, 8000, 1000, func(int64) float64 { return -1 }), 120)
	if err != nil {
		t.Fatal(err)
	}
	a.Chunks = append(a.Chunks, b.Chunks...)
	merged := mergeAnswers([]ingesterAnswer{{chunked: []*prompb.ChunkedSeries{a}}}, 0, 1<<40)
	want := []float64{1000, 1000, 2000, 2000, 3000, 3000, 4000, 4000, 5000, 5000, 6000, -1, 7000, -1, 8000, -1}
	if got := floats(points(t, merged[0].Iterator(nil))); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestChunksIteratorSeek compares random walks of Next and Seek over chunks
// with the same walk over the samples in range.
func TestChunksIteratorSeek(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var s prompb.TimeSeries
		for ts := int64(rng.IntN(5)); ts < 400; ts += 1 + int64(rng.IntN(7)) {
			s.Samples = append(s.Samples, sample(ts, float64(ts)))
		}
		cs, err := encodeChunks(s, 1+rng.IntN(30))
		if err != nil {
			t.Fatal(err)
		}
		mint, maxt := int64(rng.IntN(200))-20, int64(rng.IntN(300))+100
		var ref []int64
		for _, x := range s.Samples {
			if x.Timestamp >= mint && x.Timestamp <= maxt {
				ref = append(ref, x.Timestamp)
			}
		}
		it := &chunksIterator{}
		it.reset(cs.Chunks, mint, maxt)
		pos := -1 // index in ref of the iterator's sample
		for step := 0; step < 40 && pos < len(ref); step++ {
			var vt chunkenc.ValueType
			if rng.IntN(2) == 0 {
				pos++
				vt = it.Next()
			} else {
				target := int64(rng.IntN(450)) - 30
				if pos < 0 || target > ref[pos] {
					pos, _ = slices.BinarySearch(ref, target)
				}
				vt = it.Seek(target)
			}
			if pos >= len(ref) {
				if vt != chunkenc.ValNone {
					t.Fatalf("round %d step %d: got a sample at %d past the end", round, step, it.AtT())
				}
				continue
			}
			if vt != chunkenc.ValFloat || it.AtT() != ref[pos] {
				t.Fatalf("round %d step %d (range [%d, %d]): got %v at %d, want %d", round, step, mint, maxt, vt, it.AtT(), ref[pos])
			}
		}
		if pos >= len(ref) && (it.Next() != chunkenc.ValNone || it.Seek(0) != chunkenc.ValNone) {
			t.Fatalf("round %d: exhausted iterator moved", round)
		}
	}
}

func TestSelectFallsBackToSamplesForOlderIngesters(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	lbls := map[string]string{"__name__": "m"}
	c.ingesters[0].add("t1", series(lbls, sample(1000, 1), sample(2000, 2)))
	c.ingesters[1].add("t1", series(lbls, sample(2000, 2), sample(3000, 3)))
	c.ingesters[2].add("t1", series(lbls, sample(1000, 1), sample(3000, 3)))
	c.ingesters[1].noChunks.Store(true)
	ctx := tenant.Inject(context.Background(), "t1")
	for _, down := range []int{-1, 0, 2} {
		for i, f := range c.ingesters {
			f.fail.Store(i == down)
		}
		got, err := selectAll(ctx, c.querier.Queryable(), "m")
		if err != nil {
			t.Fatalf("ingester %d down: %v", down, err)
		}
		if want := []float64{1000, 1, 2000, 2, 3000, 3}; !slices.Equal(got[`{__name__="m"}`], want) {
			t.Fatalf("ingester %d down: got %v, want %v", down, got, want)
		}
	}
}
