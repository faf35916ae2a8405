package querier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// ingesterQueryable reads the series of the tenant in the context from the
// ingesters of the ring. A series is replicated to several ingesters; the
// ring's replication set says how many may fail (replication factor minus
// quorum), and any quorum of answers holds every acknowledged sample.
type ingesterQueryable struct {
	ring   ring.ReadRing
	pool   *client.Pool
	limits *validation.Overrides
	// streamSamples reads samples (QueryStream) instead of chunks, as
	// queriers did before QueryStreamChunks; benchmarks compare the two.
	streamSamples bool
	// minimize asks a quorum of the replication set first, the others only
	// on a failure or after hedgingDelay.
	minimize     bool
	hedgingDelay time.Duration
	// shardLookback, when positive, asks only the tenant's shuffle shard
	// of ingesters (-distributor.ingestion-tenant-shard-size) and those
	// that joined or changed within it (dskit's ShuffleShardWithLookback):
	// -querier.shuffle-sharding-ingesters-lookback-period with
	// -distributor.sharding-strategy=shuffle-sharding.
	shardLookback time.Duration
	now           func() time.Time
	// maxAttempts is -querier.ingester-query-max-attempts.
	maxAttempts int
	// labelNamesWithMatchers is -querier.ingester-label-names-with-matchers:
	// label names with matchers are asked with LabelNames calls, else
	// taken from the matching series (Series calls).
	labelNamesWithMatchers bool
	// extraQueryDelay is -distributor.extra-query-delay: when positive,
	// the ingesters beyond those a quorum needs are asked after it, or as
	// soon as a call fails (Cortex's ReplicationSet.Do).
	extraQueryDelay time.Duration
	// metadataStreaming is -querier.ingester-metadata-streaming: label
	// names, label values and series come over the streaming calls.
	metadataStreaming bool
	// maxRecvMsgSize is -ingester.client.grpc-max-recv-msg-size, the bound
	// of a unary answer, and so of what one ingester's stream of label
	// names, label values or series gathers in all.
	maxRecvMsgSize int
}

// tenantRing is the part of the ring that holds the tenant's series.
func (q *ingesterQueryable) tenantRing(ctx context.Context) ring.ReadRing {
	if q.shardLookback <= 0 {
		return q.ring
	}
	id, err := tenant.ID(ctx)
	if err != nil {
		return q.ring
	}
	size := q.limits.For(id).IngestionTenantShardSize
	if size <= 0 {
		return q.ring
	}
	now := time.Now
	if q.now != nil {
		now = q.now
	}
	return q.ring.ShuffleShardWithLookback(id, size, q.shardLookback, now())
}

// Querier returns a querier over [mint, maxt]. It is cheap: the tenant is
// read from the context of each call.
func (q *ingesterQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &ingesterQuerier{queryable: q, mint: mint, maxt: maxt, chunks: new(atomic.Int64)}, nil
}

// ingesterQuerier serves one query. It counts the series and samples of all
// its Selects, so the per-query limits hold across the selectors of a query,
// and the bytes of every ingester's answer (replicas included), as they
// arrive, for the fetched-bytes limits.
type ingesterQuerier struct {
	queryable  *ingesterQueryable
	mint, maxt int64
	series     atomic.Int64
	samples    atomic.Int64
	chunkBytes atomic.Int64
	dataBytes  atomic.Int64
	chunks     *atomic.Int64 // shared with the store-gateways' querier
}

// limitError is a per-tenant query limit that a query exceeded. It is the
// query's fault, so the API answers 422 as Prometheus does for the engine's
// own -querier.max-samples.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

func seriesLimitError(limit int) error {
	return &limitError{fmt.Sprintf("the query hit the max number of series limit (limit: %d series, set by -querier.max-series-per-query or max_series_per_query): select fewer series or a shorter time range", limit)}
}

func fetchedSeriesLimitError(limit int) error {
	return &limitError{fmt.Sprintf("the query hit the max number of series fetched limit (limit: %d series, set by -querier.max-fetched-series-per-query or max_fetched_series_per_query): select fewer series", limit)}
}

func chunkBytesLimitError(limit int) error {
	return &limitError{fmt.Sprintf("the query hit the aggregated chunk size limit (limit: %d bytes, set by -querier.max-fetched-chunk-bytes-per-query or max_fetched_chunk_bytes_per_query): select fewer series or a shorter time range", limit)}
}

