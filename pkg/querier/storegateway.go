package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	querierstats "github.com/cortex-tls/cortex/pkg/querier/stats"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// defaultStoreGatewayAttempts is how many rounds a query asks
// store-gateways for the blocks not answered yet, each round a replica not
// tried for them: Cortex's default of
// -querier.store-gateway-consistency-check-max-attempts.
const defaultStoreGatewayAttempts = 3

// StoreGateway is one store-gateway the querier reads blocks from: its
// client and its address, for errors.
type StoreGateway interface {
	storegateway.StoreGatewayClient
	Addr() string
}

// GatewaySet says which store-gateways may hold a block, in the order to
// ask them: the ring's owners of the block with sharding, every configured
// store-gateway without.
type GatewaySet interface {
	Candidates(tenant string, block ulid.ULID) ([]StoreGateway, error)
}

// storeGatewayQueryable reads the blocks in long-term storage. For each
// query it finds the blocks the range needs (BlocksFinder), asks each
// block of one store-gateway holding it, and asks another for the blocks
// a store-gateway failed or did not hold. Blocks no store-gateway answered
// for fail the query: it never answers with blocks missing. Only blocks
// the store-gateways may not have loaded yet are spared the check: those
// uploaded within -blocks-storage.bucket-store.consistency-delay plus three
// sync intervals (ingesters still hold their samples), and those marked
// for deletion more than half -ignore-deletion-marks-delay ago (store-
// gateways may drop them first; their samples are in the compacted block).
type storeGatewayQueryable struct {
	finder   BlocksFinder
	gateways GatewaySet
	cfg      storegateway.Config
	limits   *validation.Overrides
	now      func() time.Time
	// maxAttempts is -querier.store-gateway-consistency-check-max-attempts,
	// set by WithStore.
	maxAttempts int
	// seriesBatchSize is -querier.store-gateway-series-batch-size, set by
	// WithStore: the series per Series message asked of store-gateways.
	seriesBatchSize int64
	// logStats is -querier.store-gateway-query-stats-enabled, set by
	// WithStore with the querier's logger: each Series call's statistics
	// are logged.
	logStats bool
	logger   *slog.Logger
}

// NewStoreGatewayQueryable returns the queryable of WithStore: blocks found
// by finder, read from gateways; cfg is the bucket store configuration the
// store-gateways share.
func NewStoreGatewayQueryable(finder BlocksFinder, gateways GatewaySet, cfg storegateway.Config, limits *validation.Overrides) storage.Queryable {
	return &storeGatewayQueryable{finder: finder, gateways: gateways, cfg: cfg, limits: limits, now: time.Now, maxAttempts: defaultStoreGatewayAttempts}
}

func (q *storeGatewayQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &storeGatewayQuerier{q: q, mint: mint, maxt: maxt, chunks: new(atomic.Int64)}, nil
}

// storeGatewayQuerier serves one query. It counts the chunk bytes and the
// encoded size of every store-gateway's answer across the query's Selects,
// for -querier.max-fetched-chunk-bytes-per-query and
// -querier.max-fetched-data-bytes-per-query, as the ingesters' querier
// counts theirs: a query reading old data is held to the same limits.
type storeGatewayQuerier struct {
	q          *storeGatewayQueryable
	mint, maxt int64
	chunkBytes atomic.Int64
	dataBytes  atomic.Int64
	chunks     *atomic.Int64 // shared with the ingesters' querier
}

// addBytes adds a message of a store-gateway's answer to the bytes the
// query fetched from store-gateways and checks the tenant's limits.
func (s *storeGatewayQuerier) addBytes(limits *validation.Limits, chunkBytes, dataBytes int) error {
	c, d := s.chunkBytes.Add(int64(chunkBytes)), s.dataBytes.Add(int64(dataBytes))
	if l := limits.MaxFetchedChunkBytesPerQuery; l > 0 && c > int64(l) {
		return chunkBytesLimitError(l)
	}
	if l := limits.MaxFetchedDataBytesPerQuery; l > 0 && d > int64(l) {
		return dataBytesLimitError(l)
	}
	return nil
}

