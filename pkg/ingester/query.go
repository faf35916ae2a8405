package ingester

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
)

const (
	// queryStreamBatchSeries is how many series one message of QueryStream
	// or QueryStreamChunks carries at most, as in Cortex.
	queryStreamBatchSeries = 128
	// queryStreamBatchBytes cuts a batch earlier when its series are
	// large, keeping messages well under gRPC's size limits.
	queryStreamBatchBytes = 1 << 20
)

// streamQuery opens what a streaming query reads: the caller's TSDB (nil,
// with a nil error, when the tenant has none here; release it when done),
// the matchers and the time range.
func (i *Ingester) streamQuery(ctx context.Context, req *prompb.Query) (u *userTSDB, release func(), ms []*labels.Matcher, mint, maxt int64, err error) {
	done, err := i.admitQuery()
	if err != nil {
		return nil, nil, nil, 0, 0, err
	}
	u, releaseTSDB, err := i.forRead(ctx)
	if err != nil {
		done()
		return nil, nil, nil, 0, 0, err
	}
	release = func() { releaseTSDB(); done() }
	if u == nil {
		release()
		return nil, nil, nil, 0, 0, nil
	}
	if ms, err = i.fromPromMatchers(req.Matchers); err != nil {
		release()
		return nil, nil, nil, 0, 0, err
	}
	mint, maxt = timeRange(req.StartTimestampMs, req.EndTimestampMs)
	if err = i.checkRegexLimits(ctx, u, ms, mint, maxt); err != nil {
		release()
		return nil, nil, nil, 0, 0, err
	}
	return u, release, ms, mint, maxt, nil
}