func dataBytesLimitError(limit int) error {
	return &limitError{fmt.Sprintf("the query hit the aggregated data size limit (limit: %d bytes, set by -querier.max-fetched-data-bytes-per-query or max_fetched_data_bytes_per_query): select fewer series or a shorter time range", limit)}
}

func samplesLimitError(limit int) error {
	return &limitError{fmt.Sprintf("the query hit the max number of samples fetched limit (limit: %d samples, set by -querier.max-fetched-samples-per-query or max_fetched_samples_per_query): select fewer series or a shorter time range", limit)}
}

// unavailableError means too few ingesters answered; a retry may succeed,
// so the API answers 503.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// fanOut calls every ingester of the read replication set and returns the
// answers of a quorum. A limitError from any call cancels the others and
// is returned: the merged answer would exceed the limit too.
// With -querier.ingester-query-max-attempts over 1, a read too few
// ingesters answered is tried again, as Cortex retries partial answers.
func fanOut[T any](ctx context.Context, q *ingesterQueryable, call func(context.Context, *client.Conn) (T, error)) ([]T, error) {
	var retries *backoff.Backoff
	for attempt := 1; ; attempt++ {
		results, err := fanOutOnce(ctx, q, call)
		var unavailable *unavailableError
		if err == nil || attempt >= q.maxAttempts || !errors.As(err, &unavailable) {
			return results, err
		}
		if retries == nil {
			retries = backoff.New(ctx, backoff.Config{MinBackoff: retryMinBackoff, MaxBackoff: retryMaxBackoff})
		}
		retries.Wait()
		if ctx.Err() != nil {
			return nil, err
		}
	}
}

// The wait between attempts of a read, Cortex's.
const (
	retryMinBackoff = time.Millisecond
	retryMaxBackoff = 5 * time.Millisecond
)

func fanOutOnce[T any](ctx context.Context, q *ingesterQueryable, call func(context.Context, *client.Conn) (T, error)) ([]T, error) {
	r := q.tenantRing(ctx)
	rs, err := r.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		return nil, &unavailableError{ringError(r, err)}
	}
	cfg := ring.DoUntilQuorumConfig{
		MinimizeRequests: q.minimize,
		HedgingDelay:     q.hedgingDelay,
		// The merged answer would exceed a limit one answer exceeds.
		IsTerminalError: func(err error) bool {
			var le *limitError
			return errors.As(err, &le)
		},
	}
	if !q.minimize {
		cfg.HedgingDelay = 0
	}
	ask := func(ctx context.Context, inst *ring.InstanceDesc) (T, error) {
		var zero T
		c, err := q.pool.Get(inst.Addr)
		if err != nil {
			return zero, fmt.Errorf("ingester %s: %w", inst.Addr, err)
		}
		res, err := call(ctx, c)
		if err != nil {
			var le *limitError
			if errors.As(err, &le) {
				return zero, err
			}
			return zero, fmt.Errorf("ingester %s: %w", inst.Addr, err)
		}
		return res, nil
	}
	if q.extraQueryDelay > 0 {
		cfg.MinimizeRequests, cfg.HedgingDelay = false, 0
		ask = delayExtraRequests(rs, q.extraQueryDelay, ask)
	}
	results, err := ring.DoUntilQuorum(ctx, rs, cfg, ask, func(T) {})
	var le *limitError
	if errors.As(err, &le) {
		return nil, le
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("querying ingesters: %w", ctx.Err())
		}
		switch status.Code(err) {
		case codes.InvalidArgument, codes.ResourceExhausted, codes.FailedPrecondition, codes.OutOfRange:
			// The ingesters refused the request itself: retrying cannot help.
			return nil, fmt.Errorf("querying ingesters: %w", err)
		}
		return nil, &unavailableError{fmt.Errorf("too few ingesters answered (at most %d of %d may fail): %w", rs.MaxErrors, len(rs.Instances), err)}
	}
	return results, nil
}

