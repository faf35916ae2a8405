package remotewrite

// Remote-write decoding. Both decoders fill a prompb.WriteRequest whose
// slices are reused from request to request and whose strings point into
// the decompressed body instead of being copied: at 1,000 series of 8
// labels per request, gogo's generated Unmarshal would allocate 16,000
// strings and 2,000 slices per request. The strings are valid only while
// the body buffer is: the distributor keeps it until the last ingester
// call has returned (the gRPC codec copies the request into its own
// buffer when marshalling it), and the ingester's client.PushRequest
// until its Push has returned.
//
// Sub-messages that are rare on the hot path (exemplars, native histograms,
// metadata) go through gogo's generated code. Everything else mirrors that
// code's acceptance rules exactly, so the two decoders accept the same
// inputs as proto.Unmarshal would; the fuzz tests check it.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

var (
	errIntOverflow          = errors.New("proto: integer overflow")
	errInvalidLength        = errors.New("proto: negative length found during unmarshaling")
	errUnexpectedEndOfGroup = errors.New("proto: unexpected end of group")
)

// yoloString returns a string sharing b's memory.
func yoloString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// varint reads the varint at b[i:]; its fast path inlines.
func varint(b []byte, i int) (uint64, int, error) {
	if i < len(b) && b[i] < 0x80 {
		return uint64(b[i]), i + 1, nil
	}
	return varintSlow(b, i)
}

func varintSlow(b []byte, i int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, i, errIntOverflow
		}
		if i >= len(b) {
			return 0, i, io.ErrUnexpectedEOF
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i, nil
		}
	}
}

// tag reads a field key, refusing what gogo's generated code refuses.
func tag(b []byte, i int, msg string) (field int32, wireType int, next int, err error) {
	wire, next, err := varint(b, i)
	if err != nil {
		return 0, 0, next, err
	}
	field, wireType = int32(wire>>3), int(wire&0x7)
	if wireType == 4 {
		return 0, 0, next, fmt.Errorf("proto: %s: wiretype end group for non-group", msg)
	}
	if field <= 0 {
		return 0, 0, next, fmt.Errorf("proto: %s: illegal tag %d (wire type %d)", msg, field, wire)
	}
	return field, wireType, next, nil
}

// lengthDelimited reads a length prefix at b[i:] and returns the bounds of
// the bytes it announces.
func lengthDelimited(b []byte, i int) (start, end int, err error) {
	v, i, err := varint(b, i)
	if err != nil {
		return 0, 0, err
	}
	n := int(v)
	if n < 0 {
		return 0, 0, errInvalidLength
	}
	end = i + n
	if end < 0 {
		return 0, 0, errInvalidLength
	}
	if end > len(b) {
		return 0, 0, io.ErrUnexpectedEOF
	}
	return i, end, nil
}

func fixed64(b []byte, i int) (uint64, int, error) {
	if i+8 > len(b) {
		return 0, i, io.ErrUnexpectedEOF
	}
	return binary.LittleEndian.Uint64(b[i:]), i + 8, nil
}

// skipField skips the unknown field whose key starts at b[pre:], as gogo's
// skipTypes does, and returns the index after it.
func skipField(b []byte, pre int) (int, error) {
	n, err := skipTypes(b[pre:])
	if err != nil {
		return 0, err
	}
	if n < 0 || pre+n < 0 {
		return 0, errInvalidLength
	}
	if pre+n > len(b) {
		return 0, io.ErrUnexpectedEOF
	}
	return pre + n, nil
}

func skipTypes(b []byte) (int, error) {
	l, i, depth := len(b), 0, 0
	for i < l {
		var wire uint64
		var err error
		if wire, i, err = varintSlow(b, i); err != nil {
			return 0, err
		}
		switch wireType := int(wire & 0x7); wireType {
		case 0:
			if _, i, err = varintSlow(b, i); err != nil {
				return 0, err
			}
		case 1:
			i += 8
		case 2:
			var length uint64
			if length, i, err = varintSlow(b, i); err != nil {
				return 0, err
			}
			if int(length) < 0 {
				return 0, errInvalidLength
			}
			i += int(length)
		case 3:
			depth++
		case 4:
			if depth == 0 {
				return 0, errUnexpectedEndOfGroup
			}
			depth--
		case 5:
			i += 4
		default:
			return 0, fmt.Errorf("proto: illegal wireType %d", wireType)
		}
		if i < 0 {
			return 0, errInvalidLength
		}
		if depth == 0 {
			return i, nil
		}
	}
	return 0, io.ErrUnexpectedEOF
}

func wrongWireType(wt int, field string) error {
	return fmt.Errorf("proto: wrong wireType = %d for field %s", wt, field)
}

// nextSeries grows s by one series, reusing the slices of a series left
// there by an earlier request.
func nextSeries(s *[]prompb.TimeSeries) *prompb.TimeSeries {
	n := len(*s)
	if n < cap(*s) {
		*s = (*s)[:n+1]
		ts := &(*s)[n]
		ts.Labels = ts.Labels[:0]
		ts.Samples = ts.Samples[:0]
		ts.Exemplars = ts.Exemplars[:0]
		ts.Histograms = ts.Histograms[:0]
		ts.XXX_unrecognized = nil
		return ts
	}
	*s = append(*s, prompb.TimeSeries{})
	return &(*s)[n]
}

