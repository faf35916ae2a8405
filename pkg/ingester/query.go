package ingester

import (
	"context"
	"errors"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

const (
	// queryStreamBatchSeries is how many series one QueryResult carries at
	// most, as in Cortex.
	queryStreamBatchSeries = 128
	// queryStreamBatchBytes cuts a batch earlier when its series are
	// large, keeping messages well under gRPC's size limits.
	queryStreamBatchBytes = 1 << 20
)

// QueryStream sends the float samples and native histograms of every series
// matching the query's matchers in [start, end], sorted by labels, in
// batches of up to 128 series.
func (i *Ingester) QueryStream(req *prompb.Query, stream client.QueryStreamServer) error {
	ctx := stream.Context()
	u, release, err := i.forRead(ctx)
	if err != nil {
		return err
	}
	defer release()
	if u == nil {
		return nil
	}
	ms, err := fromPromMatchers(req.Matchers)
	if err != nil {
		return err
	}
	mint, maxt := timeRange(req.StartTimestampMs, req.EndTimestampMs)
	q, err := u.db.Querier(mint, maxt)
	if err != nil {
		return status.Errorf(codes.Internal, "querying the TSDB: %v", err)
	}
	defer q.Close()

	var (
		batch                 = make([]*prompb.TimeSeries, 0, queryStreamBatchSeries)
		batchBytes            int
		it                    chunkenc.Iterator
		numSeries, numSamples int
	)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := stream.Send(&prompb.QueryResult{Timeseries: batch}); err != nil {
			return err
		}
		batch, batchBytes = make([]*prompb.TimeSeries, 0, queryStreamBatchSeries), 0
		return nil
	}
	ss := q.Select(ctx, true, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	for ss.Next() {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		s := ss.At()
		ts := &prompb.TimeSeries{Labels: prompb.FromLabels(s.Labels(), nil)}
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t, Value: v})
			case chunkenc.ValHistogram:
				t, h := it.AtHistogram(nil)
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(t, h))
			case chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(t, fh))
			}
		}
		if err := it.Err(); err != nil {
			return status.Errorf(codes.Internal, "reading series %s: %v", s.Labels(), err)
		}
		n := len(ts.Samples) + len(ts.Histograms)
		if n == 0 {
			continue
		}
		numSeries++
		numSamples += n
		batch = append(batch, ts)
		batchBytes += ts.Size()
		if len(batch) >= queryStreamBatchSeries || batchBytes >= queryStreamBatchBytes {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if err := ss.Err(); err != nil {
		return selectError(ctx, err)
	}
	if err := send(); err != nil {
		return err
	}
	i.metrics.queriedSeries.Observe(float64(numSeries))
	i.metrics.queriedSamples.Observe(float64(numSamples))
	return nil
}

// LabelNames returns the sorted label names of the series matching any of
// the matcher sets (every series when there is none) in the time range.
func (i *Ingester) LabelNames(ctx context.Context, req *client.LabelNamesRequest) (*client.StringsResponse, error) {
	return i.labelStrings(ctx, req.StartMs, req.EndMs, req.MatcherSets, req.Limit,
		func(q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, error) {
			names, _, err := q.LabelNames(ctx, hints, ms...)
			return names, err
		})
}

// LabelValues returns the sorted values of a label among the series
// matching any of the matcher sets in the time range.
func (i *Ingester) LabelValues(ctx context.Context, req *client.LabelValuesRequest) (*client.StringsResponse, error) {
	if req.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "label values: no label name")
	}
	return i.labelStrings(ctx, req.StartMs, req.EndMs, req.MatcherSets, req.Limit,
		func(q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, error) {
			values, _, err := q.LabelValues(ctx, req.Name, hints, ms...)
			return values, err
		})
}

