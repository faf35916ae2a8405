package querier

import (
	"encoding/json"
	"strconv"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstats "github.com/prometheus/prometheus/util/stats"

	"github.com/cortex-tls/cortex/pkg/querier/codec"
)

// The encoders below write exactly the bytes Prometheus's web/api/v1 JSON
// codec writes (its jsoniter encoders for Vector, Matrix and Labels, and
// util/jsonutil): timestamps as seconds with three decimals only when not
// whole, values as strings, labels escaped without HTML escaping. Importing
// web/api/v1 would pull in the whole Prometheus server, and its encoders
// register themselves globally.

// appender is data that writes its own JSON.
type appender interface {
	appendJSON(b []byte) ([]byte, error)
}

// queryData is the "data" of /query and /query_range, with the query's
// statistics when asked for.
type queryData struct {
	v     parser.Value
	stats promstats.QueryStats
}

func (d queryData) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"resultType":"`...)
	b = append(b, d.v.Type()...)
	b = append(b, `","result":`...)
	switch v := d.v.(type) {
	case promql.Vector:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSample(b, s)
		}
		b = append(b, ']')
	case promql.Matrix:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSeries(b, s)
		}
		b = append(b, ']')
	default:
		// Scalar and String marshal themselves, as in Prometheus.
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b = append(b, raw...)
	}
	if d.stats != nil {
		raw, err := json.Marshal(d.stats)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"stats":`...)
		b = append(b, raw...)
	}
	return append(b, '}'), nil
}

// seriesData is the "data" of /series.
type seriesData []labels.Labels

func (d seriesData) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '[')
	for i, ls := range d {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabels(b, ls)
	}
	return append(b, ']'), nil
}

func appendSample(b []byte, s promql.Sample) []byte {
	b = append(b, `{"metric":`...)
	b = appendLabels(b, s.Metric)
	if s.H == nil {
		b = append(b, `,"value":[`...)
		b = codec.AppendTimestamp(b, s.T)
		b = append(b, ',')
		b = codec.AppendFloat(b, s.F)
	} else {
		b = append(b, `,"histogram":[`...)
		b = codec.AppendTimestamp(b, s.T)
		b = append(b, ',')
		b = appendHistogram(b, s.H)
	}
	return append(b, "]}"...)
}

func appendSeries(b []byte, s promql.Series) []byte {
	b = append(b, `{"metric":`...)
	b = appendLabels(b, s.Metric)
	if len(s.Floats) > 0 {
		b = append(b, `,"values":[`...)
		for i, p := range s.Floats {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = codec.AppendTimestamp(b, p.T)
			b = append(b, ',')
			b = codec.AppendFloat(b, p.F)
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	if len(s.Histograms) > 0 {
		b = append(b, `,"histograms":[`...)
		for i, p := range s.Histograms {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = codec.AppendTimestamp(b, p.T)
			b = append(b, ',')
			b = appendHistogram(b, p.H)
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendLabels(b []byte, ls labels.Labels) []byte {
	b = append(b, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = codec.AppendString(b, l.Name)
		b = append(b, ':')
		b = codec.AppendString(b, l.Value)
	})
	return append(b, '}')
}

// appendHistogram writes a histogram as jsonutil.MarshalHistogram.
func appendHistogram(b []byte, h *histogram.FloatHistogram) []byte {
	b = append(b, `{"count":`...)
	b = codec.AppendFloat(b, h.Count)
	b = append(b, `,"sum":`...)
	b = codec.AppendFloat(b, h.Sum)
	found := false
	it := h.AllBucketIterator()
	for it.Next() {
		bucket := it.At()
		if bucket.Count == 0 {
			continue // Prometheus omits empty buckets.
		}
		if found {
			b = append(b, ',')
		} else {
			b = append(b, `,"buckets":[`...)
			found = true
		}
		boundaries := 2 // Exclusive on both sides.
		switch {
		case bucket.LowerInclusive && bucket.UpperInclusive:
			boundaries = 3
		case bucket.LowerInclusive:
			boundaries = 1
		case bucket.UpperInclusive:
			boundaries = 0
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(boundaries), 10)
		b = append(b, ',')
		b = codec.AppendFloat(b, bucket.Lower)
		b = append(b, ',')
		b = codec.AppendFloat(b, bucket.Upper)
		b = append(b, ',')
		b = codec.AppendFloat(b, bucket.Count)
		b = append(b, ']')
	}
	if found {
		b = append(b, ']')
	}
	return append(b, '}')
}