// delayExtraRequests is Cortex's schedule of -distributor.extra-query-delay
// (its ReplicationSet.Do) around the calls of one read, all started at
// once: the last MaxErrors instances of rs, those a quorum does not need,
// wait for delay first, and each failed call starts one of them at once.
// As in Cortex, a zone-aware replication set asks every instance at once.
func delayExtraRequests[T any](rs ring.ReplicationSet, delay time.Duration, call func(context.Context, *ring.InstanceDesc) (T, error)) func(context.Context, *ring.InstanceDesc) (T, error) {
	if rs.MaxUnavailableZones > 0 || rs.MaxErrors <= 0 || rs.MaxErrors >= len(rs.Instances) {
		return call
	}
	extra := make(map[string]bool, rs.MaxErrors)
	for _, inst := range rs.Instances[len(rs.Instances)-rs.MaxErrors:] {
		extra[inst.Addr] = true
	}
	forceStart := make(chan struct{}, rs.MaxErrors)
	return func(ctx context.Context, inst *ring.InstanceDesc) (T, error) {
		if extra[inst.Addr] {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-ctx.Done():
				var zero T
				return zero, ctx.Err()
			case <-forceStart:
			case <-t.C:
			}
		}
		res, err := call(ctx, inst)
		if err != nil {
			select {
			case forceStart <- struct{}{}:
			default:
			}
		}
		return res, err
	}
}

// timeRange is the range a Select reads: the hints' if given, as the
// Prometheus TSDB querier does.
func (q *ingesterQuerier) timeRange(hints *storage.SelectHints) (int64, int64) {
	if hints != nil {
		return hints.Start, hints.End
	}
	return q.mint, q.maxt
}

