package ingester

import (
	"context"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

var _ client.ExemplarQuerier = (*Ingester)(nil)

// QueryExemplars answers the exemplars the caller's TSDB holds for the
// series matching any of the request's matcher sets, within the widest
// time range of its queries (Prometheus's exemplar API takes one range
// for all its selectors), as the TSDB's exemplar querier returns them.
func (i *Ingester) QueryExemplars(ctx context.Context, req *prompb.ReadRequest) (*prompb.QueryResult, error) {
	done, err := i.admitQuery()
	if err != nil {
		return nil, err
	}
	defer done()
	u, release, err := i.forRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if u == nil || len(req.Queries) == 0 {
		return &prompb.QueryResult{}, nil
	}
	start, end := int64(math.MaxInt64), int64(math.MinInt64)
	sets := make([][]*labels.Matcher, 0, len(req.Queries))
	for _, q := range req.Queries {
		ms, err := i.fromPromMatchers(q.Matchers)
		if err != nil {
			return nil, err
		}
		sets = append(sets, ms)
		mint, maxt := timeRange(q.StartTimestampMs, q.EndTimestampMs)
		start, end = min(start, mint), max(end, maxt)
	}
	eq, err := u.db.ExemplarQuerier(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "querying the exemplar storage: %v", err)
	}
	results, err := eq.Select(start, end, sets...)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "querying the exemplar storage: %v", err)
	}
	out := &prompb.QueryResult{Timeseries: make([]*prompb.TimeSeries, 0, len(results))}
	for _, r := range results {
		ts := &prompb.TimeSeries{Labels: prompb.FromLabels(r.SeriesLabels, nil), Exemplars: make([]prompb.Exemplar, 0, len(r.Exemplars))}
		for _, e := range r.Exemplars {
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: prompb.FromLabels(e.Labels, nil), Value: e.Value, Timestamp: e.Ts})
		}
		out.Timeseries = append(out.Timeseries, ts)
	}
	return out, nil
}
