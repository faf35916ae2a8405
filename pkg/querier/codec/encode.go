package codec

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/stats"
	"google.golang.org/protobuf/encoding/protowire"
)

// Answer is a successful answer of /api/v1/query or /api/v1/query_range.
type Answer struct {
	Value parser.Value
	// Stats are the query's statistics, nil when not asked for.
	Stats stats.QueryStats
	// DataJSON is the answer's "data" in JSON, which Cortex's encoding
	// carries as it is for scalars and strings (rawBytes).
	DataJSON        func([]byte) ([]byte, error)
	Warnings, Infos []string
}

// AppendProtobuf appends a to b in Cortex's protobuf encoding, contentType
// (MIMEProtobuf or MIMECortexQuery) deciding how vectors carry native
// histograms.
func AppendProtobuf(b []byte, a Answer, contentType string) ([]byte, error) {
	var (
		result []byte
		// A matrix, the bulk of the answers, is written straight into b
		// once its size is known (streamSizes).
		matrix      promql.Matrix
		streamSizes []int
		resultLen   int
		matrixLen   int
	)
	switch v := a.Value.(type) {
	case promql.Matrix:
		matrix = v
		streamSizes = make([]int, len(v))
		for i, s := range v {
			streamSizes[i] = streamSize(s)
			matrixLen += 1 + protowire.SizeBytes(streamSizes[i])
		}
		resultLen = 1 + protowire.SizeBytes(matrixLen)
	case promql.Vector:
		m, err := appendVector(nil, v, contentType == MIMECortexQuery)
		if err != nil {
			return nil, err
		}
		result = protowire.AppendTag(nil, 1, protowire.BytesType)
		result = protowire.AppendBytes(result, m)
	default:
		raw, err := a.DataJSON(nil)
		if err != nil {
			return nil, err
		}
		result = protowire.AppendTag(nil, 2, protowire.BytesType)
		result = protowire.AppendBytes(result, raw)
	}
	var st []byte
	if a.Stats != nil {
		st = appendStats(nil, statsFrom(a.Stats.Builtin()))
	}
	if matrix == nil {
		resultLen = len(result)
	}
	resultType := string(a.Value.Type())
	dataLen := 1 + protowire.SizeBytes(len(resultType)) + 1 + protowire.SizeBytes(resultLen)
	if a.Stats != nil {
		dataLen += 1 + protowire.SizeBytes(len(st))
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "success")
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(dataLen))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, resultType)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	if matrix != nil {
		if need := len(b) + protowire.SizeBytes(resultLen) + len(st) + 16; cap(b) < need {
			b = append(make([]byte, 0, need), b...)
		}
		b = protowire.AppendVarint(b, uint64(resultLen))
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(matrixLen))
		b = appendMatrix(b, matrix, streamSizes)
	} else {
		b = protowire.AppendBytes(b, result)
	}
	if a.Stats != nil {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, st)
	}
	for _, w := range a.Warnings {
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendString(b, w)
	}
	for _, i := range a.Infos {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendString(b, i)
	}
	return b, nil
}

// appendMatrix writes the sample streams of a Matrix message, of the
// sizes given.
func appendMatrix(b []byte, m promql.Matrix, sizes []int) []byte {
	for i, s := range m {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizes[i]))
		b = appendLabels(b, s.Metric)
		for _, p := range s.Floats {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(sampleSize(p.T, p.F)))
			b = appendSample(b, p.T, p.F)
		}
		for _, p := range s.Histograms {
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(histogramPairSize(p.T, p.H)))
			b = appendHistogramPair(b, p.T, p.H)
		}
	}
	return b
}

func streamSize(s promql.Series) int {
	n := labelsSize(s.Metric)
	for _, p := range s.Floats {
		n += 1 + protowire.SizeBytes(sampleSize(p.T, p.F))
	}
	for _, p := range s.Histograms {
		n += 1 + protowire.SizeBytes(histogramPairSize(p.T, p.H))
	}
	return n
}

func labelsSize(ls labels.Labels) int {
	n := 0
	ls.Range(func(l labels.Label) {
		n += 1 + protowire.SizeBytes(1+protowire.SizeBytes(len(l.Name))+1+protowire.SizeBytes(len(l.Value)))
	})
	return n
}

// appendLabels writes labels as repeated LabelPair fields numbered 1.
func appendLabels(b []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(1+protowire.SizeBytes(len(l.Name))+1+protowire.SizeBytes(len(l.Value))))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, l.Name)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, l.Value)
	})
	return b
}

// sampleSize is the size of a cortexpb.Sample: zero fields are left out,
// as proto3 does, but a negative zero is kept.
func sampleSize(t int64, v float64) int {
	n := 0
	if math.Float64bits(v) != 0 {
		n += 1 + 8
	}
	if t != 0 {
		n += 1 + protowire.SizeVarint(uint64(t))
	}
	return n
}

func appendSample(b []byte, t int64, v float64) []byte {
	if math.Float64bits(v) != 0 {
		b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(v))
	}
	if t != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t))
	}
	return b
}

// bucketBoundaries is how Prometheus' JSON and Cortex's protobuf name a
// bucket's open and closed ends.
func bucketBoundaries(bucket histogram.Bucket[float64]) int32 {
	switch {
	case bucket.LowerInclusive && bucket.UpperInclusive:
		return 3
	case bucket.LowerInclusive:
		return 1
	case bucket.UpperInclusive:
		return 0
	}
	return 2
}

func bucketSize(boundaries int32) int {
	n := 3 * (1 + 8)
	if boundaries != 0 {
		n += 1 + protowire.SizeVarint(uint64(boundaries))
	}
	return n
}

