package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// field is one field of a protobuf message: the bytes of a length-delimited
// field, or the value of a varint or fixed-size one.
type field struct {
	num   protowire.Number
	typ   protowire.Type
	bytes []byte
	u     uint64
}

// eachField calls f on the fields of the message in b, in wire order.
func eachField(b []byte, f func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		fl := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			fl.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			fl.u, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			fl.u = uint64(v)
		case protowire.BytesType:
			fl.bytes, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(fl); err != nil {
			return err
		}
	}
	return nil
}

func (f field) float() float64 { return math.Float64frombits(f.u) }

// response is the top of a PrometheusResponse, its data left encoded.
type response struct {
	status, errorType, errMsg string
	data                      []byte
	warnings, infos           []string
}

func parseResponse(b []byte) (response, error) {
	var r response
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			r.status = string(f.bytes)
		case 2:
			r.data = f.bytes
		case 3:
			r.errorType = string(f.bytes)
		case 4:
			r.errMsg = string(f.bytes)
		case 6:
			r.warnings = append(r.warnings, string(f.bytes))
		case 7:
			r.infos = append(r.infos, string(f.bytes))
		}
		return nil
	})
	return r, err
}

// data is a PrometheusData, its parts left encoded.
type data struct {
	resultType string
	// One of vector, matrix (the messages) or rawBytes (JSON).
	vector, matrix, rawBytes []byte
	stats                    []byte
	hasStats                 bool
}

func parseData(b []byte) (data, error) {
	var d data
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			d.resultType = string(f.bytes)
		case 2:
			return eachField(f.bytes, func(r field) error {
				switch r.num {
				case 1:
					d.vector = r.bytes
				case 2:
					d.rawBytes = r.bytes
				case 3:
					d.matrix = r.bytes
				}
				return nil
			})
		case 3:
			d.stats, d.hasStats = f.bytes, true
		}
		return nil
	})
	return d, err
}

// ToJSON appends to dst the answer body, in Cortex's protobuf encoding, in
// Prometheus' JSON: the bytes the querier writes when asked for JSON.
func ToJSON(dst, body []byte) ([]byte, error) {
	r, err := parseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("decoding a protobuf query answer: %w", err)
	}
	if r.status != "success" {
		raw, err := json.Marshal(struct {
			Status    string `json:"status"`
			ErrorType string `json:"errorType,omitempty"`
			Error     string `json:"error,omitempty"`
		}{r.status, r.errorType, r.errMsg})
		return append(dst, raw...), err
	}
	d, err := parseData(r.data)
	if err != nil {
		return nil, fmt.Errorf("decoding a protobuf query answer's data: %w", err)
	}
	dst = append(dst, `{"status":"success","data":`...)
	if dst, err = appendDataJSON(dst, d); err != nil {
		return nil, fmt.Errorf("decoding a protobuf query answer's %s: %w", d.resultType, err)
	}
	for _, extra := range []struct {
		name string
		v    []string
	}{{"warnings", r.warnings}, {"infos", r.infos}} {
		if len(extra.v) > 0 {
			raw, err := json.Marshal(extra.v)
			if err != nil {
				return nil, err
			}
			dst = append(dst, `,"`+extra.name+`":`...)
			dst = append(dst, raw...)
		}
	}
	return append(dst, '}'), nil
}

