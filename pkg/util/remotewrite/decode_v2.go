package remotewrite

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// V2Decoder decodes remote-write 2.0 requests. Its buffers are reused;
// the zero value is ready to use. It is not safe for concurrent use.
type V2Decoder struct {
	// TypeAndUnitLabels adds each series' metadata type and unit as its
	// __type__ and __unit__ labels (-distributor.enable-type-and-unit-labels).
	TypeAndUnitLabels bool

	symbols  []string
	series   [][2]int // byte ranges of the request's series
	refs     []uint32
	families map[string]struct{}
}

// SeriesIssues are the series of a 2.0 request that decoded but cannot be
// stored (symbol references out of range). The spec makes them a 4xx for
// the series alone: the rest of the request is written.
type SeriesIssues struct {
	// First describes the first issue; empty when there is none.
	First string
	// Samples and Exemplars count what was left out (samples include
	// native histogram samples).
	Samples, Exemplars int
}

func (s *SeriesIssues) add(msg string) {
	if s.First == "" {
		s.First = msg
	}
}

// Decode decodes a remote-write 2.0 io.prometheus.write.v2.Request from b
// into req, reusing req's slices and resolving symbol references; req's
// strings then point into b. A malformed message is an error;
// a series whose references do not resolve is left out and reported in
// issues, as Prometheus's receiver does.
func (d *V2Decoder) Decode(b []byte, req *prompb.WriteRequest, issues *SeriesIssues) error {
	req.Timeseries = req.Timeseries[:0]
	req.Metadata = req.Metadata[:0]
	req.XXX_unrecognized = nil
	d.symbols, d.series = d.symbols[:0], d.series[:0]
	if d.families == nil {
		d.families = map[string]struct{}{}
	}
	clear(d.families)
	// Symbols may follow the series they resolve: collect them first.
	for i := 0; i < len(b); {
		pre := i
		field, wt, next, err := tag(b, i, "Request")
		if err != nil {
			return err
		}
		i = next
		switch field {
		case 4, 5:
			if wt != 2 {
				return wrongWireType(wt, [...]string{4: "Symbols", 5: "Timeseries"}[field])
			}
			start, end, err := lengthDelimited(b, i)
			if err != nil {
				return err
			}
			if field == 4 {
				d.symbols = append(d.symbols, yoloString(b[start:end]))
			} else {
				d.series = append(d.series, [2]int{start, end})
			}
			i = end
		default:
			if i, err = skipField(b, pre); err != nil {
				return err
			}
		}
	}
	for _, r := range d.series {
		ts := nextSeries(&req.Timeseries)
		ok, err := d.decodeSeries(b[r[0]:r[1]], ts, req, issues)
		if err != nil {
			return err
		}
		if !ok {
			req.Timeseries = req.Timeseries[:len(req.Timeseries)-1]
		}
	}
	return nil
}

