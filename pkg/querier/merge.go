package querier

import (
	"bytes"
	"cmp"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// mergedSeries is one series with the samples of all its replicas, each
// timestamp once, in time order. Floats and histograms stay in their wire
// form and are converted only when the engine reads them.
//
// Replicas are merged sample by sample; when they disagree at a timestamp
// the winner depends only on the values (see preferFloat, preferHistogram),
// never on which ingester answered first, so repeated queries answer the
// same.
type mergedSeries struct {
	lset   labels.Labels
	floats []prompb.Sample
	hists  []prompb.Histogram
}

// normalizeFloats returns s in strictly increasing time order. Ingesters
// send sorted samples; this only guards the engine, whose iterators must
// never go back in time.
func normalizeFloats(s []prompb.Sample) []prompb.Sample {
	if slices.IsSortedFunc(s, func(a, b prompb.Sample) int { return cmp.Compare(a.Timestamp, b.Timestamp) }) && !hasDuplicateFloatTimestamps(s) {
		return s
	}
	s = slices.Clone(s)
	slices.SortStableFunc(s, func(a, b prompb.Sample) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
	out := s[:0]
	for _, x := range s {
		if n := len(out); n > 0 && out[n-1].Timestamp == x.Timestamp {
			out[n-1] = preferFloat(out[n-1], x)
			continue
		}
		out = append(out, x)
	}
	return out
}

func hasDuplicateFloatTimestamps(s []prompb.Sample) bool {
	for i := 1; i < len(s); i++ {
		if s[i].Timestamp == s[i-1].Timestamp {
			return true
		}
	}
	return false
}

func normalizeHistograms(s []prompb.Histogram) []prompb.Histogram {
	sorted := true
	for i := 1; i < len(s); i++ {
		if s[i].Timestamp <= s[i-1].Timestamp {
			sorted = false
			break
		}
	}
	if sorted {
		return s
	}
	s = slices.Clone(s)
	slices.SortStableFunc(s, func(a, b prompb.Histogram) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
	out := s[:0]
	for _, x := range s {
		if n := len(out); n > 0 && out[n-1].Timestamp == x.Timestamp {
			out[n-1] = preferHistogram(out[n-1], x)
			continue
		}
		out = append(out, x)
	}
	return out
}

// mergeFloats merges two sorted sample lists. Identical replicas, the
// usual case, cost one comparison pass and no allocation.
func mergeFloats(a, b []prompb.Sample) []prompb.Sample {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	if slices.EqualFunc(a, b, func(x, y prompb.Sample) bool {
		return x.Timestamp == y.Timestamp && math.Float64bits(x.Value) == math.Float64bits(y.Value)
	}) {
		return a
	}
	out := make([]prompb.Sample, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].Timestamp < b[j].Timestamp:
			out = append(out, a[i])
			i++
		case a[i].Timestamp > b[j].Timestamp:
			out = append(out, b[j])
			j++
		default:
			out = append(out, preferFloat(a[i], b[j]))
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// preferFloat picks one of two samples at the same timestamp: a number over
// NaN (a staleness marker must not hide a value another replica holds),
// then the greater value, then the greater bit pattern. The choice is
// commutative, so the merge order of replicas does not matter.
func preferFloat(x, y prompb.Sample) prompb.Sample {
	xn, yn := math.IsNaN(x.Value), math.IsNaN(y.Value)
	switch {
	case xn != yn:
		if xn {
			return y
		}
		return x
	case x.Value > y.Value:
		return x
	case y.Value > x.Value:
		return y
	case math.Float64bits(x.Value) >= math.Float64bits(y.Value):
		return x
	}
	return y
}

func mergeHistograms(a, b []prompb.Histogram) []prompb.Histogram {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	if slices.EqualFunc(a, b, func(x, y prompb.Histogram) bool { return histogramsEqual(&x, &y) }) {
		return a
	}
	out := make([]prompb.Histogram, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].Timestamp < b[j].Timestamp:
			out = append(out, a[i])
			i++
		case a[i].Timestamp > b[j].Timestamp:
			out = append(out, b[j])
			j++
		default:
			out = append(out, preferHistogram(a[i], b[j]))
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// preferHistogram picks one of two histograms at the same timestamp: the
// greater count, then the greater sum, then the greater encoding, so the
// choice does not depend on the order of replicas.
func preferHistogram(x, y prompb.Histogram) prompb.Histogram {
	if histogramsEqual(&x, &y) {
		return x
	}
	if c := cmp.Compare(histogramCount(&x), histogramCount(&y)); c != 0 {
		if c > 0 {
			return x
		}
		return y
	}
	if c := cmp.Compare(x.Sum, y.Sum); c != 0 {
		if c > 0 {
			return x
		}
		return y
	}
	xb, _ := x.Marshal()
	yb, _ := y.Marshal()
	if bytes.Compare(xb, yb) >= 0 {
		return x
	}
	return y
}

func histogramCount(h *prompb.Histogram) float64 {
	if h.IsFloatHistogram() {
		return h.GetCountFloat()
	}
	return float64(h.GetCountInt())
}

func histogramsEqual(x, y *prompb.Histogram) bool {
	return x.Timestamp == y.Timestamp &&
		x.IsFloatHistogram() == y.IsFloatHistogram() &&
		x.GetCountInt() == y.GetCountInt() &&
		math.Float64bits(x.GetCountFloat()) == math.Float64bits(y.GetCountFloat()) &&
		math.Float64bits(x.Sum) == math.Float64bits(y.Sum) &&
		x.Schema == y.Schema &&
		x.ZeroThreshold == y.ZeroThreshold &&
		x.GetZeroCountInt() == y.GetZeroCountInt() &&
		x.GetZeroCountFloat() == y.GetZeroCountFloat() &&
		x.ResetHint == y.ResetHint &&
		spansEqual(x.NegativeSpans, y.NegativeSpans) &&
		spansEqual(x.PositiveSpans, y.PositiveSpans) &&
		slices.Equal(x.NegativeDeltas, y.NegativeDeltas) &&
		slices.Equal(x.PositiveDeltas, y.PositiveDeltas) &&
		slices.Equal(x.NegativeCounts, y.NegativeCounts) &&
		slices.Equal(x.PositiveCounts, y.PositiveCounts) &&
		slices.Equal(x.CustomValues, y.CustomValues)
}

func spansEqual(a, b []prompb.BucketSpan) bool {
	return slices.EqualFunc(a, b, func(x, y prompb.BucketSpan) bool { return x.Offset == y.Offset && x.Length == y.Length })
}

// dropFloatsAtHistograms removes floats at timestamps where a histogram
// exists: a series has one value per timestamp, and the histogram is the
// newer write when a series changed type.
func dropFloatsAtHistograms(floats []prompb.Sample, hists []prompb.Histogram) []prompb.Sample {
	out := make([]prompb.Sample, 0, len(floats))
	j := 0
	for _, f := range floats {
		for j < len(hists) && hists[j].Timestamp < f.Timestamp {
			j++
		}
		if j < len(hists) && hists[j].Timestamp == f.Timestamp {
			continue
		}
		out = append(out, f)
	}
	return out
}

func (s *mergedSeries) Labels() labels.Labels { return s.lset }

// Iterator returns an iterator over the series' samples in time order,
// reusing it when it is a list iterator.
func (s *mergedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	view := s.view()
	if r, ok := it.(interface{ Reset(storage.Samples) }); ok {
		r.Reset(view)
		return it
	}
	return storage.NewListSeriesIterator(view)
}

// view presents the samples to Prometheus's list iterator without copying
// them; only a series that holds both floats and histograms (it changed
// type) needs an index of both in time order.
func (s *mergedSeries) view() storage.Samples {
	switch {
	case len(s.hists) == 0:
		return floatSamples(s.floats)
	case len(s.floats) == 0:
		return histogramSamples(s.hists)
	}
	all := make(chunks.SampleSlice, 0, len(s.floats)+len(s.hists))
	i, j := 0, 0
	for i < len(s.floats) || j < len(s.hists) {
		if j == len(s.hists) || (i < len(s.floats) && s.floats[i].Timestamp < s.hists[j].Timestamp) {
			all = append(all, (*floatSample)(&s.floats[i]))
			i++
			continue
		}
		all = append(all, (*histogramSample)(&s.hists[j]))
		j++
	}
	return all
}

type floatSamples []prompb.Sample

func (s floatSamples) Get(i int) chunks.Sample { return (*floatSample)(&s[i]) }
func (s floatSamples) Len() int                { return len(s) }

type histogramSamples []prompb.Histogram

func (s histogramSamples) Get(i int) chunks.Sample { return (*histogramSample)(&s[i]) }
func (s histogramSamples) Len() int                { return len(s) }

// floatSample is a float on the wire, read in place.
type floatSample prompb.Sample

func (s *floatSample) T() int64                      { return s.Timestamp }
func (s *floatSample) ST() int64                     { return 0 }
func (s *floatSample) F() float64                    { return s.Value }
func (s *floatSample) H() *histogram.Histogram       { return nil }
func (s *floatSample) FH() *histogram.FloatHistogram { return nil }
func (s *floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s *floatSample) Copy() chunks.Sample           { c := *s; return &c }

// histogramSample is a histogram on the wire, converted when read, as
// Prometheus's remote-read iterator does.
type histogramSample prompb.Histogram

func (s *histogramSample) proto() *prompb.Histogram { return (*prompb.Histogram)(s) }
func (s *histogramSample) T() int64                 { return s.Timestamp }
func (s *histogramSample) ST() int64                { return 0 }
func (s *histogramSample) F() float64               { return 0 }
func (s *histogramSample) H() *histogram.Histogram  { return s.proto().ToIntHistogram() }
func (s *histogramSample) FH() *histogram.FloatHistogram {
	return s.proto().ToFloatHistogram()
}

func (s *histogramSample) Type() chunkenc.ValueType {
	if s.proto().IsFloatHistogram() {
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValHistogram
}

func (s *histogramSample) Copy() chunks.Sample { c := *s; return &c }

// seriesSet iterates over merged series.
type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool {
	s.i++
	return s.i < len(s.series)
}

func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

var (
	_ storage.SeriesSet = (*seriesSet)(nil)
	_ chunks.Sample     = (*floatSample)(nil)
	_ chunks.Sample     = (*histogramSample)(nil)
)