// Select returns the series matching matchers, sorted by labels whatever
// sortSeries says, with the replicas of each series merged.
func (q *ingesterQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	userID, err := tenant.ID(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	limits := q.queryable.limits.For(userID)
	mint, maxt := q.timeRange(hints)
	if mint > maxt {
		return storage.EmptySeriesSet()
	}
	if hints != nil && hints.Func == "series" {
		// The series API asks for labels only (Prometheus's convention for
		// this function name): the Series RPC sends no samples.
		return q.selectLabelsOnly(ctx, limits, mint, maxt, hints.Limit, matchers)
	}

	req := &prompb.Query{StartTimestampMs: mint, EndTimestampMs: maxt, Matchers: client.ToPromMatchers(querysharding.WithShard(ctx, matchers))}
	if hints != nil {
		req.Hints = &prompb.ReadHints{StepMs: hints.Step, Func: hints.Func, StartMs: mint, EndMs: maxt, Grouping: hints.Grouping, By: hints.By, RangeMs: hints.Range}
	}
	answers, err := fanOut(ctx, q.queryable, func(ctx context.Context, c *client.Conn) (ingesterAnswer, error) {
		return q.fetch(ctx, c, req, limits)
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	merged := mergeAnswers(answers, mint, maxt)
	if hints != nil && hints.Limit > 0 && len(merged) > hints.Limit {
		merged = merged[:hints.Limit]
	}
	var (
		d       chunkDecoder
		samples int
		series  = make([]storage.Series, len(merged))
	)
	for i, s := range merged {
		samples += s.numSamples(&d)
		series[i] = s
	}
	if err := q.count(limits, len(merged), samples); err != nil {
		return storage.ErrSeriesSet(err)
	}
	return &seriesSet{series: series, i: -1}
}

// count adds a Select's series and samples to the query's and checks the
// tenant's limits.
func (q *ingesterQuerier) count(limits *validation.Limits, series, samples int) error {
	s, n := q.series.Add(int64(series)), q.samples.Add(int64(samples))
	if l := limits.MaxSeriesPerQuery; l > 0 && s > int64(l) {
		return seriesLimitError(l)
	}
	if l := limits.MaxFetchedSeriesPerQuery; l > 0 && s > int64(l) {
		return fetchedSeriesLimitError(l)
	}
	if l := limits.MaxFetchedSamplesPerQry; l > 0 && n > int64(l) {
		return samplesLimitError(l)
	}
	return nil
}

// fetch reads one ingester's answer as chunks, or as samples from an
// ingester that predates QueryStreamChunks (during a rolling upgrade).
func (q *ingesterQuerier) fetch(ctx context.Context, c *client.Conn, req *prompb.Query, limits *validation.Limits) (ingesterAnswer, error) {
	if !q.queryable.streamSamples {
		chunked, err := q.queryStreamChunks(ctx, c, req, limits)
		if status.Code(err) != codes.Unimplemented {
			return ingesterAnswer{chunked: chunked}, err
		}
	}
	sampled, err := q.queryStream(ctx, c, req, limits)
	return ingesterAnswer{sampled: sampled}, err
}

// queryStreamChunks reads one ingester's chunks. It stops early once that
// answer alone breaks a limit: the merged answer holds at least as much.
// Samples are those of whole chunks, as numSamples counts them.
func (q *ingesterQuerier) queryStreamChunks(ctx context.Context, c *client.Conn, req *prompb.Query, limits *validation.Limits) ([]*prompb.ChunkedSeries, error) {
	stream, err := c.QueryStreamChunks(ctx, req)
	if err != nil {
		return nil, err
	}
	var (
		d   chunkDecoder
		out []*prompb.ChunkedSeries
		lim = q.newStreamLimiter(limits)
	)
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var samples, chunks, chunkBytes, dataBytes int
		for _, cs := range res.ChunkedSeries {
			samples += d.numSamples(cs.Chunks)
			chunks += len(cs.Chunks)
			for _, c := range cs.Chunks {
				chunkBytes += len(c.Data)
			}
			dataBytes += cs.Size()
		}
		out = append(out, res.ChunkedSeries...)
		if err := q.addBytes(limits, chunkBytes, dataBytes); err != nil {
			return nil, err
		}
		if err := addChunks(q.chunks, limits, chunks); err != nil {
			return nil, err
		}
		if err := lim.add(len(res.ChunkedSeries), samples); err != nil {
			return nil, err
		}
	}
}

// queryStream reads one ingester's samples. It stops early once that
// answer alone breaks a limit: the merged answer holds at least as much.
func (q *ingesterQuerier) queryStream(ctx context.Context, c *client.Conn, req *prompb.Query, limits *validation.Limits) ([]*prompb.TimeSeries, error) {
	stream, err := c.QueryStream(ctx, req)
	if err != nil {
		return nil, err
	}
	var (
		out []*prompb.TimeSeries
		lim = q.newStreamLimiter(limits)
	)
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var samples, dataBytes int
		for _, ts := range res.Timeseries {
			samples += len(ts.Samples) + len(ts.Histograms)
			dataBytes += ts.Size()
		}
		out = append(out, res.Timeseries...)
		// Samples are not chunks: only the data bytes limit applies.
		if err := q.addBytes(limits, 0, dataBytes); err != nil {
			return nil, err
		}
		if err := lim.add(len(res.Timeseries), samples); err != nil {
			return nil, err
		}
	}
}

// addBytes adds a message of an ingester's answer to the bytes the query
// fetched, every replica's answer counted, and checks the tenant's limits.
func (q *ingesterQuerier) addBytes(limits *validation.Limits, chunkBytes, dataBytes int) error {
	c, d := q.chunkBytes.Add(int64(chunkBytes)), q.dataBytes.Add(int64(dataBytes))
	if l := limits.MaxFetchedChunkBytesPerQuery; l > 0 && c > int64(l) {
		return chunkBytesLimitError(l)
	}
	if l := limits.MaxFetchedDataBytesPerQuery; l > 0 && d > int64(l) {
		return dataBytesLimitError(l)
	}
	return nil
}

// streamLimiter checks one ingester's answer, as it arrives, against the
// limits left by the query's earlier Selects.
type streamLimiter struct {
	limits                      *validation.Limits
	seriesBefore, samplesBefore int64
	series, samples             int64
}

func (q *ingesterQuerier) newStreamLimiter(limits *validation.Limits) *streamLimiter {
	return &streamLimiter{limits: limits, seriesBefore: q.series.Load(), samplesBefore: q.samples.Load()}
}

func (l *streamLimiter) add(series, samples int) error {
	l.series += int64(series)
	l.samples += int64(samples)
	if limit := l.limits.MaxSeriesPerQuery; limit > 0 && l.seriesBefore+l.series > int64(limit) {
		return seriesLimitError(limit)
	}
	if limit := l.limits.MaxFetchedSeriesPerQuery; limit > 0 && l.seriesBefore+l.series > int64(limit) {
		return fetchedSeriesLimitError(limit)
	}
	if limit := l.limits.MaxFetchedSamplesPerQry; limit > 0 && l.samplesBefore+l.samples > int64(limit) {
		return samplesLimitError(limit)
	}
	return nil
}

// selectLabelsOnly answers a Select that needs no samples from the Series RPC.
func (q *ingesterQuerier) selectLabelsOnly(ctx context.Context, limits *validation.Limits, mint, maxt int64, limit int, matchers []*labels.Matcher) storage.SeriesSet {
	req := &client.SeriesRequest{StartMs: mint, EndMs: maxt, MatcherSets: client.ToMatcherSets(matchers), Limit: int64(limit)}
	checkLimits := func(n int) error {
		if l := limits.MaxSeriesPerQuery; l > 0 && q.series.Load()+int64(n) > int64(l) {
			return seriesLimitError(l)
		}
		if l := limits.MaxFetchedSeriesPerQuery; l > 0 && q.series.Load()+int64(n) > int64(l) {
			return fetchedSeriesLimitError(l)
		}
		return nil
	}
	replicas, err := fanOut(ctx, q.queryable, func(ctx context.Context, c *client.Conn) (*client.SeriesResponse, error) {
		if q.queryable.metadataStreaming {
			return seriesStream(ctx, c, req, q.queryable.maxRecvMsgSize, checkLimits)
		}
		resp, err := c.Series(ctx, req)
		if err != nil {
			return nil, err
		}
		if err := checkLimits(len(resp.Series)); err != nil {
			return nil, err
		}
		return resp, nil
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	var (
		b    labels.ScratchBuilder
		sets []labels.Labels
	)
	for _, r := range replicas {
		for _, ls := range r.Series {
			b.Reset()
			for _, l := range ls.Labels {
				b.Add(l.Name, l.Value)
			}
			b.Sort()
			sets = append(sets, b.Labels())
		}
	}
	slices.SortFunc(sets, labels.Compare)
	sets = slices.CompactFunc(sets, labels.Equal)
	if limit > 0 && len(sets) > limit {
		sets = sets[:limit]
	}
	if err := q.count(limits, len(sets), 0); err != nil {
		return storage.ErrSeriesSet(err)
	}
	series := make([]storage.Series, len(sets))
	for i, ls := range sets {
		series[i] = &mergedSeries{lset: ls}
	}
	return &seriesSet{series: series, i: -1}
}

// LabelValues returns the sorted values of the label name among the series
// matching matchers.
func (q *ingesterQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if _, err := tenant.ID(ctx); err != nil {
		return nil, nil, err
	}
	req := &client.LabelValuesRequest{Name: name, StartMs: q.mint, EndMs: q.maxt, MatcherSets: client.ToMatcherSets(matchers), Limit: int64(hintLimit(hints))}
	replicas, err := fanOut(ctx, q.queryable, func(ctx context.Context, c *client.Conn) (*client.StringsResponse, error) {
		if q.queryable.metadataStreaming {
			return receiveStrings(ctx, "label values", q.queryable.maxRecvMsgSize, func(ctx context.Context) (client.StringsStreamClient, error) {
				return c.LabelValuesStream(ctx, req)
			})
		}
		return c.LabelValues(ctx, req)
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings(replicas, hints), nil, nil
}

// LabelNames returns the sorted label names of the series matching matchers.
func (q *ingesterQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if _, err := tenant.ID(ctx); err != nil {
		return nil, nil, err
	}
	if len(matchers) > 0 && !q.queryable.labelNamesWithMatchers {
		return q.labelNamesOfSeries(ctx, hints, matchers)
	}
	req := &client.LabelNamesRequest{StartMs: q.mint, EndMs: q.maxt, MatcherSets: client.ToMatcherSets(matchers), Limit: int64(hintLimit(hints))}
	replicas, err := fanOut(ctx, q.queryable, func(ctx context.Context, c *client.Conn) (*client.StringsResponse, error) {
		if q.queryable.metadataStreaming {
			return receiveStrings(ctx, "label names", q.queryable.maxRecvMsgSize, func(ctx context.Context) (client.StringsStreamClient, error) {
				return c.LabelNamesStream(ctx, req)
			})
		}
		return c.LabelNames(ctx, req)
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings(replicas, hints), nil, nil
}

func (q *ingesterQuerier) Close() error { return nil }

// streamBytes counts the bytes one ingester's stream gathers against
// -ingester.client.grpc-max-recv-msg-size: the unary call's answer, all
// those messages in one, would be refused past it (the size of the
// concatenation of messages of one repeated field is the sum of their
// sizes).
type streamBytes struct {
	what  string // what the stream carries, for the error
	limit int    // 0 is no bound
	total int
}

func (b *streamBytes) add(m proto.Message) error {
	b.total += proto.Size(m)
	if b.limit > 0 && b.total > b.limit {
		return status.Errorf(codes.ResourceExhausted, "the %s streamed exceed %d bytes, the max size of one answer (-%s.grpc-max-recv-msg-size): narrow the matchers or the time range", b.what, b.limit, client.TLSPrefix)
	}
	return nil
}

// receiveStrings gathers the label names or values (what) of the stream
// open opens, at most limit bytes of them.
func receiveStrings(ctx context.Context, what string, limit int, open func(context.Context) (client.StringsStreamClient, error)) (*client.StringsResponse, error) {
	// Cancelling ends a stream left before its end.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := open(ctx)
	if err != nil {
		return nil, err
	}
	size := streamBytes{what: what, limit: limit}
	out := &client.StringsResponse{}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if err := size.add(r); err != nil {
			return nil, err
		}
		out.Values = append(out.Values, r.Values...)
	}
}

// seriesStream gathers the label sets of one ingester's SeriesStream, at
// most limit bytes of them, checking the query's series limits (check,
// given how many so far) as they arrive: the merged answer holds at least
// as many.
func seriesStream(ctx context.Context, c *client.Conn, req *client.SeriesRequest, limit int, check func(int) error) (*client.SeriesResponse, error) {
	// Cancelling ends a stream left before its end.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.SeriesStream(ctx, req)
	if err != nil {
		return nil, err
	}
	size := streamBytes{what: "series", limit: limit}
	out := &client.SeriesResponse{}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if err := size.add(r); err != nil {
			return nil, err
		}
		out.Series = append(out.Series, r.Series...)
		if err := check(len(out.Series)); err != nil {
			return nil, err
		}
	}
}

func hintLimit(h *storage.LabelHints) int {
	if h == nil {
		return 0
	}
	return h.Limit
}

// mergeStrings unions the replicas' answers, sorted and de-duplicated.
func mergeStrings(replicas []*client.StringsResponse, hints *storage.LabelHints) []string {
	var out []string
	for _, r := range replicas {
		out = append(out, r.Values...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if l := hintLimit(hints); l > 0 && len(out) > l {
		out = out[:l]
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// metadata returns the metadata of every metric family (or of one), with
// the replicas' answers united. limit bounds the families and
// limitPerMetric the entries per family; negative means no bound.
func (q *ingesterQueryable) metadata(ctx context.Context, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error) {
	if _, err := tenant.ID(ctx); err != nil {
		return nil, err
	}
	req := &client.MetadataRequest{Metric: metric}
	if limit > 0 {
		req.Limit = int64(limit)
	}
	if limitPerMetric > 0 {
		req.LimitPerMetric = int64(limitPerMetric)
	}
	replicas, err := fanOut(ctx, q, func(ctx context.Context, c *client.Conn) (*client.MetadataResponse, error) {
		return c.Metadata(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	sets := map[string][]metadata.Metadata{}
	for _, r := range replicas {
		for _, m := range r.Metadata {
			md := metadata.Metadata{Type: model.MetricType(m.Type), Help: m.Help, Unit: m.Unit}
			if !slices.Contains(sets[m.MetricFamilyName], md) {
				sets[m.MetricFamilyName] = append(sets[m.MetricFamilyName], md)
			}
		}
	}
	// Bounds apply in name order, so the answer does not depend on which
	// replicas answered first.
	names := make([]string, 0, len(sets))
	for name := range sets {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make(map[string][]metadata.Metadata, len(names))
	for _, name := range names {
		if limit >= 0 && len(out) >= limit {
			break
		}
		ms := sets[name]
		slices.SortFunc(ms, func(a, b metadata.Metadata) int {
			return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Help, b.Help), cmp.Compare(a.Unit, b.Unit))
		})
		if limitPerMetric > 0 && len(ms) > limitPerMetric {
			ms = ms[:limitPerMetric]
		}
		out[name] = ms
	}
	return out, nil
}

// labelNamesOfSeries answers label names with matchers from the matching
// series, with -querier.ingester-label-names-with-matchers=false. The
// series count against the query's series limits, as a series request's.
func (q *ingesterQuerier) labelNamesOfSeries(ctx context.Context, hints *storage.LabelHints, matchers []*labels.Matcher) ([]string, annotations.Annotations, error) {
	userID, err := tenant.ID(ctx)
	if err != nil {
		return nil, nil, err
	}
	ss := q.selectLabelsOnly(ctx, q.queryable.limits.For(userID), q.mint, q.maxt, 0, matchers)
	names := map[string]struct{}{}
	for ss.Next() {
		ss.At().Labels().Range(func(l labels.Label) { names[l.Name] = struct{}{} })
	}
	if err := ss.Err(); err != nil {
		return nil, nil, err
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	slices.Sort(out)
	if l := hintLimit(hints); l > 0 && len(out) > l {
		out = out[:l]
	}
	return out, nil, nil
}
