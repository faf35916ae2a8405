package querier

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/querier/codec"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// Exemplars live in the ingesters' TSDBs only (Cortex does not keep them
// in blocks): a query asks a quorum of the read replication set and merges
// the answers, each exemplar once however many replicas hold it.

// exemplarSeries is one series' exemplars in Prometheus's
// /api/v1/query_exemplars answer.
type exemplarSeries struct {
	SeriesLabels labels.Labels `json:"seriesLabels"`
	Exemplars    []exemplar    `json:"exemplars"`
}

type exemplar struct {
	Labels labels.Labels
	Value  float64
	Ts     int64 // ms
}

// MarshalJSON writes an exemplar as Prometheus's API does: the value as a
// string, the timestamp in seconds with millisecond precision.
func (e exemplar) MarshalJSON() ([]byte, error) {
	ls, err := e.Labels.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+len(ls))
	b = append(b, `{"labels":`...)
	b = append(b, ls...)
	b = append(b, `,"value":`...)
	b = codec.AppendFloat(b, e.Value)
	b = append(b, `,"timestamp":`...)
	b = codec.AppendTimestamp(b, e.Ts)
	return append(b, '}'), nil
}

// exemplars answers /api/v1/query_exemplars for the selectors of expr.
func (q *Querier) exemplars(r *http.Request, start, end int64, expr parser.Expr) apiResult {
	selectors := parser.ExtractSelectors(expr)
	if len(selectors) == 0 {
		return apiResult{}
	}
	ctx, cancel := q.withTimeout(r)
	defer cancel()
	res, err := q.queryable.exemplars(ctx, start, end, selectors)
	if err != nil {
		// Out of time is out of time, whatever the ingesters' calls
		// answered, as for PromQL.
		if ctxErr := contextDone(ctx, "exemplar query"); ctxErr != nil {
			err = ctxErr
		}
		return apiResult{err: apiErrorFor(err)}
	}
	return apiResult{data: res}
}

// exemplars asks the ingesters for the exemplars of the series matching any
// of the matcher sets within [start, end] (ms), and merges the replicas'
// answers: series sorted by labels, each series' exemplars by time.
//
// The tenant's query limits apply as to any read: max_query_lookback moves
// start up, max_query_length refuses a longer range,
// max_fetched_data_bytes_per_query counts every ingester's answer as it
// arrives and max_fetched_series_per_query the series of the merged
// answer. Each ingester answers at most the tenant's max_exemplars
// exemplars (the size of its exemplar storage), which bounds the answer.
func (q *ingesterQueryable) exemplars(ctx context.Context, start, end int64, sets [][]*labels.Matcher) ([]exemplarSeries, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, err
	}
	limits := q.limits.For(id)
	start, end, ok, err := limitTimeRange(limits, q.clock(), start, end, rangeChecks{})
	if err != nil || !ok {
		return []exemplarSeries{}, err
	}
	req := &prompb.ReadRequest{Queries: make([]*prompb.Query, 0, len(sets))}
	for _, ms := range sets {
		req.Queries = append(req.Queries, &prompb.Query{StartTimestampMs: start, EndTimestampMs: end, Matchers: client.ToPromMatchers(ms)})
	}
	var dataBytes atomic.Int64
	answers, err := fanOut(ctx, q, func(ctx context.Context, c *client.Conn) (*prompb.QueryResult, error) {
		res, err := c.QueryExemplars(ctx, req)
		if status.Code(err) == codes.Unimplemented {
			// An ingester of an older version, during a rolling
			// upgrade: it has no exemplars to give.
			return &prompb.QueryResult{}, nil
		}
		if err != nil {
			return nil, err
		}
		if l := limits.MaxFetchedDataBytesPerQuery; l > 0 && dataBytes.Add(int64(res.Size())) > int64(l) {
			return nil, dataBytesLimitError(l)
		}
		if l := limits.MaxFetchedSeriesPerQuery; l > 0 && len(res.Timeseries) > l {
			return nil, fetchedSeriesLimitError(l)
		}
		return res, nil
	})
	if err != nil {
		return nil, err
	}
	merged := mergeExemplars(answers)
	if l := limits.MaxFetchedSeriesPerQuery; l > 0 && len(merged) > l {
		return nil, fetchedSeriesLimitError(l)
	}
	return merged, nil
}

// mergeExemplars joins the replicas' answers: one entry per series, and
// an exemplar that several replicas hold (same time, value and labels)
// once.
func mergeExemplars(answers []*prompb.QueryResult) []exemplarSeries {
	bySeries := map[string]*exemplarSeries{}
	var sb labels.ScratchBuilder
	for _, a := range answers {
		for _, ts := range a.Timeseries {
			if len(ts.Exemplars) == 0 {
				continue
			}
			ls := toLabels(&sb, ts.Labels)
			key := ls.String()
			s, ok := bySeries[key]
			if !ok {
				s = &exemplarSeries{SeriesLabels: ls}
				bySeries[key] = s
			}
			for _, e := range ts.Exemplars {
				s.Exemplars = append(s.Exemplars, exemplar{Labels: toLabels(&sb, e.Labels), Value: e.Value, Ts: e.Timestamp})
			}
		}
	}
	out := make([]exemplarSeries, 0, len(bySeries))
	for _, s := range bySeries {
		slices.SortFunc(s.Exemplars, func(a, b exemplar) int {
			if a.Ts != b.Ts {
				return cmp.Compare(a.Ts, b.Ts)
			}
			if c := cmp.Compare(a.Value, b.Value); c != 0 {
				return c
			}
			return labels.Compare(a.Labels, b.Labels)
		})
		s.Exemplars = slices.CompactFunc(s.Exemplars, func(a, b exemplar) bool {
			return a.Ts == b.Ts && cmp.Compare(a.Value, b.Value) == 0 && labels.Equal(a.Labels, b.Labels)
		})
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b exemplarSeries) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out
}
