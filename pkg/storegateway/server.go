package storegateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/queryprotection"
)

const (
	// maxSeriesBatchSize bounds the series per Series message a querier
	// may ask for (SeriesBatchSizeKey): a batch is held in memory until
	// sent.
	maxSeriesBatchSize = 10_000
	// seriesBatchBytes cuts a batch earlier when its series are large,
	// keeping messages well under gRPC's size limits.
	seriesBatchBytes = 1 << 20
)

// storeGatewayServer serves the blocks of a BucketStore over gRPC.
type storeGatewayServer struct {
	store  *BucketStore
	logger *slog.Logger
	// maxDownloadedBytes is a tenant's
	// -store-gateway.max-downloaded-bytes-per-request; nil: none.
	maxDownloadedBytes func(tenant string) int64
	// guard refuses calls over the query protection's thresholds.
	guard *queryprotection.Guard
}

// ServerOption configures a store-gateway server.
type ServerOption func(*storeGatewayServer)

// WithMaxDownloadedBytesPerRequest bounds the bytes one call of a tenant
// reads from the bucket to f(tenant) (0: no bound), read at each call so
// that runtime configuration changes apply.
func WithMaxDownloadedBytesPerRequest(f func(tenant string) int64) ServerOption {
	return func(s *storeGatewayServer) { s.maxDownloadedBytes = f }
}

// NewStoreGatewayServer returns the gRPC API over the blocks store holds.
// A nil logger discards.
func NewStoreGatewayServer(store *BucketStore, logger *slog.Logger, opts ...ServerOption) StoreGatewayServer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &storeGatewayServer{store: store, logger: logger}
	for _, o := range opts {
		o(s)
	}
	return s
}

// withRequest bounds what a call of tenant reads.
func (s *storeGatewayServer) withRequest(ctx context.Context, tenant string) context.Context {
	var maxBytes int64
	if s.maxDownloadedBytes != nil {
		maxBytes = s.maxDownloadedBytes(tenant)
	}
	return withRequest(ctx, s.store.limits.newRequest(tenant, maxBytes))
}

// tenantOf returns the caller's tenant, which pkg/tenant's server
// interceptors took from the metadata. Without one the call is refused:
// answering with no tenant would mean answering for some tenant's data.
func tenantOf(ctx context.Context) (string, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return "", status.Errorf(codes.Unauthenticated, "store-gateway: no tenant in the call's metadata: set the X-Scope-OrgID header (%v)", err)
	}
	return id, nil
}

// timeRange reads a request's range; an end of 0 means no end, as on the
// ingesters.
func timeRange(start, end int64) (int64, int64) {
	if end == 0 {
		end = math.MaxInt64
	}
	return start, end
}

// queryError turns a failed read of the tenant's blocks into a status,
// keeping cancellations as such so callers tell them from failures, and
// limits' refusals with their codes.
func (s *storeGatewayServer) queryError(ctx context.Context, id string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return status.FromContextError(ctxErr).Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err
	}
	if errors.Is(err, errPoolExhausted) {
		return status.Errorf(codes.ResourceExhausted, "tenant %s: querying the store-gateway's blocks: %v", id, err)
	}
	// The caller sees the error too; logging it here tells the operator
	// which store-gateway holds the faulty block.
	s.logger.Warn("query failed", "tenant", id, "err", err)
	return status.Errorf(codes.Internal, "tenant %s: querying the store-gateway's blocks: %v", id, err)
}