func appendDataJSON(b []byte, d data) ([]byte, error) {
	if d.rawBytes != nil {
		if !json.Valid(d.rawBytes) {
			return nil, errors.New("rawBytes is not JSON")
		}
		return append(b, d.rawBytes...), nil
	}
	b = append(b, `{"resultType":`...)
	b = AppendString(b, d.resultType)
	b = append(b, `,"result":[`...)
	var err error
	switch d.resultType {
	case "matrix":
		first := true
		err = eachField(d.matrix, func(f field) error {
			if f.num != 1 {
				return nil
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			var err error
			b, err = appendStreamJSON(b, f.bytes)
			return err
		})
	case "vector":
		first := true
		err = eachField(d.vector, func(f field) error {
			if f.num != 1 {
				return nil
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			var err error
			b, err = appendVectorSampleJSON(b, f.bytes)
			return err
		})
	default:
		err = fmt.Errorf("result type %q without rawBytes", d.resultType)
	}
	if err != nil {
		return nil, err
	}
	b = append(b, ']')
	if d.hasStats {
		st, err := parseStats(d.stats)
		if err != nil {
			return nil, fmt.Errorf("statistics: %w", err)
		}
		raw, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"stats":`...)
		b = append(b, raw...)
	}
	return append(b, '}'), nil
}

// ResultLen is the number of series of a matrix answer, or samples of a
// vector one, in Cortex's protobuf encoding; 0 for anything else.
func ResultLen(body []byte) int {
	r, err := parseResponse(body)
	if err != nil {
		return 0
	}
	d, err := parseData(r.data)
	if err != nil {
		return 0
	}
	n := 0
	for _, m := range [][]byte{d.vector, d.matrix} {
		_ = eachField(m, func(f field) error {
			if f.num == 1 {
				n++
			}
			return nil
		})
	}
	return n
}

// appendMetricJSON writes the labels (fields 1) of a stream or sample.
func appendMetricJSON(b []byte, msg []byte) ([]byte, error) {
	b = append(b, `{"metric":{`...)
	first := true
	err := eachField(msg, func(f field) error {
		if f.num != 1 {
			return nil
		}
		var name, value []byte
		if err := eachField(f.bytes, func(l field) error {
			switch l.num {
			case 1:
				name = l.bytes
			case 2:
				value = l.bytes
			}
			return nil
		}); err != nil {
			return err
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = AppendString(b, string(name))
		b = append(b, ':')
		b = AppendString(b, string(value))
		return nil
	})
	return append(b, '}'), err
}

// appendStreamJSON writes a SampleStream. Its labels, samples and
// histograms come in that order from Cortex's encoders and this package's,
// which one pass writes; any other order takes appendStreamJSONAnyOrder.
func appendStreamJSON(b []byte, msg []byte) ([]byte, error) {
	start := len(b)
	b = append(b, `{"metric":{`...)
	const (
		inLabels = iota
		inValues
		inHistograms
	)
	state := inLabels
	first := true
	for rest := msg; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		rest = rest[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, rest); n < 0 {
				return nil, protowire.ParseError(n)
			}
			rest = rest[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(rest)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		rest = rest[n:]
		switch {
		case num == 1 && state == inLabels:
			if !first {
				b = append(b, ',')
			}
			first = false
			var err error
			if b, err = appendLabelPairJSON(b, v); err != nil {
				return nil, err
			}
		case num == 2 && state <= inValues:
			if state == inLabels {
				b = append(b, `},"values":[`...)
				state = inValues
			} else {
				b = append(b, ',')
			}
			t, f, err := parseSample(v)
			if err != nil {
				return nil, err
			}
			b = append(b, '[')
			b = AppendTimestamp(b, t)
			b = append(b, ',')
			b = AppendFloat(b, f)
			b = append(b, ']')
		case num == 3:
			switch state {
			case inLabels:
				b = append(b, `},"histograms":[`...)
			case inValues:
				b = append(b, `],"histograms":[`...)
			default:
				b = append(b, ',')
			}
			state = inHistograms
			var err error
			if b, err = appendHistogramPairJSON(b, v); err != nil {
				return nil, err
			}
		case num == 1 || num == 2:
			return appendStreamJSONAnyOrder(b[:start], msg)
		}
	}
	if state == inLabels {
		b = append(b, '}')
	} else {
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendLabelPairJSON writes a LabelPair as "name":"value".
func appendLabelPairJSON(b []byte, msg []byte) ([]byte, error) {
	var name, value []byte
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		msg = msg[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, msg); n < 0 {
				return nil, protowire.ParseError(n)
			}
			msg = msg[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(msg)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		msg = msg[n:]
		switch num {
		case 1:
			name = v
		case 2:
			value = v
		}
	}
	b = AppendString(b, string(name))
	b = append(b, ':')
	return AppendString(b, string(value)), nil
}

// parseSample reads a cortexpb.Sample.
func parseSample(msg []byte) (t int64, v float64, err error) {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return 0, 0, protowire.ParseError(n)
		}
		msg = msg[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			var u uint64
			u, n = protowire.ConsumeFixed64(msg)
			v = math.Float64frombits(u)
		case num == 2 && typ == protowire.VarintType:
			var u uint64
			u, n = protowire.ConsumeVarint(msg)
			t = int64(u)
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return 0, 0, protowire.ParseError(n)
		}
		msg = msg[n:]
	}
	return t, v, nil
}

func appendStreamJSONAnyOrder(b []byte, msg []byte) ([]byte, error) {
	b, err := appendMetricJSON(b, msg)
	if err != nil {
		return nil, err
	}
	for _, part := range []struct {
		num  protowire.Number
		name string
	}{{2, `,"values":[`}, {3, `,"histograms":[`}} {
		first := true
		err := eachField(msg, func(f field) error {
			if f.num != part.num {
				return nil
			}
			if first {
				b = append(b, part.name...)
			} else {
				b = append(b, ',')
			}
			first = false
			var err error
			if part.num == 2 {
				b, err = appendSampleJSON(b, f.bytes)
			} else {
				b, err = appendHistogramPairJSON(b, f.bytes)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if !first {
			b = append(b, ']')
		}
	}
	return append(b, '}'), nil
}

// appendSampleJSON writes a cortexpb.Sample as [t,"v"].
func appendSampleJSON(b []byte, msg []byte) ([]byte, error) {
	var t int64
	var v float64
	err := eachField(msg, func(f field) error {
		switch f.num {
		case 1:
			v = f.float()
		case 2:
			t = int64(f.u)
		}
		return nil
	})
	b = append(b, '[')
	b = AppendTimestamp(b, t)
	b = append(b, ',')
	b = AppendFloat(b, v)
	return append(b, ']'), err
}

// appendHistogramPairJSON writes a SampleHistogramPair as [t,{...}].
func appendHistogramPairJSON(b []byte, msg []byte) ([]byte, error) {
	var t int64
	var h []byte
	if err := eachField(msg, func(f field) error {
		switch f.num {
		case 1:
			t = int64(f.u)
		case 2:
			h = f.bytes
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var count, sum float64
	if err := eachField(h, func(f field) error {
		switch f.num {
		case 1:
			count = f.float()
		case 2:
			sum = f.float()
		}
		return nil
	}); err != nil {
		return nil, err
	}
	b = append(b, '[')
	b = AppendTimestamp(b, t)
	b = append(b, `,{"count":`...)
	b = AppendFloat(b, count)
	b = append(b, `,"sum":`...)
	b = AppendFloat(b, sum)
	first := true
	err := eachField(h, func(f field) error {
		if f.num != 3 {
			return nil
		}
		var boundaries int32
		var bounds [3]float64
		if err := eachField(f.bytes, func(bf field) error {
			switch {
			case bf.num == 1:
				boundaries = int32(bf.u)
			case bf.num >= 2 && bf.num <= 4:
				bounds[bf.num-2] = bf.float()
			}
			return nil
		}); err != nil {
			return err
		}
		if first {
			b = append(b, `,"buckets":[`...)
		} else {
			b = append(b, ',')
		}
		first = false
		b = appendBucket(b, boundaries, bounds[0], bounds[1], bounds[2])
		return nil
	})
	if !first {
		b = append(b, ']')
	}
	return append(b, "}]"...), err
}

// appendFloatHistogramJSON writes a whole native histogram as its
// non-empty buckets, as Prometheus' JSON does.
func appendFloatHistogramJSON(b []byte, t int64, h *histogram.FloatHistogram) []byte {
	b = append(b, '[')
	b = AppendTimestamp(b, t)
	b = append(b, `,{"count":`...)
	b = AppendFloat(b, h.Count)
	b = append(b, `,"sum":`...)
	b = AppendFloat(b, h.Sum)
	first := true
	it := h.AllBucketIterator()
	for it.Next() {
		bucket := it.At()
		if bucket.Count == 0 {
			continue
		}
		if first {
			b = append(b, `,"buckets":[`...)
		} else {
			b = append(b, ',')
		}
		first = false
		b = appendBucket(b, bucketBoundaries(bucket), bucket.Lower, bucket.Upper, bucket.Count)
	}
	if !first {
		b = append(b, ']')
	}
	return append(b, "}]"...)
}

// appendVectorSampleJSON writes a Sample of a vector.
func appendVectorSampleJSON(b []byte, msg []byte) ([]byte, error) {
	b, err := appendMetricJSON(b, msg)
	if err != nil {
		return nil, err
	}
	err = eachField(msg, func(f field) error {
		var err error
		switch f.num {
		case 2:
			b = append(b, `,"value":`...)
			b, err = appendSampleJSON(b, f.bytes)
		case 3:
			b = append(b, `,"histogram":`...)
			b, err = appendHistogramPairJSON(b, f.bytes)
		case 4:
			var hp prompb.Histogram
			if err := hp.Unmarshal(f.bytes); err != nil {
				return fmt.Errorf("native histogram: %w", err)
			}
			b = append(b, `,"histogram":`...)
			b = appendFloatHistogramJSON(b, hp.Timestamp, hp.ToFloatHistogram())
		}
		return err
	})
	return append(b, '}'), err
}

// The statistics in Prometheus' JSON (its stats.BuiltinStats).
type statsJSON struct {
	Timings timingsJSON  `json:"timings,omitempty"`
	Samples *samplesJSON `json:"samples,omitempty"`
}

type timingsJSON struct {
	EvalTotalTime        float64 `json:"evalTotalTime"`
	ResultSortTime       float64 `json:"resultSortTime"`
	QueryPreparationTime float64 `json:"queryPreparationTime"`
	InnerEvalTime        float64 `json:"innerEvalTime"`
	ExecQueueTime        float64 `json:"execQueueTime"`
	ExecTotalTime        float64 `json:"execTotalTime"`
}

type samplesJSON struct {
	TotalQueryableSamplesPerStep []stepJSON `json:"totalQueryableSamplesPerStep,omitempty"`
	TotalQueryableSamples        int64      `json:"totalQueryableSamples"`
	SamplesReadPerStep           []stepJSON `json:"samplesReadPerStep,omitempty"`
	SamplesRead                  int64      `json:"samplesRead"`
	SeriesTouched                int64      `json:"seriesTouched"`
	PeakSamples                  int        `json:"peakSamples"`
}

type stepJSON struct{ T, V int64 }

// MarshalJSON writes [seconds, value], as Prometheus' stepStat.
func (s stepJSON) MarshalJSON() ([]byte, error) {
	return json.Marshal([...]any{float64(s.T) / 1000, s.V})
}

// UnmarshalJSON reads [seconds, value].
func (s *stepJSON) UnmarshalJSON(b []byte) error {
	var p [2]json.Number
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("a step statistic: %w", err)
	}
	t, err := parseTimestamp(string(p[0]))
	if err != nil {
		return err
	}
	v, err := p[1].Int64()
	if err != nil {
		return fmt.Errorf("a step statistic's value %q: %w", p[1], err)
	}
	s.T, s.V = t, v
	return nil
}

func parseStats(b []byte) (statsJSON, error) {
	var st statsJSON
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			st.Samples = &samplesJSON{}
			return eachField(f.bytes, func(sf field) error {
				switch sf.num {
				case 1:
					st.Samples.TotalQueryableSamples = int64(sf.u)
				case 2, 5:
					var s stepJSON
					if err := eachField(sf.bytes, func(pf field) error {
						switch pf.num {
						case 1:
							s.V = int64(pf.u)
						case 2:
							s.T = int64(pf.u)
						}
						return nil
					}); err != nil {
						return err
					}
					if sf.num == 2 {
						st.Samples.TotalQueryableSamplesPerStep = append(st.Samples.TotalQueryableSamplesPerStep, s)
					} else {
						st.Samples.SamplesReadPerStep = append(st.Samples.SamplesReadPerStep, s)
					}
				case 3:
					st.Samples.PeakSamples = int(int64(sf.u))
				case 4:
					st.Samples.SamplesRead = int64(sf.u)
				case 6:
					st.Samples.SeriesTouched = int64(sf.u)
				}
				return nil
			})
		case 2:
			return eachField(f.bytes, func(tf field) error {
				t := &st.Timings
				switch tf.num {
				case 1:
					t.EvalTotalTime = tf.float()
				case 2:
					t.ResultSortTime = tf.float()
				case 3:
					t.QueryPreparationTime = tf.float()
				case 4:
					t.InnerEvalTime = tf.float()
				case 5:
					t.ExecQueueTime = tf.float()
				case 6:
					t.ExecTotalTime = tf.float()
				}
				return nil
			})
		}
		return nil
	})
	return st, err
}