// decodeSeries decodes one 2.0 series into ts; ok is false when the series
// must be left out.
func (d *V2Decoder) decodeSeries(b []byte, ts *prompb.TimeSeries, req *prompb.WriteRequest, issues *SeriesIssues) (ok bool, err error) {
	var md writev2.Metadata
	d.refs = d.refs[:0]
	for i := 0; i < len(b); {
		pre := i
		field, wt, next, err := tag(b, i, "TimeSeries")
		if err != nil {
			return false, err
		}
		i = next
		if field == 1 && wt == 0 {
			var v uint64
			if v, i, err = varint(b, i); err != nil {
				return false, err
			}
			d.refs = append(d.refs, uint32(v))
			continue
		}
		if field < 1 || field > 5 {
			if i, err = skipField(b, pre); err != nil {
				return false, err
			}
			continue
		}
		if wt != 2 {
			return false, wrongWireType(wt, [...]string{"", "LabelsRefs", "Samples", "Histograms", "Exemplars", "Metadata"}[field])
		}
		start, end, err := lengthDelimited(b, i)
		if err != nil {
			return false, err
		}
		switch field {
		case 1:
			// Packed references. Like gogo's code, a varint may run past
			// the announced length; parsing resumes where it ended.
			i = start
			for i < end {
				var v uint64
				if v, i, err = varint(b, i); err != nil {
					return false, err
				}
				d.refs = append(d.refs, uint32(v))
			}
			continue
		case 2:
			ts.Samples = append(ts.Samples, prompb.Sample{})
			s := &ts.Samples[len(ts.Samples)-1]
			var st int64
			stField, err := decodeSample(b[start:end], &s.Value, &s.Timestamp, &st)
			if err != nil {
				return false, err
			}
			if st != 0 {
				// The same field as in 1.0's unknown fields: the
				// ingester reads it from there.
				s.XXX_unrecognized = stField
			}
		case 3:
			var h writev2.Histogram
			if err := h.Unmarshal(b[start:end]); err != nil {
				return false, err
			}
			ts.Histograms = append(ts.Histograms, histogramFromV2(&h))
		case 4:
			var e writev2.Exemplar
			if err := e.Unmarshal(b[start:end]); err != nil {
				return false, err
			}
			ls, err := d.labels(nil, e.LabelsRefs)
			if err != nil {
				issues.Exemplars++
				issues.add(fmt.Sprintf("parsing exemplar at %d: %v", e.Timestamp, err))
				break
			}
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: ls, Value: e.Value, Timestamp: e.Timestamp})
		case 5:
			if err := md.Unmarshal(b[start:end]); err != nil {
				return false, err
			}
		}
		i = end
	}
	ls, err := d.labels(ts.Labels, d.refs)
	if err != nil {
		issues.Samples += len(ts.Samples) + len(ts.Histograms)
		issues.Exemplars += len(ts.Exemplars)
		issues.add(fmt.Sprintf("parsing labels for series %v: %v", d.refs, err))
		return false, nil
	}
	ts.Labels = ls
	d.metadata(req, ts, &md, issues)
	if d.TypeAndUnitLabels {
		d.typeAndUnitLabels(ts, &md)
	}
	return true, nil
}

// metricTypes are Prometheus' __type__ values of 2.0's metric types.
var metricTypes = map[writev2.Metadata_MetricType]model.MetricType{
	writev2.Metadata_METRIC_TYPE_COUNTER:        model.MetricTypeCounter,
	writev2.Metadata_METRIC_TYPE_GAUGE:          model.MetricTypeGauge,
	writev2.Metadata_METRIC_TYPE_HISTOGRAM:      model.MetricTypeHistogram,
	writev2.Metadata_METRIC_TYPE_GAUGEHISTOGRAM: model.MetricTypeGaugeHistogram,
	writev2.Metadata_METRIC_TYPE_SUMMARY:        model.MetricTypeSummary,
	writev2.Metadata_METRIC_TYPE_INFO:           model.MetricTypeInfo,
	writev2.Metadata_METRIC_TYPE_STATESET:       model.MetricTypeStateset,
}

// typeAndUnitLabels sets the series' __type__ and __unit__ labels from its
// metadata, as Prometheus' type-and-unit-labels feature and Cortex do: a
// series with neither keeps the labels it was sent with.
func (d *V2Decoder) typeAndUnitLabels(ts *prompb.TimeSeries, md *writev2.Metadata) {
	typ := metricTypes[md.Type]
	unit := ""
	if int(md.UnitRef) < len(d.symbols) {
		unit = d.symbols[md.UnitRef]
	}
	if typ == "" && unit == "" {
		return
	}
	ls := ts.Labels[:0]
	for _, l := range ts.Labels {
		if l.Name != model.MetricTypeLabel && l.Name != model.MetricUnitLabel {
			ls = append(ls, l)
		}
	}
	if typ != "" {
		ls = append(ls, prompb.Label{Name: model.MetricTypeLabel, Value: string(typ)})
	}
	if unit != "" {
		ls = append(ls, prompb.Label{Name: model.MetricUnitLabel, Value: unit})
	}
	slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
	ts.Labels = ls
}

// labels resolves name/value references into dst.
func (d *V2Decoder) labels(dst []prompb.Label, refs []uint32) ([]prompb.Label, error) {
	if len(refs)%2 != 0 {
		return dst, fmt.Errorf("invalid labelRefs length %d", len(refs))
	}
	for i := 0; i < len(refs); i += 2 {
		n, v := refs[i], refs[i+1]
		if int(n) >= len(d.symbols) || int(v) >= len(d.symbols) {
			return dst, fmt.Errorf("labelRefs %d (name) = %d (value) outside of symbols table (size %d)", n, v, len(d.symbols))
		}
		dst = append(dst, prompb.Label{Name: d.symbols[n], Value: d.symbols[v]})
	}
	return dst, nil
}

