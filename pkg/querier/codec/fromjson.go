package codec

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

// FromJSON appends to dst a successful answer in Prometheus' JSON in
// Cortex's protobuf encoding, as the query-frontend answers a ruler that
// asks for it. Native histogram samples keep only their buckets, as in
// JSON: the JSON answers the frontend merges cannot carry them whole.
func FromJSON(dst, body []byte) ([]byte, error) {
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		// Warnings and Infos, in order.
		Warnings []string `json:"warnings"`
		Infos    []string `json:"infos"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decoding a query answer: %w", err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("only successful answers are encoded in protobuf, got status %q", r.Status)
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
		Stats      *statsJSON      `json:"stats"`
	}
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return nil, fmt.Errorf("decoding a query answer's data: %w", err)
	}
	var result []byte
	switch d.ResultType {
	case "vector":
		var samples []struct {
			Metric    map[string]string   `json:"metric"`
			Value     *[2]json.RawMessage `json:"value"`
			Histogram *[2]json.RawMessage `json:"histogram"`
		}
		if err := json.Unmarshal(d.Result, &samples); err != nil {
			return nil, fmt.Errorf("decoding a vector: %w", err)
		}
		var vec, sample []byte
		for _, s := range samples {
			sample = appendLabels(sample[:0], labels.FromMap(s.Metric))
			switch {
			case s.Value != nil:
				t, err := parseTimestamp(string(s.Value[0]))
				if err != nil {
					return nil, err
				}
				v, err := parseValue(s.Value[1])
				if err != nil {
					return nil, err
				}
				sample = protowire.AppendTag(sample, 2, protowire.BytesType)
				sample = protowire.AppendVarint(sample, uint64(sampleSize(t, v)))
				sample = appendSample(sample, t, v)
			case s.Histogram != nil:
				hp, err := histogramPairFromJSON(*s.Histogram)
				if err != nil {
					return nil, err
				}
				sample = protowire.AppendTag(sample, 3, protowire.BytesType)
				sample = protowire.AppendBytes(sample, hp)
			}
			vec = protowire.AppendTag(vec, 1, protowire.BytesType)
			vec = protowire.AppendBytes(vec, sample)
		}
		result = protowire.AppendTag(nil, 1, protowire.BytesType)
		result = protowire.AppendBytes(result, vec)
	default:
		// Matrices are never asked by the ruler; scalars and strings
		// travel as JSON in Cortex's encoding too.
		result = protowire.AppendTag(nil, 2, protowire.BytesType)
		result = protowire.AppendBytes(result, r.Data)
	}
	var data []byte
	data = protowire.AppendTag(data, 1, protowire.BytesType)
	data = protowire.AppendString(data, d.ResultType)
	data = protowire.AppendTag(data, 2, protowire.BytesType)
	data = protowire.AppendBytes(data, result)
	if d.Stats != nil {
		data = protowire.AppendTag(data, 3, protowire.BytesType)
		data = protowire.AppendBytes(data, appendStats(nil, *d.Stats))
	}
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, r.Status)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = protowire.AppendBytes(dst, data)
	for _, w := range r.Warnings {
		dst = protowire.AppendTag(dst, 6, protowire.BytesType)
		dst = protowire.AppendString(dst, w)
	}
	for _, i := range r.Infos {
		dst = protowire.AppendTag(dst, 7, protowire.BytesType)
		dst = protowire.AppendString(dst, i)
	}
	return dst, nil
}

// parseTimestamp reads seconds as Prometheus' JSON writes them.
func parseTimestamp(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("timestamp %q: %w", s, err)
	}
	return int64(math.Round(f * 1000)), nil
}

// parseValue reads a quoted value ("1.5", "NaN", "+Inf").
func parseValue(raw json.RawMessage) (float64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("value %s: %w", raw, err)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q: %w", s, err)
	}
	return f, nil
}

// histogramPairFromJSON reads [t,{"count":..,"sum":..,"buckets":[...]}]
// into a SampleHistogramPair.
func histogramPairFromJSON(raw [2]json.RawMessage) ([]byte, error) {
	t, err := parseTimestamp(string(raw[0]))
	if err != nil {
		return nil, err
	}
	var h struct {
		Count   json.RawMessage      `json:"count"`
		Sum     json.RawMessage      `json:"sum"`
		Buckets [][4]json.RawMessage `json:"buckets"`
	}
	if err := json.Unmarshal(raw[1], &h); err != nil {
		return nil, fmt.Errorf("histogram: %w", err)
	}
	floats := func(ns ...json.RawMessage) ([]float64, error) {
		out := make([]float64, len(ns))
		for i, n := range ns {
			f, err := parseValue(n)
			if err != nil {
				return nil, fmt.Errorf("histogram: %w", err)
			}
			out[i] = f
		}
		return out, nil
	}
	cs, err := floats(h.Count, h.Sum)
	if err != nil {
		return nil, err
	}
	var sh []byte
	sh = protowire.AppendTag(sh, 1, protowire.Fixed64Type)
	sh = protowire.AppendFixed64(sh, math.Float64bits(cs[0]))
	sh = protowire.AppendTag(sh, 2, protowire.Fixed64Type)
	sh = protowire.AppendFixed64(sh, math.Float64bits(cs[1]))
	for _, bk := range h.Buckets {
		boundaries, err := strconv.ParseInt(string(bk[0]), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("histogram bucket boundaries %q: %w", bk[0], err)
		}
		fs, err := floats(bk[1], bk[2], bk[3])
		if err != nil {
			return nil, err
		}
		var m []byte
		if boundaries != 0 {
			m = protowire.AppendTag(m, 1, protowire.VarintType)
			m = protowire.AppendVarint(m, uint64(boundaries))
		}
		for i, f := range fs {
			m = protowire.AppendTag(m, protowire.Number(2+i), protowire.Fixed64Type)
			m = protowire.AppendFixed64(m, math.Float64bits(f))
		}
		sh = protowire.AppendTag(sh, 3, protowire.BytesType)
		sh = protowire.AppendBytes(sh, m)
	}
	var pair []byte
	if t != 0 {
		pair = protowire.AppendTag(pair, 1, protowire.VarintType)
		pair = protowire.AppendVarint(pair, uint64(t))
	}
	pair = protowire.AppendTag(pair, 2, protowire.BytesType)
	return protowire.AppendBytes(pair, sh), nil
}
