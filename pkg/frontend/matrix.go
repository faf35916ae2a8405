package frontend

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
)

type partResponse struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string       `json:"resultType"`
		Result     []partSeries `json:"result"`
		Stats      *partStats   `json:"stats"`
	} `json:"data"`
	Warnings []string `json:"warnings"`
	Infos    []string `json:"infos"`
}

type partSeries struct {
	Metric     json.RawMessage   `json:"metric"`
	Values     []json.RawMessage `json:"values"`
	Histograms []json.RawMessage `json:"histograms"`
}

type mergedSeries struct {
	labels     labels.Labels
	metric     json.RawMessage
	values     []json.RawMessage
	histograms []json.RawMessage
}

// mergeMatrices joins the matrices of consecutive parts: each series' points
// in time order, the series sorted by labels as the engine sorts them.
func mergeMatrices(resps []*frontendpb.HTTPResponse) ([]byte, error) {
	bodies := make([]trimmedBody, len(resps))
	for i, r := range resps {
		bodies[i] = trimmedBody{body: r.Body}
	}
	return mergeBodies(bodies)
}

// trimmedBody is a matrix answer of which, when trim is set, only the
// points in [start, end] are kept.
type trimmedBody struct {
	body       []byte
	start, end int64
	trim       bool
}

func mergeBodies(bodies []trimmedBody) ([]byte, error) {
	m, err := decodeMatrices(bodies)
	if err != nil {
		return nil, err
	}
	return m.encode(math.MaxInt64)
}

// matrix is the series of several matrix answers joined, sorted by labels
// as the engine sorts them, each series' points in time order.
type matrix struct {
	series          []*mergedSeries
	warnings, infos []string
	// stats are the parts' samples statistics joined; nil when no part
	// had any.
	stats *sampleStats
}

func decodeMatrices(bodies []trimmedBody) (*matrix, error) {
	bySeries := map[string]*mergedSeries{}
	var warnings, infos []string
	var stats *sampleStats
	for _, tb := range bodies {
		var pr partResponse
		if err := json.Unmarshal(tb.body, &pr); err != nil {
			return nil, fmt.Errorf("decoding a querier's answer: %w", err)
		}
		if pr.Status != "success" || pr.Data.ResultType != "matrix" {
			return nil, fmt.Errorf("unexpected answer to a part of a range query: status %q, result type %q", pr.Status, pr.Data.ResultType)
		}
		for _, s := range pr.Data.Result {
			key := string(s.Metric)
			m, ok := bySeries[key]
			if !ok {
				var lm map[string]string
				if err := json.Unmarshal(s.Metric, &lm); err != nil {
					return nil, fmt.Errorf("decoding a series' labels: %w", err)
				}
				m = &mergedSeries{labels: labels.FromMap(lm), metric: s.Metric}
				bySeries[key] = m
			}
			values, histograms := s.Values, s.Histograms
			if tb.trim {
				var err error
				if values, err = pointsWithin(values, tb.start, tb.end); err != nil {
					return nil, err
				}
				if histograms, err = pointsWithin(histograms, tb.start, tb.end); err != nil {
					return nil, err
				}
			}
			m.values = append(m.values, values...)
			m.histograms = append(m.histograms, histograms...)
		}
		warnings = appendNew(warnings, pr.Warnings)
		infos = appendNew(infos, pr.Infos)
		if pr.Data.Stats != nil {
			if stats == nil {
				stats = &sampleStats{}
			}
			stats.add(pr.Data.Stats, tb.start, tb.end, tb.trim)
		}
	}
	all := make([]*mergedSeries, 0, len(bySeries))
	for _, m := range bySeries {
		if len(m.values) > 0 || len(m.histograms) > 0 {
			all = append(all, m)
		}
	}
	sort.Slice(all, func(i, j int) bool { return labels.Compare(all[i].labels, all[j].labels) < 0 })
	return &matrix{series: all, warnings: warnings, infos: infos, stats: stats}, nil
}

// encode writes the matrix as the querier does, keeping only the points
// at or before until.
func (mx *matrix) encode(until int64) ([]byte, error) {
	b := make([]byte, 0, 1024)
	b = append(b, `{"status":"success","data":{"resultType":"matrix","result":[`...)
	first := true
	for _, m := range mx.series {
		values, histograms := m.values, m.histograms
		if until != math.MaxInt64 {
			var err error
			if values, err = pointsWithin(values, math.MinInt64, until); err != nil {
				return nil, err
			}
			if histograms, err = pointsWithin(histograms, math.MinInt64, until); err != nil {
				return nil, err
			}
			if len(values) == 0 && len(histograms) == 0 {
				continue
			}
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"metric":`...)
		b = append(b, m.metric...)
		b = appendRaw(b, "values", values)
		b = appendRaw(b, "histograms", histograms)
		b = append(b, '}')
	}
	b = append(b, ']')
	if mx.stats != nil {
		b = mx.stats.appendJSON(b, until)
	}
	b = append(b, '}')
	for _, extra := range []struct {
		name string
		v    []string
	}{{"warnings", mx.warnings}, {"infos", mx.infos}} {
		if len(extra.v) > 0 {
			raw, err := json.Marshal(extra.v)
			if err != nil {
				return nil, err
			}
			b = append(b, `,"`+extra.name+`":`...)
			b = append(b, raw...)
		}
	}
	return append(b, '}'), nil
}

// pointsWithin returns the points of a series within [start, end]; they
// are in time order.
func pointsWithin(points []json.RawMessage, start, end int64) ([]json.RawMessage, error) {
	lo := len(points)
	for i, p := range points {
		t, err := pointTimeMs(p)
		if err != nil {
			return nil, err
		}
		if t >= start {
			lo = i
			break
		}
	}
	hi := lo
	for ; hi < len(points); hi++ {
		t, err := pointTimeMs(points[hi])
		if err != nil {
			return nil, err
		}
		if t > end {
			break
		}
	}
	return points[lo:hi], nil
}

func appendRaw(b []byte, name string, vs []json.RawMessage) []byte {
	if len(vs) == 0 {
		return b
	}
	b = append(b, `,"`+name+`":[`...)
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	return append(b, ']')
}

func appendNew(dst, src []string) []string {
	for _, s := range src {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}
