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
	"math"

	"github.com/prometheus/prometheus/prompb"
)

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
// into b, and that unknown fields are skipped, not kept, but for a
// sample's start timestamp (field 3, which 2.0 samples have): its bytes
// stay in the sample's XXX_unrecognized, where StartTimestamp reads it,
// and travel on with the sample when it is marshalled. Exemplars,
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
			stField, err := decodeSample(b[start:end], &s.Value, &s.Timestamp, nil)
			if err != nil {
				return err
			}
			s.XXX_unrecognized = stField
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
// in 2.0 (st != nil), start_timestamp = 3. stField is the encoding of the
// last start timestamp (a varint field 3, in 1.0 an unknown field), nil
// when there is none.
func decodeSample(b []byte, v *float64, t *int64, st *int64) (stField []byte, err error) {
	for i := 0; i < len(b); {
		pre := i
		field, wt, next, err := tag(b, i, "Sample")
		if err != nil {
			return nil, err
		}
		i = next
		switch {
		case field == 1:
			if wt != 1 {
				return nil, wrongWireType(wt, "Value")
			}
			var bits uint64
			if bits, i, err = fixed64(b, i); err != nil {
				return nil, err
			}
			*v = math.Float64frombits(bits)
		case field == 2 || (field == 3 && (st != nil || wt == 0)):
			if wt != 0 {
				return nil, wrongWireType(wt, [...]string{"", "", "Timestamp", "StartTimestamp"}[field])
			}
			var u uint64
			if u, i, err = varint(b, i); err != nil {
				return nil, err
			}
			switch {
			case field == 2:
				*t = int64(u)
			case st != nil:
				*st = int64(u)
				stField = b[pre:i]
			default:
				stField = b[pre:i]
			}
		default:
			if i, err = skipField(b, pre); err != nil {
				return nil, err
			}
		}
	}
	return stField, nil
}

// StartTimestamp returns the start (created) timestamp of a sample, in
// milliseconds, from its unknown fields as DecodeV1 and Decode leave them:
// field 3 of a prompb.Sample, field 17 of a prompb.Histogram (the numbers
// of the 2.0 messages). 0 means none.
func StartTimestamp(unrecognized []byte, field int32) int64 {
	var st int64
	for i := 0; i < len(unrecognized); {
		pre := i
		f, wt, next, err := tag(unrecognized, i, "")
		if err != nil {
			return st
		}
		if f == field && wt == 0 {
			u, n, err := varint(unrecognized, next)
			if err != nil {
				return st
			}
			st, i = int64(u), n
			continue
		}
		if i, err = skipField(unrecognized, pre); err != nil {
			return st
		}
	}
	return st
}

// appendStartTimestamp appends the encoding of a start timestamp as
// varint field number field.
func appendStartTimestamp(dst []byte, field int32, st int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(field)<<3)
	return binary.AppendUvarint(dst, uint64(st))
}