// Series sends the chunks of every series matching the query that overlap
// [start, end], sorted by labels, as many series per message as the call
// asks for (SeriesBatchSizeKey, one without), up to 10,000 and cut at
// 1 MiB, as Cortex's store-gateway batches SeriesResponses. It reads the blocks the call names
// (RequestedBlocksKey; all the tenant's blocks without), and first sends
// which of those it holds (QueriedBlocksKey). Chunks are sent whole, as the blocks
// hold them, so they may hold samples outside the range: readers trim. A
// series held by several blocks (each ingester of a replication set ships
// its own) has its overlapping chunks merged, so no sample is sent twice.
func (s *storeGatewayServer) Series(req *prompb.Query, stream SeriesServer) error {
	begin := time.Now()
	ctx := stream.Context()
	id, err := tenantOf(ctx)
	if err != nil {
		return err
	}
	if err := s.admit(); err != nil {
		return err
	}
	ms, err := s.store.matchers.FromProm(req.Matchers)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "tenant %s: %v", id, err)
	}
	done, err := s.store.limits.startSeries(ctx)
	if err != nil {
		return err
	}
	defer done()
	ctx = s.withRequest(ctx, id)
	if len(ms) == 0 {
		ms = append(ms, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".*"))
	}
	blocks, selected, err := requestedBlocks(ctx)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "tenant %s: %v", id, err)
	}
	batchSize, err := seriesBatchSize(ctx)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "tenant %s: %v", id, err)
	}
	mint, maxt := timeRange(req.StartTimestampMs, req.EndTimestampMs)
	q, held, err := s.store.SelectedChunkQuerier(id, mint, maxt, blocks)
	if err != nil {
		return s.queryError(ctx, id, err)
	}
	if selected {
		if err := stream.SendHeader(queriedBlocksHeader(held)); err != nil {
			_ = q.Close()
			return err
		}
	}
	// The chunks point into buffers the querier's blocks own: all are sent
	// before it is closed.
	defer q.Close()

	var (
		batch []*prompb.ChunkedSeries
		bytes int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// A sent batch is not reused: the stream may still reference it.
		err := stream.Send(&prompb.ChunkedReadResponse{ChunkedSeries: batch})
		batch, bytes = nil, 0
		return err
	}
	var (
		it         chunks.Iterator
		merge      time.Duration
		sentSeries uint64
		sentChunks uint64
	)
	ss := querysharding.SelectChunks(ctx, q, true, &storage.SelectHints{Start: mint, End: maxt, DisableTrimming: true}, ms...)
	for {
		// Next merges the blocks' series and their overlapping chunks.
		mergeStart := time.Now()
		more := ss.Next()
		merge += time.Since(mergeStart)
		if !more {
			break
		}
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		series := ss.At()
		cs := &prompb.ChunkedSeries{Labels: prompb.FromLabels(series.Labels(), nil)}
		it = series.Iterator(it)
		for it.Next() {
			meta := it.At()
			enc, ok := client.WireEncoding(meta.Chunk.Encoding())
			if !ok {
				return status.Errorf(codes.Internal, "tenant %s series %s: chunk encoding %s cannot be sent", id, series.Labels(), meta.Chunk.Encoding())
			}
			cs.Chunks = append(cs.Chunks, prompb.Chunk{MinTimeMs: meta.MinTime, MaxTimeMs: meta.MaxTime, Type: enc, Data: meta.Chunk.Bytes()})
		}
		if err := it.Err(); err != nil {
			return s.queryError(ctx, id, fmt.Errorf("series %s: %w", series.Labels(), err))
		}
		if len(cs.Chunks) == 0 {
			continue
		}
		sentSeries++
		sentChunks += uint64(len(cs.Chunks))
		batch = append(batch, cs)
		bytes += cs.Size()
		if len(batch) >= batchSize || bytes >= seriesBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := ss.Err(); err != nil {
		return s.queryError(ctx, id, err)
	}
	if err := flush(); err != nil {
		return err
	}
	st := requestOf(ctx).queryStats()
	st.BlocksQueried = uint64(len(held))
	st.SeriesMergedCount, st.ChunksMergedCount = sentSeries, sentChunks
	st.GetAllDuration, st.MergeDuration = time.Since(begin), merge
	stream.SetTrailer(st.trailer())
	return nil
}

// LabelNames returns the sorted label names of the series matching any of
// the matcher sets (every series when there is none) in the time range.
func (s *storeGatewayServer) LabelNames(ctx context.Context, req *client.LabelNamesRequest) (*client.StringsResponse, error) {
	return s.labelStrings(ctx, req.StartMs, req.EndMs, req.MatcherSets, req.Limit, client.LabelNamesOf(ctx))
}

// LabelValues returns the sorted values of a label among the series
// matching any of the matcher sets in the time range.
func (s *storeGatewayServer) LabelValues(ctx context.Context, req *client.LabelValuesRequest) (*client.StringsResponse, error) {
	if req.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "label values: no label name")
	}
	return s.labelStrings(ctx, req.StartMs, req.EndMs, req.MatcherSets, req.Limit, client.LabelValuesOf(ctx, req.Name))
}

func (s *storeGatewayServer) labelStrings(ctx context.Context, start, end int64, sets []*client.MatcherSet, limit int64, get client.LabelStringsFunc) (*client.StringsResponse, error) {
	id, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.admit(); err != nil {
		return nil, err
	}
	matcherSets, err := client.FromMatcherSets(sets)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "tenant %s: %v", id, err)
	}
	ctx = s.withRequest(ctx, id)
	blocks, selected, err := requestedBlocks(ctx)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "tenant %s: %v", id, err)
	}
	mint, maxt := timeRange(start, end)
	q, held, err := s.store.SelectedQuerier(id, mint, maxt, blocks)
	if err != nil {
		return nil, s.queryError(ctx, id, err)
	}
	if selected {
		if err := grpc.SetHeader(ctx, queriedBlocksHeader(held)); err != nil {
			_ = q.Close()
			return nil, err
		}
	}
	defer q.Close()
	out, err := client.CollectLabelStrings(q, matcherSets, limit, get)
	if err != nil {
		return nil, s.queryError(ctx, id, err)
	}
	return &client.StringsResponse{Values: out}, nil
}
