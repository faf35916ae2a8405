package querysharding

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// Select selects from q the series matching ms and, when ms holds a shard
// matcher, keeps only the shard's: how the ingesters filter at the source.
func Select(ctx context.Context, q storage.Querier, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	shard, rest, err := Extract(ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if shard == nil {
		return q.Select(ctx, sortSeries, hints, ms...)
	}
	return &filteredSet{SeriesSet: q.Select(ctx, sortSeries, hints, rest...), filter: NewFilter(*shard)}
}

// SelectChunks is Select over chunks: how the ingesters' chunk streams and
// the store-gateways filter at the source.
func SelectChunks(ctx context.Context, q storage.ChunkQuerier, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	shard, rest, err := Extract(ms)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	if shard == nil {
		return q.Select(ctx, sortSeries, hints, ms...)
	}
	return &filteredChunkSet{ChunkSeriesSet: q.Select(ctx, sortSeries, hints, rest...), filter: NewFilter(*shard)}
}

// WithShard returns ms plus the matcher of the shard in ctx, if any: what
// a querier sends the ingesters and store-gateways.
func WithShard(ctx context.Context, ms []*labels.Matcher) []*labels.Matcher {
	s := FromContext(ctx)
	if s == nil {
		return ms
	}
	return append(ms[:len(ms):len(ms)], s.Matcher())
}

type filteredChunkSet struct {
	storage.ChunkSeriesSet
	filter *Filter
}

func (s *filteredChunkSet) Next() bool {
	for s.ChunkSeriesSet.Next() {
		if s.filter.Matches(s.ChunkSeriesSet.At().Labels()) {
			return true
		}
	}
	return false
}