// fetch asks the store-gateways for the tenant's blocks of [mint, maxt]
// with call, returning every answer once all blocks the query needs were
// answered for.
func fetch[T any](ctx context.Context, q *storeGatewayQueryable, mint, maxt int64, call func(ctx context.Context, g StoreGateway, header *metadata.MD) (T, error)) ([]T, error) {
	userID, err := tenant.ID(ctx)
	if err != nil {
		return nil, err
	}
	blocks, marks, err := q.finder.GetBlocks(ctx, userID, mint, maxt)
	if err != nil {
		return nil, &unavailableError{fmt.Errorf("finding the blocks to query: %w", err)}
	}
	if len(blocks) == 0 {
		return nil, nil
	}
	remaining := blocks.GetULIDs()
	tried := map[ulid.ULID][]string{} // block -> store-gateways asked
	var (
		answers []T
		errs    []error
	)
	for attempt := 0; attempt < q.maxAttempts && len(remaining) > 0; attempt++ {
		byGateway := map[string][]ulid.ULID{}
		gateways := map[string]StoreGateway{}
		for _, id := range remaining {
			candidates, err := q.gateways.Candidates(userID, id)
			if err != nil {
				errs = append(errs, fmt.Errorf("block %s: %w", id, err))
				continue
			}
			for _, g := range candidates {
				if !slices.Contains(tried[id], g.Addr()) {
					tried[id] = append(tried[id], g.Addr())
					byGateway[g.Addr()] = append(byGateway[g.Addr()], id)
					gateways[g.Addr()] = g
					break
				}
			}
		}
		if len(byGateway) == 0 {
			break
		}
		results, err := askGateways(ctx, gateways, byGateway, call)
		if err != nil {
			return nil, err
		}
		queried := map[ulid.ULID]bool{}
		for addr, r := range results {
			if r.err != nil {
				errs = append(errs, fmt.Errorf("store-gateway %s: %w", addr, r.err))
				continue
			}
			answers = append(answers, r.value)
			for _, id := range r.queried {
				queried[id] = true
			}
		}
		remaining = slices.DeleteFunc(remaining, func(id ulid.ULID) bool { return queried[id] })
	}

	missing := q.required(blocks, marks, remaining)
	if len(missing) > 0 {
		msg := fmt.Sprintf("consistency check failed because some blocks were not queried: %s", strings.Join(missing, " "))
		if len(errs) > 0 {
			return nil, &unavailableError{fmt.Errorf("%s: %w", msg, errors.Join(errs...))}
		}
		return nil, &unavailableError{errors.New(msg)}
	}
	return answers, nil
}

// required returns the blocks among remaining that the answer cannot go
// without.
func (q *storeGatewayQueryable) required(blocks bucketindex.Blocks, marks map[ulid.ULID]*bucketindex.BlockDeletionMark, remaining []ulid.ULID) []string {
	now := q.now()
	uploadGrace := q.cfg.ConsistencyDelay + 3*q.cfg.SyncInterval
	var missing []string
	for _, b := range blocks {
		if !slices.Contains(remaining, b.ID) {
			continue
		}
		if b.UploadedAt > 0 && now.Sub(b.GetUploadedAt()) < uploadGrace {
			continue
		}
		if m := marks[b.ID]; m != nil && now.Sub(m.GetDeletionTime()) > q.cfg.IgnoreDeletionMarksDelay/2 {
			continue
		}
		missing = append(missing, b.ID.String())
	}
	return missing
}

type gatewayResult[T any] struct {
	value   T
	queried []ulid.ULID
	err     error
}

