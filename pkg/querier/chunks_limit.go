package querier

import (
	"fmt"
	"sync/atomic"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// chunkCounting is a querier that counts the chunks its query fetched, for
// -querier.max-fetched-chunks-per-query. A query reading both the
// ingesters and the store-gateways gives both queriers one counter, so the
// limit holds for their answers together.
type chunkCounting interface {
	shareChunkCount(*atomic.Int64)
}

func (q *ingesterQuerier) shareChunkCount(c *atomic.Int64)     { q.chunks = c }
func (s *storeGatewayQuerier) shareChunkCount(c *atomic.Int64) { s.chunks = c }

// shareChunkCount gives the queriers of one query one chunk counter.
func shareChunkCount(queriers ...any) {
	c := new(atomic.Int64)
	for _, q := range queriers {
		if cc, ok := q.(chunkCounting); ok {
			cc.shareChunkCount(c)
		}
	}
}

// addChunks adds the chunks of a message of an answer, every replica's
// counted, to the query's and checks the tenant's limit.
func addChunks(count *atomic.Int64, limits *validation.Limits, chunks int) error {
	n := count.Add(int64(chunks))
	if l := limits.MaxFetchedChunksPerQuery; l > 0 && n > int64(l) {
		return fetchedChunksLimitError(l)
	}
	return nil
}

func fetchedChunksLimitError(limit int) error {
	return &limitError{fmt.Sprintf("the query hit the max number of chunks limit (limit: %d chunks, set by -querier.max-fetched-chunks-per-query or max_fetched_chunks_per_query): select fewer series or a shorter time range", limit)}
}
