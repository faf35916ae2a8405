package storegateway

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/oklog/ulid/v2"
	"google.golang.org/grpc/metadata"
)

// A querier names the blocks a call is to read, and the store-gateway
// answers which of them it holds, so that the querier asks another
// store-gateway for the rest and never answers with blocks missing. The
// calls' messages are the ingesters' (prompb, pkg/ingester/client), shared
// by both APIs, so the block lists travel beside them as metadata: the
// request's and the response header's.
const (
	// RequestedBlocksKey lists, comma-separated, the blocks a call is to
	// read. Without it, a call reads every block the store-gateway holds
	// for the tenant.
	RequestedBlocksKey = "cortex-blocks"
	// QueriedBlocksKey lists, in the response header, the requested
	// blocks the store-gateway holds: those its answer covers.
	QueriedBlocksKey = "cortex-queried-blocks"
	// SeriesBatchSizeKey is the most series a Series call wants in one
	// message (Cortex's SeriesRequest.response_batch_size, set by the
	// querier's -querier.store-gateway-series-batch-size). Without it, or
	// at 0 or 1, each message carries one series.
	SeriesBatchSizeKey = "cortex-series-batch-size"
)

// WithSeriesBatchSize returns ctx asking the Series calls made with it for
// up to n series per message; n of 0 or 1 asks for one.
func WithSeriesBatchSize(ctx context.Context, n int64) context.Context {
	if n <= 1 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, SeriesBatchSizeKey, strconv.FormatInt(n, 10))
}

// seriesBatchSize reads the series per message a call asks for: at least 1.
func seriesBatchSize(ctx context.Context) (int, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get(SeriesBatchSizeKey)
	if len(values) == 0 {
		return 1, nil
	}
	n, err := strconv.ParseInt(values[len(values)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("request metadata %s: %q is not a series count of 0 or more", SeriesBatchSizeKey, values[len(values)-1])
	}
	return int(min(max(n, 1), maxSeriesBatchSize)), nil
}

// WithRequestedBlocks returns ctx naming the blocks of the calls made with
// it.
func WithRequestedBlocks(ctx context.Context, ids []ulid.ULID) context.Context {
	return metadata.AppendToOutgoingContext(ctx, RequestedBlocksKey, joinIDs(ids))
}

// QueriedBlocks reads the blocks a store-gateway answered for from its
// response header.
func QueriedBlocks(header metadata.MD) ([]ulid.ULID, error) {
	ids, _, err := parseIDs(header.Get(QueriedBlocksKey))
	if err != nil {
		return nil, fmt.Errorf("response header %s: %w", QueriedBlocksKey, err)
	}
	return ids, nil
}

// requestedBlocks reads the blocks a call names; ok is false when it names
// none (all blocks).
func requestedBlocks(ctx context.Context) (ids []ulid.ULID, ok bool, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	ids, ok, err = parseIDs(md.Get(RequestedBlocksKey))
	if err != nil {
		return nil, false, fmt.Errorf("request metadata %s: %w", RequestedBlocksKey, err)
	}
	if ok && ids == nil {
		ids = []ulid.ULID{} // named, but none: read nothing
	}
	return ids, ok, nil
}

func queriedBlocksHeader(ids []ulid.ULID) metadata.MD {
	return metadata.Pairs(QueriedBlocksKey, joinIDs(ids))
}

func joinIDs(ids []ulid.ULID) string {
	var b strings.Builder
	b.Grow(len(ids) * 27)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id.String())
	}
	return b.String()
}

func parseIDs(values []string) (ids []ulid.ULID, ok bool, err error) {
	for _, v := range values {
		ok = true
		for _, s := range strings.Split(v, ",") {
			if s == "" {
				continue
			}
			id, err := ulid.ParseStrict(s)
			if err != nil {
				return nil, false, fmt.Errorf("block ID %q: %w", s, err)
			}
			ids = append(ids, id)
		}
	}
	return ids, ok, nil
}