// askGateways calls every store-gateway at once for its blocks. A limit
// error fails the whole query at once: another store-gateway would break
// the limit too.
func askGateways[T any](ctx context.Context, gateways map[string]StoreGateway, blocks map[string][]ulid.ULID, call func(context.Context, StoreGateway, *metadata.MD) (T, error)) (map[string]gatewayResult[T], error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		results  = map[string]gatewayResult[T]{}
		limitErr error
	)
	for addr, g := range gateways {
		wg.Go(func() {
			var header metadata.MD
			value, err := call(storegateway.WithRequestedBlocks(ctx, blocks[addr]), g, &header)
			r := gatewayResult[T]{value: value, err: err}
			if err == nil {
				r.queried, r.err = storegateway.QueriedBlocks(header)
			}
			mu.Lock()
			defer mu.Unlock()
			var le *limitError
			if errors.As(err, &le) && limitErr == nil {
				limitErr = err
				cancel()
			}
			results[addr] = r
		})
	}
	wg.Wait()
	if limitErr != nil {
		return nil, limitErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

func (s *storeGatewayQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	userID, err := tenant.ID(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	mint, maxt := s.mint, s.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	if mint > maxt {
		return storage.EmptySeriesSet()
	}
	req := &prompb.Query{StartTimestampMs: mint, EndTimestampMs: maxt, Matchers: client.ToPromMatchers(querysharding.WithShard(ctx, matchers))}
	limits := s.q.limits.For(userID)
	lim := &sharedLimiter{streamLimiter: streamLimiter{limits: limits}}
	addBytes := func(chunks, chunkBytes, dataBytes int) error {
		if err := s.addBytes(limits, chunkBytes, dataBytes); err != nil {
			return err
		}
		return addChunks(s.chunks, limits, chunks)
	}
	answers, err := fetch(ctx, s.q, mint, maxt, func(ctx context.Context, g StoreGateway, header *metadata.MD) (ingesterAnswer, error) {
		var trailer metadata.MD
		begin := time.Now()
		chunked, err := readSeries(storegateway.WithSeriesBatchSize(ctx, s.q.seriesBatchSize), g, req, lim, addBytes, header, &trailer)
		if err == nil {
			s.q.seriesStats(ctx, g, trailer, chunked, time.Since(begin))
		}
		return ingesterAnswer{chunked: chunked}, err
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	// Each store-gateway sends whole chunks of its blocks; the merge keeps
	// one copy of each sample and chunkSeries only those in [mint, maxt].
	merged := mergeAnswers(answers, mint, maxt)
	if hints != nil && hints.Limit > 0 && len(merged) > hints.Limit {
		merged = merged[:hints.Limit]
	}
	series := make([]storage.Series, len(merged))
	for i, m := range merged {
		series[i] = m
	}
	return &seriesSet{series: series, i: -1}
}

// sharedLimiter applies the tenant's series and fetched-samples limits to
// the store-gateways answering one Select together.
type sharedLimiter struct {
	mu sync.Mutex
	streamLimiter
}

func (l *sharedLimiter) add(series, samples int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.streamLimiter.add(series, samples)
}

// readSeries reads one store-gateway's answer, stopping once the query
// breaks the tenant's series, fetched-samples or fetched-bytes limits.
// addBytes counts each message's chunk bytes and encoded size.
func readSeries(ctx context.Context, g StoreGateway, req *prompb.Query, lim *sharedLimiter, addBytes func(chunks, chunkBytes, dataBytes int) error, header, trailer *metadata.MD) ([]*prompb.ChunkedSeries, error) {
	stream, err := g.Series(ctx, req)
	if err != nil {
		return nil, err
	}
	if *header, err = stream.Header(); err != nil {
		return nil, err
	}
	var (
		d   chunkDecoder
		out []*prompb.ChunkedSeries
	)
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			*trailer = stream.Trailer()
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
		if err := addBytes(chunks, chunkBytes, dataBytes); err != nil {
			return nil, err
		}
		if err := lim.add(len(res.ChunkedSeries), samples); err != nil {
			return nil, err
		}
	}
}

func (s *storeGatewayQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &client.LabelValuesRequest{Name: name, StartMs: s.mint, EndMs: s.maxt, MatcherSets: client.ToMatcherSets(matchers), Limit: int64(hintLimit(hints))}
	res, err := fetch(ctx, s.q, s.mint, s.maxt, func(ctx context.Context, g StoreGateway, header *metadata.MD) (*client.StringsResponse, error) {
		return g.LabelValues(ctx, req, grpc.Header(header))
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings(res, hints), nil, nil
}

func (s *storeGatewayQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &client.LabelNamesRequest{StartMs: s.mint, EndMs: s.maxt, MatcherSets: client.ToMatcherSets(matchers), Limit: int64(hintLimit(hints))}
	res, err := fetch(ctx, s.q, s.mint, s.maxt, func(ctx context.Context, g StoreGateway, header *metadata.MD) (*client.StringsResponse, error) {
		return g.LabelNames(ctx, req, grpc.Header(header))
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings(res, hints), nil, nil
}

func (s *storeGatewayQuerier) Close() error { return nil }

// seriesStats counts a store-gateway's statistics of a Series call (its
// trailer) into the query's (pkg/querier/stats), which the query-frontend
// logs, and, with -querier.store-gateway-query-stats-enabled, logs them as
// Cortex's querier does, with the bytes of the answer.
func (q *storeGatewayQueryable) seriesStats(ctx context.Context, g StoreGateway, trailer metadata.MD, chunked []*prompb.ChunkedSeries, took time.Duration) {
	st, ok, err := storegateway.QueryStatsFrom(trailer)
	if err != nil && q.logger != nil {
		q.logger.Warn("reading a store-gateway's query statistics", "instance", g.Addr(), "err", err)
	}
	if !ok {
		return
	}
	querierstats.FromContext(ctx).AddStoreGatewayTouchedPostings(st.PostingsTouched, st.PostingsTouchedSizeSum)
	if !q.logStats || q.logger == nil || st.BlocksQueried == 0 {
		return
	}
	var chunkBytes, dataBytes int
	for _, cs := range chunked {
		for _, c := range cs.Chunks {
			chunkBytes += len(c.Data)
		}
		dataBytes += cs.Size()
	}
	attrs := append([]any{"instance", g.Addr(), "queryable_chunk_bytes_fetched", chunkBytes, "queryable_data_bytes_fetched", dataBytes}, st.Fields()...)
	q.logger.InfoContext(ctx, "store gateway series request stats", append(attrs, "response_time", took)...)
}