// DecodeV1 decodes a remote-write 1.0 prompb.WriteRequest from b into req,
// reusing req's slices. It accepts exactly what req.Unmarshal accepts and
// decodes to the same request, except that labels' strings then point
// into b, and that unknown fields are skipped, not kept. Exemplars,
// native histograms and metadata are decoded by gogo's code: their strings
// and slices are copies. spans, when not
// nil, receives the bounds of each series' encoding in b.
func DecodeV1(b []byte, req *prompb.WriteRequest, spans *[][2]int32) error {
	if spans != nil {
		*spans = (*spans)[:0]
	}
	req.Timeseries = req.Timeseries[:0]
	req.Metadata = req.Metadata[:0]
	req.XXX_unrecognized = nil
	for i := 0; i < len(b); {
		pre := i
		field, wt, next, err := tag(b, i, "WriteRequest")
		if err != nil {
			return err
		}
		i = next
		switch field {
		case 1:
			if wt != 2 {
				return wrongWireType(wt, "Timeseries")
			}
			start, end, err := lengthDelimited(b, i)
			if err != nil {
				return err
			}
			if err := decodeV1Series(b[start:end], nextSeries(&req.Timeseries)); err != nil {
				return err
			}
			if spans != nil {
				*spans = append(*spans, [2]int32{int32(start), int32(end)})
			}
			i = end
		case 3:
			if wt != 2 {
				return wrongWireType(wt, "Metadata")
			}
			start, end, err := lengthDelimited(b, i)
			if err != nil {
				return err
			}
			req.Metadata = append(req.Metadata, prompb.MetricMetadata{})
			md := &req.Metadata[len(req.Metadata)-1]
			if err := md.Unmarshal(b[start:end]); err != nil {
				return err
			}
			md.XXX_unrecognized = nil
			i = end
		default:
			if i, err = skipField(b, pre); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeV1Series(b []byte, ts *prompb.TimeSeries) error {
	for i := 0; i < len(b); {
		pre := i
		field, wt, next, err := tag(b, i, "TimeSeries")
		if err != nil {
			return err
		}
		i = next
		if field < 1 || field > 4 {
			if i, err = skipField(b, pre); err != nil {
				return err
			}
			continue
		}
		if wt != 2 {
			return wrongWireType(wt, [...]string{"", "Labels", "Samples", "Exemplars", "Histograms"}[field])
		}
		start, end, err := lengthDelimited(b, i)
		if err != nil {
			return err
		}
		switch field {
		case 1:
			ts.Labels = append(ts.Labels, prompb.Label{})
			if err := decodeLabel(b[start:end], &ts.Labels[len(ts.Labels)-1]); err != nil {
				return err
			}
		case 2:
			ts.Samples = append(ts.Samples, prompb.Sample{})
			s := &ts.Samples[len(ts.Samples)-1]
			if err := decodeSample(b[start:end], &s.Value, &s.Timestamp, nil); err != nil {
				return err
			}
		case 3:
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{})
			if err := ts.Exemplars[len(ts.Exemplars)-1].Unmarshal(b[start:end]); err != nil {
				return err
			}
		case 4:
			ts.Histograms = append(ts.Histograms, prompb.Histogram{})
			if err := ts.Histograms[len(ts.Histograms)-1].Unmarshal(b[start:end]); err != nil {
				return err
			}
		}
		i = end
	}
	return nil
}

func decodeLabel(b []byte, l *prompb.Label) error {
	for i := 0; i < len(b); {
		pre := i
		field, wt, next, err := tag(b, i, "Label")
		if err != nil {
			return err
		}
		i = next
		switch field {
		case 1, 2:
			if wt != 2 {
				return wrongWireType(wt, [...]string{"", "Name", "Value"}[field])
			}
			start, end, err := lengthDelimited(b, i)
			if err != nil {
				return err
			}
			if field == 1 {
				l.Name = yoloString(b[start:end])
			} else {
				l.Value = yoloString(b[start:end])
			}
			i = end
		default:
			if i, err = skipField(b, pre); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeSample decodes a 1.0 or 2.0 sample: value = 1, timestamp = 2 and,
// in 2.0 only (st != nil), start_timestamp = 3.
func decodeSample(b []byte, v *float64, t *int64, st *int64) error {
	for i := 0; i < len(b); {
		pre := i
		field, wt, next, err := tag(b, i, "Sample")
		if err != nil {
			return err
		}
		i = next
		switch {
		case field == 1:
			if wt != 1 {
				return wrongWireType(wt, "Value")
			}
			var bits uint64
			if bits, i, err = fixed64(b, i); err != nil {
				return err
			}
			*v = math.Float64frombits(bits)
		case field == 2 || (field == 3 && st != nil):
			if wt != 0 {
				return wrongWireType(wt, [...]string{"", "", "Timestamp", "StartTimestamp"}[field])
			}
			var u uint64
			if u, i, err = varint(b, i); err != nil {
				return err
			}
			if field == 2 {
				*t = int64(u)
			} else {
				*st = int64(u)
			}
		default:
			if i, err = skipField(b, pre); err != nil {
				return err
			}
		}
	}
	return nil
}

// V2Decoder decodes remote-write 2.0 requests. Its buffers are reused;
// the zero value is ready to use. It is not safe for concurrent use.
type V2Decoder struct {
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
			if err := decodeSample(b[start:end], &s.Value, &s.Timestamp, &st); err != nil {
				return false, err
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
	return true, nil
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
		if l.Name == labels.MetricName {
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
// field numbers and enum values, but not Go types. The start timestamp has
// no place in the ingester API and is dropped.
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