// QueryStream sends the float samples and native histograms of every series
// matching the query's matchers in [start, end], sorted by labels, in
// batches of up to 128 series.
func (i *Ingester) QueryStream(req *prompb.Query, stream client.QueryStreamServer) error {
	ctx := stream.Context()
	u, release, ms, mint, maxt, err := i.streamQuery(ctx, req)
	if err != nil || u == nil {
		return err
	}
	defer release()
	q, err := u.db.Querier(mint, maxt)
	if err != nil {
		return status.Errorf(codes.Internal, "querying the TSDB: %v", err)
	}
	defer q.Close()

	var (
		b = newSeriesBatcher(func(batch []*prompb.TimeSeries) error {
			return stream.Send(&prompb.QueryResult{Timeseries: batch})
		})
		it                    chunkenc.Iterator
		numSeries, numSamples int
	)
	ms, lazy := i.splitMatchers(ms)
	queried := i.queried.recorder(u.queried)
	ss := querysharding.Select(ctx, q, true, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	for ss.Next() {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		s := ss.At()
		if !matchesAll(s.Labels(), lazy) {
			continue
		}
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
		queried.add(s.Labels())
		if err := b.add(ts, ts.Size()); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return selectError(ctx, err)
	}
	if err := b.flush(); err != nil {
		return err
	}
	queried.record()
	i.metrics.queriedSeries.Observe(float64(numSeries))
	i.metrics.queriedSamples.Observe(float64(numSamples))
	return nil
}

// QueryStreamChunks sends the encoded chunks of every series matching the
// query's matchers that overlap [start, end], sorted by labels, in batches
// of up to 128 series. Chunks are sent whole, as the TSDB holds them, so
// they may hold samples outside the range, unless
// -ingester.disable-chunk-trimming is false. The samples metric counts the
// samples of the chunks sent.
func (i *Ingester) QueryStreamChunks(req *prompb.Query, stream client.QueryStreamChunksServer) error {
	ctx := stream.Context()
	u, release, ms, mint, maxt, err := i.streamQuery(ctx, req)
	if err != nil || u == nil {
		return err
	}
	defer release()
	// The chunk querier copies the head's open chunk, which appends keep
	// writing to, before handing it out (Prometheus's ChunkReaderWithCopy);
	// every other chunk is immutable. The chunks may point into
	// memory-mapped files, so all are sent before the querier is closed.
	q, err := u.db.ChunkQuerier(mint, maxt)
	if err != nil {
		return status.Errorf(codes.Internal, "querying the TSDB: %v", err)
	}
	defer q.Close()

	var (
		b = newSeriesBatcher(func(batch []*prompb.ChunkedSeries) error {
			return stream.Send(&prompb.ChunkedReadResponse{ChunkedSeries: batch})
		})
		it                    chunks.Iterator
		numSeries, numSamples int
	)
	// Trimming re-encodes every chunk reaching outside the range, which
	// the head's open chunk always does (its end is not known yet): by
	// default (-ingester.disable-chunk-trimming) the querier trims instead.
	hints := &storage.SelectHints{Start: mint, End: maxt, DisableTrimming: i.cfg.DisableChunkTrimming}
	ms, lazy := i.splitMatchers(ms)
	queried := i.queried.recorder(u.queried)
	ss := querysharding.SelectChunks(ctx, q, true, hints, ms...)
	for ss.Next() {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		s := ss.At()
		if !matchesAll(s.Labels(), lazy) {
			continue
		}
		cs := &prompb.ChunkedSeries{Labels: prompb.FromLabels(s.Labels(), nil)}
		it = s.Iterator(it)
		n, err := appendChunks(cs, it)
		if err != nil {
			return status.Errorf(codes.Internal, "reading series %s: %v", s.Labels(), err)
		}
		if len(cs.Chunks) == 0 {
			continue
		}
		numSeries++
		numSamples += n
		queried.add(s.Labels())
		if err := b.add(cs, cs.Size()); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return selectError(ctx, err)
	}
	if err := b.flush(); err != nil {
		return err
	}
	queried.record()
	i.metrics.queriedSeries.Observe(float64(numSeries))
	i.metrics.queriedSamples.Observe(float64(numSamples))
	return nil
}

// appendChunks adds the chunks of it to cs and returns how many samples
// they hold.
func appendChunks(cs *prompb.ChunkedSeries, it chunks.Iterator) (int, error) {
	var n int
	for it.Next() {
		meta := it.At()
		enc, ok := client.WireEncoding(meta.Chunk.Encoding())
		if !ok {
			return 0, fmt.Errorf("chunk encoding %s cannot be sent", meta.Chunk.Encoding())
		}
		cs.Chunks = append(cs.Chunks, prompb.Chunk{
			MinTimeMs: meta.MinTime,
			MaxTimeMs: meta.MaxTime,
			Type:      enc,
			Data:      meta.Chunk.Bytes(),
		})
		n += meta.Chunk.NumSamples()
	}
	return n, it.Err()
}

// seriesBatcher gathers series into stream messages of at most
// queryStreamBatchSeries series, cut earlier at queryStreamBatchBytes.
type seriesBatcher[T any] struct {
	batch []T
	bytes int
	send  func([]T) error
}

func newSeriesBatcher[T any](send func([]T) error) *seriesBatcher[T] {
	return &seriesBatcher[T]{batch: make([]T, 0, queryStreamBatchSeries), send: send}
}

// add appends a series of size bytes, sending the batch when it is full.
func (b *seriesBatcher[T]) add(s T, size int) error {
	b.batch = append(b.batch, s)
	b.bytes += size
	if len(b.batch) >= queryStreamBatchSeries || b.bytes >= queryStreamBatchBytes {
		return b.flush()
	}
	return nil
}

// flush sends what is gathered. A sent batch is not reused: the message
// may still be referenced by the stream.
func (b *seriesBatcher[T]) flush() error {
	if len(b.batch) == 0 {
		return nil
	}
	if err := b.send(b.batch); err != nil {
		return err
	}
	b.batch, b.bytes = make([]T, 0, queryStreamBatchSeries), 0
	return nil
}

// LabelNames returns the sorted label names of the series matching any of
// the matcher sets (every series when there is none) in the time range.
func (i *Ingester) LabelNames(ctx context.Context, req *client.LabelNamesRequest) (*client.StringsResponse, error) {
	return i.labelStrings(ctx, req.StartMs, req.EndMs, req.MatcherSets, req.Limit, client.LabelNamesOf(ctx))
}

// LabelValues returns the sorted values of a label among the series
// matching any of the matcher sets in the time range.
func (i *Ingester) LabelValues(ctx context.Context, req *client.LabelValuesRequest) (*client.StringsResponse, error) {
	if req.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "label values: no label name")
	}
	return i.labelStrings(ctx, req.StartMs, req.EndMs, req.MatcherSets, req.Limit, client.LabelValuesOf(ctx, req.Name))
}

