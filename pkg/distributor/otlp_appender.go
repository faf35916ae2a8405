package distributor

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
)

// otlpAppender is the storage.AppenderV2 that Prometheus' OTLP translation
// appends to: it gathers the samples, histograms, exemplars and metadata
// into a remote-write request, one entry per series, reusing the request's
// slices from one request to the next.
type otlpAppender struct {
	wr *prompb.WriteRequest
	// series is how many entries of wr.Timeseries are in use; the rest
	// keep their capacity for the next request.
	series int
	index  map[uint64]int32    // labels hash -> entry
	meta   map[string]struct{} // metric families whose metadata is in wr
	// samples counts what was appended, up to limit: target_info gets a
	// sample every 2.5 minutes between a resource's oldest and newest
	// data point, so that a few bytes can ask for millions of samples.
	samples, limit int
	err            error
}

var _ storage.AppenderV2 = (*otlpAppender)(nil)

// reset makes the appender write into wr, which it empties, allowing at
// most limit samples.
func (a *otlpAppender) reset(wr *prompb.WriteRequest, limit int) {
	if a.wr != nil {
		a.wr.Timeseries = a.wr.Timeseries[:0]
		a.wr.Metadata = a.wr.Metadata[:0]
	}
	a.wr, a.series, a.samples, a.limit, a.err = wr, 0, 0, limit, nil
	if a.index == nil {
		a.index = map[uint64]int32{}
		a.meta = map[string]struct{}{}
	}
	clear(a.index)
	clear(a.meta)
}

// Append adds a sample (v), or a histogram (h or fh), to the series ls.
func (a *otlpAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if a.err != nil {
		return 0, a.err
	}
	if a.samples++; a.samples > a.limit {
		a.err = &PushError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("the OTLP request translates to more than %d samples (one per byte of its decoded body, plus %d): are its data points' timestamps, which set how many target_info samples a resource gets, far apart?", a.limit, otlpSampleBudget)}
		return 0, a.err
	}
	ts := a.seriesFor(ls)
	switch {
	case fh != nil:
		ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(t, fh))
	case h != nil:
		ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(t, h))
	default:
		ts.Samples = append(ts.Samples, prompb.Sample{Value: v, Timestamp: t})
	}
	for _, e := range opts.Exemplars {
		ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: prompb.FromLabels(e.Labels, nil), Value: e.Value, Timestamp: e.Ts})
	}
	if name := opts.MetricFamilyName; name != "" && !opts.Metadata.IsEmpty() {
		if _, ok := a.meta[name]; !ok {
			name = strings.Clone(name) // the translation reuses its bytes
			a.meta[name] = struct{}{}
			a.wr.Metadata = append(a.wr.Metadata, prompb.MetricMetadata{
				Type:             prompb.FromMetadataType(opts.Metadata.Type),
				MetricFamilyName: name,
				Help:             opts.Metadata.Help,
				Unit:             opts.Metadata.Unit,
			})
		}
	}
	return 0, nil
}

// seriesFor returns the entry of series ls, adding it if it is new.
func (a *otlpAppender) seriesFor(ls labels.Labels) *prompb.TimeSeries {
	hash := ls.Hash()
	if i, ok := a.index[hash]; ok && labelsEqual(a.wr.Timeseries[i].Labels, ls) {
		return &a.wr.Timeseries[i]
	}
	// A new series, or (vanishingly rare) another with the same hash: a
	// second entry for the same series would be written all the same.
	if a.series < len(a.wr.Timeseries) || a.series < cap(a.wr.Timeseries) {
		a.wr.Timeseries = a.wr.Timeseries[:a.series+1]
	} else {
		a.wr.Timeseries = append(a.wr.Timeseries, prompb.TimeSeries{})
	}
	ts := &a.wr.Timeseries[a.series]
	ts.Labels = prompb.FromLabels(ls, ts.Labels[:0])
	ts.Samples = ts.Samples[:0]
	ts.Exemplars = ts.Exemplars[:0]
	ts.Histograms = ts.Histograms[:0]
	a.index[hash] = int32(a.series)
	a.series++
	return ts
}

func labelsEqual(pl []prompb.Label, ls labels.Labels) bool {
	if len(pl) != ls.Len() {
		return false
	}
	i, equal := 0, true
	ls.Range(func(l labels.Label) {
		if equal && (pl[i].Name != l.Name || pl[i].Value != l.Value) {
			equal = false
		}
		i++
	})
	return equal
}

// Commit does nothing: the request is written by the distributor's push.
func (*otlpAppender) Commit() error { return nil }

// Rollback does nothing: a request that failed to translate is not pushed.
func (*otlpAppender) Rollback() error { return nil }