func (i *Ingester) labelStrings(ctx context.Context, start, end int64, sets []*client.MatcherSet, limit int64,
	get func(storage.Querier, *storage.LabelHints, []*labels.Matcher) ([]string, error),
) (*client.StringsResponse, error) {
	u, release, err := i.forRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if u == nil {
		return &client.StringsResponse{}, nil
	}
	matcherSets, err := fromMatcherSets(sets)
	if err != nil {
		return nil, err
	}
	mint, maxt := timeRange(start, end)
	q, err := u.db.Querier(mint, maxt)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "querying the TSDB: %v", err)
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: int(max(limit, 0))}
	if len(matcherSets) == 0 {
		matcherSets = [][]*labels.Matcher{nil}
	}
	var out []string
	for _, ms := range matcherSets {
		vals, err := get(q, hints, ms)
		if err != nil {
			return nil, selectError(ctx, err)
		}
		out = append(out, vals...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if limit > 0 && int64(len(out)) > limit {
		out = out[:limit]
	}
	return &client.StringsResponse{Values: out}, nil
}

// Series returns the label sets of the series matching any of the matcher
// sets (every series when there is none) in the time range, sorted.
func (i *Ingester) Series(ctx context.Context, req *client.SeriesRequest) (*client.SeriesResponse, error) {
	u, release, err := i.forRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if u == nil {
		return &client.SeriesResponse{}, nil
	}
	matcherSets, err := fromMatcherSets(req.MatcherSets)
	if err != nil {
		return nil, err
	}
	if len(matcherSets) == 0 {
		matcherSets = [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".*")}}
	}
	mint, maxt := timeRange(req.StartMs, req.EndMs)
	q, err := u.db.Querier(mint, maxt)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "querying the TSDB: %v", err)
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: mint, End: maxt, Func: "series", Limit: int(max(req.Limit, 0))}
	sets := make([]storage.SeriesSet, 0, len(matcherSets))
	for _, ms := range matcherSets {
		sets = append(sets, q.Select(ctx, true, hints, ms...))
	}
	// The merge de-duplicates series matched by several sets.
	ss := storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	resp := &client.SeriesResponse{}
	for ss.Next() {
		if req.Limit > 0 && int64(len(resp.Series)) >= req.Limit {
			break
		}
		ls := ss.At().Labels()
		set := &client.LabelSet{Labels: make([]*client.Label, 0, ls.Len())}
		ls.Range(func(l labels.Label) {
			set.Labels = append(set.Labels, &client.Label{Name: l.Name, Value: l.Value})
		})
		resp.Series = append(resp.Series, set)
	}
	if err := ss.Err(); err != nil {
		return nil, selectError(ctx, err)
	}
	return resp, nil
}

// Metadata returns the latest metadata of each metric family the tenant
// sent within -ingester.metadata-retain-period, sorted by name. One entry
// is kept per family, so limit_per_metric never cuts anything.
func (i *Ingester) Metadata(ctx context.Context, req *client.MetadataRequest) (*client.MetadataResponse, error) {
	u, release, err := i.forRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if u == nil {
		return &client.MetadataResponse{}, nil
	}
	return &client.MetadataResponse{Metadata: u.metadata.list(req.Metric, int(req.Limit))}, nil
}

// UserStats returns the tenant's ingestion rate (an exponentially weighted
// moving average, updated every -ingester.rate-update-period) and its
// number of in-memory series.
func (i *Ingester) UserStats(ctx context.Context, _ *client.UserStatsRequest) (*client.UserStatsResponse, error) {
	u, release, err := i.forRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if u == nil {
		return &client.UserStatsResponse{}, nil
	}
	rate := u.rate.rate()
	return &client.UserStatsResponse{
		IngestionRate:    rate,
		ApiIngestionRate: rate,
		NumSeries:        u.db.Head().NumSeries(),
	}, nil
}

// timeRange maps a request's range to the TSDB's; an end of 0 means no end.
func timeRange(start, end int64) (int64, int64) {
	if end == 0 {
		end = math.MaxInt64
	}
	return start, end
}

func selectError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return status.FromContextError(ctxErr).Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Internal, "querying the TSDB: %v", err)
}

// fromPromMatchers decodes a QueryStream call's matchers; none selects every series.
func fromPromMatchers(in []*prompb.LabelMatcher) ([]*labels.Matcher, error) {
	out, err := client.FromPromMatchers(in)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(out) == 0 {
		out = append(out, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".*"))
	}
	return out, nil
}

func fromMatcherSets(sets []*client.MatcherSet) ([][]*labels.Matcher, error) {
	out, err := client.FromMatcherSets(sets)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return out, nil
}