// metadata turns a series' 2.0 metadata into the 1.0 per-family metadata
// the ingesters store, once per family and request. A reference out of
// range leaves the metadata out, not the series.
func (d *V2Decoder) metadata(req *prompb.WriteRequest, ts *prompb.TimeSeries, md *writev2.Metadata, issues *SeriesIssues) {
	if md.Type == writev2.Metadata_METRIC_TYPE_UNSPECIFIED && md.HelpRef == 0 && md.UnitRef == 0 {
		return
	}
	name := ""
	for _, l := range ts.Labels {
		if l.Name == model.MetricNameLabel {
			name = l.Value
			break
		}
	}
	if int(md.HelpRef) >= len(d.symbols) || int(md.UnitRef) >= len(d.symbols) {
		issues.add(fmt.Sprintf("parsing metadata of %q: help_ref %d or unit_ref %d outside of symbols table (size %d)", name, md.HelpRef, md.UnitRef, len(d.symbols)))
		return
	}
	typ := prompb.MetricMetadata_UNKNOWN
	if md.Type > 0 && md.Type <= writev2.Metadata_METRIC_TYPE_STATESET {
		typ = prompb.MetricMetadata_MetricType(md.Type) // same numbering
	}
	family := familyName(name, typ)
	if _, seen := d.families[family]; seen {
		return
	}
	d.families[family] = struct{}{}
	req.Metadata = append(req.Metadata, prompb.MetricMetadata{
		Type:             typ,
		MetricFamilyName: family,
		Help:             d.symbols[md.HelpRef],
		Unit:             d.symbols[md.UnitRef],
	})
}

// familyName is the metric family of a series name: 2.0 sends metadata per
// series, so a classic histogram's foo_bucket, foo_sum and foo_count all
// describe family foo.
func familyName(name string, typ prompb.MetricMetadata_MetricType) string {
	var suffixes []string
	switch typ {
	case prompb.MetricMetadata_HISTOGRAM, prompb.MetricMetadata_GAUGEHISTOGRAM:
		suffixes = []string{"_bucket", "_sum", "_count"}
	case prompb.MetricMetadata_SUMMARY:
		suffixes = []string{"_sum", "_count"}
	}
	for _, s := range suffixes {
		if len(name) > len(s) && name[len(name)-len(s):] == s {
			return name[:len(name)-len(s)]
		}
	}
	return name
}

// histogramFromV2 converts a 2.0 native histogram; the two messages share
// field numbers and enum values, but not Go types. The start timestamp,
// which 1.0 does not have, goes into XXX_unrecognized as field 17, as in
// 2.0, where StartTimestamp reads it and marshalling keeps it.
func histogramFromV2(h *writev2.Histogram) prompb.Histogram {
	out := prompb.Histogram{
		Sum:            h.Sum,
		Schema:         h.Schema,
		ZeroThreshold:  h.ZeroThreshold,
		NegativeSpans:  spansFromV2(h.NegativeSpans),
		NegativeDeltas: h.NegativeDeltas,
		NegativeCounts: h.NegativeCounts,
		PositiveSpans:  spansFromV2(h.PositiveSpans),
		PositiveDeltas: h.PositiveDeltas,
		PositiveCounts: h.PositiveCounts,
		ResetHint:      prompb.Histogram_ResetHint(h.ResetHint),
		Timestamp:      h.Timestamp,
		CustomValues:   h.CustomValues,
	}
	if h.StartTimestamp != 0 {
		out.XXX_unrecognized = appendStartTimestamp(nil, 17, h.StartTimestamp)
	}
	switch c := h.Count.(type) {
	case *writev2.Histogram_CountInt:
		out.Count = &prompb.Histogram_CountInt{CountInt: c.CountInt}
	case *writev2.Histogram_CountFloat:
		out.Count = &prompb.Histogram_CountFloat{CountFloat: c.CountFloat}
	}
	switch c := h.ZeroCount.(type) {
	case *writev2.Histogram_ZeroCountInt:
		out.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: c.ZeroCountInt}
	case *writev2.Histogram_ZeroCountFloat:
		out.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: c.ZeroCountFloat}
	}
	return out
}

func spansFromV2(s []writev2.BucketSpan) []prompb.BucketSpan {
	if len(s) == 0 {
		return nil
	}
	out := make([]prompb.BucketSpan, len(s))
	for i, sp := range s {
		out[i] = prompb.BucketSpan{Offset: sp.Offset, Length: sp.Length}
	}
	return out
}