func (i *Ingester) labelStrings(ctx context.Context, start, end int64, sets []*client.MatcherSet, limit int64, get client.LabelStringsFunc) (*client.StringsResponse, error) {
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
	if u == nil {
		return &client.StringsResponse{}, nil
	}
	matcherSets, err := i.fromMatcherSets(sets)
	if err != nil {
		return nil, err
	}
	mint, maxt := timeRange(start, end)
	q, err := u.db.Querier(mint, maxt)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "querying the TSDB: %v", err)
	}
	defer q.Close()
	out, err := client.CollectLabelStrings(q, matcherSets, limit, get)
	if err != nil {
		return nil, selectError(ctx, err)
	}
	return &client.StringsResponse{Values: validUTF8Strings(out)}, nil
}

// Series returns the label sets of the series matching any of the matcher
// sets (every series when there is none) in the time range, sorted.
func (i *Ingester) Series(ctx context.Context, req *client.SeriesRequest) (*client.SeriesResponse, error) {
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
	if u == nil {
		return &client.SeriesResponse{}, nil
	}
	matcherSets, err := i.fromMatcherSets(req.MatcherSets)
	if err != nil {
		return nil, err
	}
	if len(matcherSets) == 0 {
		matcherSets = [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".*")}}
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
			set.Labels = append(set.Labels, &client.Label{Name: validUTF8(l.Name), Value: validUTF8(l.Value)})
		})
		resp.Series = append(resp.Series, set)
	}
	if err := ss.Err(); err != nil {
		return nil, selectError(ctx, err)
	}
	return resp, nil
}

// Metadata returns the metadata of each metric family the tenant sent
// within -ingester.metadata-retain-period, sorted by name. The request's
// limit and limit_per_metric apply only with
// -ingester.skip-metadata-limits=false: by default the querier applies them
// to the merged answer.
func (i *Ingester) Metadata(ctx context.Context, req *client.MetadataRequest) (*client.MetadataResponse, error) {
	u, release, err := i.forRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if u == nil {
		return &client.MetadataResponse{}, nil
	}
	limit, perMetric := 0, 0
	if !i.cfg.Limiter.SkipMetadataLimits {
		limit, perMetric = int(req.Limit), int(req.LimitPerMetric)
	}
	return &client.MetadataResponse{Metadata: u.metadata.list(req.Metric, limit, perMetric)}, nil
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

// fromPromMatchers decodes a QueryStream call's matchers, through the
// matchers cache (-ingester.matchers-cache-max-items); none selects every
// series.
func (i *Ingester) fromPromMatchers(in []*prompb.LabelMatcher) ([]*labels.Matcher, error) {
	out, err := i.matchers.FromProm(in)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(out) == 0 {
		out = append(out, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".*"))
	}
	return out, nil
}

func (i *Ingester) fromMatcherSets(sets []*client.MatcherSet) ([][]*labels.Matcher, error) {
	out, err := i.matchers.FromMatcherSets(sets)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return out, nil
}

// validUTF8 replaces what is not UTF-8 in s with U+FFFD. A series stored
// before the ingester validated labels may hold such bytes, which protobuf
// refuses to encode in a string field: one would fail the whole answer.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// validUTF8Strings applies validUTF8 to sorted, distinct strings, keeping
// them sorted and distinct.
func validUTF8Strings(ss []string) []string {
	changed := false
	for i, s := range ss {
		if v := validUTF8(s); v != s {
			ss[i], changed = v, true
		}
	}
	if changed {
		slices.Sort(ss)
		ss = slices.Compact(ss)
	}
	return ss
}
