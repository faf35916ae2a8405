package querier

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// sampleLimitError is a remote read answer over -querier.max-samples:
// 400, as Prometheus answers a read over its
// --storage.remote.read-sample-limit, with its words and the flag's name.
type sampleLimitError struct{ limit int }

func (e *sampleLimitError) Error() string {
	return fmt.Sprintf("exceeded sample limit (%d, set by -querier.max-samples): read fewer series or a shorter time range", e.limit)
}

func remoteReadSampleLimitError(limit int) error { return &sampleLimitError{limit} }

// asSampleLimitError names the flag in remote.ToQueryResult's own error
// for its sample limit.
func asSampleLimitError(err error, limit int) error {
	if httpErr, ok := errors.AsType[remote.HTTPError](err); ok && httpErr.Status() == http.StatusBadRequest && strings.HasPrefix(httpErr.Error(), "exceeded sample limit") {
		return remoteReadSampleLimitError(limit)
	}
	return err
}

// chunkSampleLimit counts the samples of the chunks a streamed remote read
// answer sends, across its queries.
type chunkSampleLimit struct {
	max, samples int
}

// limitedChunkSeriesSet stops a streamed answer at the chunk that takes it
// over -querier.max-samples: the chunk iterator fails, which
// StreamChunkedReadResponses returns.
type limitedChunkSeriesSet struct {
	storage.ChunkSeriesSet
	limit *chunkSampleLimit
}

func (s *limitedChunkSeriesSet) At() storage.ChunkSeries {
	return limitedChunkSeries{ChunkSeries: s.ChunkSeriesSet.At(), limit: s.limit}
}

type limitedChunkSeries struct {
	storage.ChunkSeries
	limit *chunkSampleLimit
}

func (s limitedChunkSeries) Iterator(it chunks.Iterator) chunks.Iterator {
	if l, ok := it.(*limitedChunkIterator); ok {
		l.Iterator, l.err = s.ChunkSeries.Iterator(l.Iterator), nil
		return l
	}
	return &limitedChunkIterator{Iterator: s.ChunkSeries.Iterator(it), limit: s.limit}
}

type limitedChunkIterator struct {
	chunks.Iterator
	limit *chunkSampleLimit
	err   error
}

func (it *limitedChunkIterator) Next() bool {
	if it.err != nil || !it.Iterator.Next() {
		return false
	}
	if c := it.Iterator.At().Chunk; c != nil {
		it.limit.samples += c.NumSamples()
		if it.limit.samples > it.limit.max {
			it.err = remoteReadSampleLimitError(it.limit.max)
			return false
		}
	}
	return true
}

func (it *limitedChunkIterator) Err() error {
	if it.err != nil {
		return it.err
	}
	return it.Iterator.Err()
}
