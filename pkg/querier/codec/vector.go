package codec

import (
	"encoding/json"
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// DecodeInstant decodes an instant query's answer in Cortex's protobuf
// encoding into the vector or scalar rules evaluate, with its warnings.
// A native histogram sample must come whole (rawHistogram, as the
// querier writes it for MIMECortexQuery): one known by its buckets only
// cannot be evaluated exactly.
func DecodeInstant(body []byte) (parser.Value, []string, error) {
	r, err := parseResponse(body)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding a protobuf query answer: %w", err)
	}
	if r.status != "success" {
		return nil, r.warnings, fmt.Errorf("the query failed: %s: %s", r.errorType, r.errMsg)
	}
	d, err := parseData(r.data)
	if err != nil {
		return nil, r.warnings, fmt.Errorf("decoding a protobuf query answer's data: %w", err)
	}
	switch d.resultType {
	case "scalar":
		var s struct {
			Result model.Scalar `json:"result"`
		}
		if err := json.Unmarshal(d.rawBytes, &s); err != nil {
			return nil, r.warnings, fmt.Errorf("decoding the scalar: %w", err)
		}
		return promql.Scalar{T: int64(s.Result.Timestamp), V: float64(s.Result.Value)}, r.warnings, nil
	case "vector":
		v, err := decodeVector(d.vector)
		return v, r.warnings, err
	default:
		return nil, r.warnings, fmt.Errorf("rule queries must return a vector or a scalar, got %q", d.resultType)
	}
}

func decodeVector(b []byte) (promql.Vector, error) {
	var (
		v  promql.Vector
		lb labels.ScratchBuilder
	)
	err := eachField(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		lb.Reset()
		var s promql.Sample
		var floatSample, sparseHistogram bool
		err := eachField(f.bytes, func(sf field) error {
			switch sf.num {
			case 1:
				var name, value []byte
				if err := eachField(sf.bytes, func(l field) error {
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
				lb.Add(string(name), string(value))
			case 2:
				floatSample = true
				return eachField(sf.bytes, func(p field) error {
					switch p.num {
					case 1:
						s.F = p.float()
					case 2:
						s.T = int64(p.u)
					}
					return nil
				})
			case 3:
				sparseHistogram = true
			case 4:
				var hp prompb.Histogram
				if err := hp.Unmarshal(sf.bytes); err != nil {
					return fmt.Errorf("native histogram: %w", err)
				}
				s.T, s.H = hp.Timestamp, hp.ToFloatHistogram()
			}
			return nil
		})
		if err != nil {
			return err
		}
		lb.Sort()
		s.Metric = lb.Labels()
		if s.H == nil && !floatSample {
			if sparseHistogram {
				return fmt.Errorf("the native histogram sample of %s came as its buckets only (the answer of a sharded query, or of one not asked with %s), which cannot be evaluated exactly", s.Metric, MIMECortexQuery)
			}
			return fmt.Errorf("the sample of %s has no value", s.Metric)
		}
		v = append(v, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = promql.Vector{}
	}
	return v, nil
}