// sampleHistogramSize is the size of a SampleHistogram: the histogram's
// count, sum and its non-empty buckets, as in Prometheus' JSON.
func sampleHistogramSize(h *histogram.FloatHistogram) int {
	n := 2 * (1 + 8)
	it := h.AllBucketIterator()
	for it.Next() {
		bucket := it.At()
		if bucket.Count == 0 {
			continue
		}
		n += 1 + protowire.SizeBytes(bucketSize(bucketBoundaries(bucket)))
	}
	return n
}

func histogramPairSize(t int64, h *histogram.FloatHistogram) int {
	n := 1 + protowire.SizeBytes(sampleHistogramSize(h))
	if t != 0 {
		n += 1 + protowire.SizeVarint(uint64(t))
	}
	return n
}

// appendHistogramPair writes a SampleHistogramPair.
func appendHistogramPair(b []byte, t int64, h *histogram.FloatHistogram) []byte {
	if t != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t))
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sampleHistogramSize(h)))
	b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(h.Count))
	b = protowire.AppendTag(b, 2, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(h.Sum))
	it := h.AllBucketIterator()
	for it.Next() {
		bucket := it.At()
		if bucket.Count == 0 {
			continue
		}
		boundaries := bucketBoundaries(bucket)
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(bucketSize(boundaries)))
		if boundaries != 0 {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(boundaries))
		}
		for i, f := range [3]float64{bucket.Lower, bucket.Upper, bucket.Count} {
			b = protowire.AppendTag(b, protowire.Number(2+i), protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, math.Float64bits(f))
		}
	}
	return b
}

// appendVector writes the samples of a Vector message; raw carries native
// histograms whole (rawHistogram), as the ruler asks.
func appendVector(b []byte, v promql.Vector, raw bool) ([]byte, error) {
	var sample []byte
	for _, s := range v {
		sample = appendLabels(sample[:0], s.Metric)
		switch {
		case s.H == nil:
			sample = protowire.AppendTag(sample, 2, protowire.BytesType)
			sample = protowire.AppendVarint(sample, uint64(sampleSize(s.T, s.F)))
			sample = appendSample(sample, s.T, s.F)
		case raw:
			hp := prompb.FromFloatHistogram(s.T, s.H)
			enc, err := hp.Marshal()
			if err != nil {
				return nil, fmt.Errorf("encoding the native histogram of %s: %w", s.Metric, err)
			}
			sample = protowire.AppendTag(sample, 4, protowire.BytesType)
			sample = protowire.AppendBytes(sample, enc)
		default:
			sample = protowire.AppendTag(sample, 3, protowire.BytesType)
			sample = protowire.AppendVarint(sample, uint64(histogramPairSize(s.T, s.H)))
			sample = appendHistogramPair(sample, s.T, s.H)
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, sample)
	}
	return b, nil
}

// statsFrom takes Prometheus' statistics into the form this package
// encodes and renders.
func statsFrom(s stats.BuiltinStats) statsJSON {
	t := s.Timings
	out := statsJSON{Timings: timingsJSON{
		EvalTotalTime: t.EvalTotalTime, ResultSortTime: t.ResultSortTime, QueryPreparationTime: t.QueryPreparationTime,
		InnerEvalTime: t.InnerEvalTime, ExecQueueTime: t.ExecQueueTime, ExecTotalTime: t.ExecTotalTime,
	}}
	if s.Samples != nil {
		out.Samples = &samplesJSON{
			TotalQueryableSamples: s.Samples.TotalQueryableSamples,
			SamplesRead:           s.Samples.SamplesRead,
			SeriesTouched:         s.Samples.SeriesTouched,
			PeakSamples:           s.Samples.PeakSamples,
		}
		for _, p := range s.Samples.TotalQueryableSamplesPerStep {
			out.Samples.TotalQueryableSamplesPerStep = append(out.Samples.TotalQueryableSamplesPerStep, stepJSON{T: p.T, V: p.V})
		}
		for _, p := range s.Samples.SamplesReadPerStep {
			out.Samples.SamplesReadPerStep = append(out.Samples.SamplesReadPerStep, stepJSON{T: p.T, V: p.V})
		}
	}
	return out
}

// appendStats writes a PrometheusResponseStats: Cortex's samples
// statistics, and the rest of Prometheus' in fields Cortex skips.
func appendStats(b []byte, s statsJSON) []byte {
	if s.Samples != nil {
		var m []byte
		m = appendVarintField(m, 1, uint64(s.Samples.TotalQueryableSamples))
		for _, p := range s.Samples.TotalQueryableSamplesPerStep {
			m = appendStep(m, 2, p.T, p.V)
		}
		m = appendVarintField(m, 3, uint64(s.Samples.PeakSamples))
		m = appendVarintField(m, 4, uint64(s.Samples.SamplesRead))
		for _, p := range s.Samples.SamplesReadPerStep {
			m = appendStep(m, 5, p.T, p.V)
		}
		m = appendVarintField(m, 6, uint64(s.Samples.SeriesTouched))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	t := s.Timings
	var m []byte
	for i, f := range [6]float64{t.EvalTotalTime, t.ResultSortTime, t.QueryPreparationTime, t.InnerEvalTime, t.ExecQueueTime, t.ExecTotalTime} {
		m = protowire.AppendTag(m, protowire.Number(1+i), protowire.Fixed64Type)
		m = protowire.AppendFixed64(m, math.Float64bits(f))
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendStep writes a PrometheusResponseQueryableSamplesStatsPerStep.
func appendStep(b []byte, num protowire.Number, t, v int64) []byte {
	var m []byte
	m = appendVarintField(m, 1, uint64(v))
	m = appendVarintField(m, 2, uint64(t))
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}
