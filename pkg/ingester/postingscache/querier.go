package postingscache

import (
	"context"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
)

// Prometheus' block queriers build their series sets with unexported code
// (newBlockSeriesSet: trimming, deletions, the series-only reads), which
// Cortex copied. Here the queriers stay Prometheus' own: the cached
// querier hands them the postings the cache found through their index
// reader, as the answer to a Select on all series (the one matcher
// name="" value="", which tsdb.PostingsForMatchers reads with a single
// Postings call). The postings travel in the Select's context, so
// concurrent Selects on one querier never see each other's.
//
// Postings of Prometheus' head do not depend on the querier's time range
// (the head index reader's Postings ignores it), so unlike Cortex, queries
// past the head's newest sample are cached too.

type postingsKey struct{}

var allSeries = labels.MustNewMatcher(labels.MatchEqual, "", "")

// BlockQuerierFunc is tsdb.Options' BlockQuerierFunc with the cache:
// blocks whose cache is disabled get Prometheus' plain querier.
func (c *Cache) BlockQuerierFunc() tsdb.BlockQuerierFunc {
	return func(b tsdb.BlockReader, mint, maxt int64) (storage.Querier, error) {
		id := b.Meta().ULID
		if !c.enabledFor(id) {
			return tsdb.NewBlockQuerier(b, mint, maxt)
		}
		cb := &cachingBlock{BlockReader: b}
		q, err := tsdb.NewBlockQuerier(cb, mint, maxt)
		if err != nil {
			return nil, err
		}
		sq, ok := q.(searchQuerier)
		if !ok {
			// Prometheus' block queriers are Searchers; should that
			// change, the query goes uncached rather than losing it.
			return q, nil
		}
		return &cachedQuerier{searchQuerier: sq, lookup: lookup{c: c, id: id, ix: cb.ix}}, nil
	}
}

// BlockChunkQuerierFunc is tsdb.Options' BlockChunkQuerierFunc with the
// cache.
func (c *Cache) BlockChunkQuerierFunc() tsdb.BlockChunkQuerierFunc {
	return func(b tsdb.BlockReader, mint, maxt int64) (storage.ChunkQuerier, error) {
		id := b.Meta().ULID
		if !c.enabledFor(id) {
			return tsdb.NewBlockChunkQuerier(b, mint, maxt)
		}
		cb := &cachingBlock{BlockReader: b}
		q, err := tsdb.NewBlockChunkQuerier(cb, mint, maxt)
		if err != nil {
			return nil, err
		}
		return &cachedChunkQuerier{ChunkQuerier: q, lookup: lookup{c: c, id: id, ix: cb.ix}}, nil
	}
}

type searchQuerier interface {
	storage.Querier
	storage.Searcher
}

type cachedQuerier struct {
	searchQuerier
	lookup
}

func (q *cachedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	ctx, err := q.withPostings(ctx, ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	return q.searchQuerier.Select(ctx, sortSeries, hints, allSeries)
}

type cachedChunkQuerier struct {
	storage.ChunkQuerier
	lookup
}

func (q *cachedChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	ctx, err := q.withPostings(ctx, ms)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	return q.ChunkQuerier.Select(ctx, sortSeries, hints, allSeries)
}

// lookup finds a querier's postings through the cache, on the block's own
// index reader.
type lookup struct {
	c  *Cache
	id ulid.ULID
	ix tsdb.IndexReader
}

func (l lookup) withPostings(ctx context.Context, ms []*labels.Matcher) (context.Context, error) {
	p, err := l.c.PostingsForMatchers(ctx, l.id, l.ix, ms...)
	if err != nil {
		return nil, err
	}
	return context.WithValue(ctx, postingsKey{}, p), nil
}

// cachingBlock is a block whose index reader answers a Select of the
// cached querier with the postings in its context, and keeps the index
// reader underneath for the cache's lookups.
type cachingBlock struct {
	tsdb.BlockReader
	ix tsdb.IndexReader
}

func (b *cachingBlock) Index() (tsdb.IndexReader, error) {
	ix, err := b.BlockReader.Index()
	if err != nil {
		return nil, err
	}
	b.ix = ix
	return cachedIndex{IndexReader: ix}, nil
}

type cachedIndex struct {
	tsdb.IndexReader
}

func (ix cachedIndex) Postings(ctx context.Context, name string, values ...string) (index.Postings, error) {
	if p, ok := ctx.Value(postingsKey{}).(index.Postings); ok {
		if k, v := index.AllPostingsKey(); name == k && len(values) == 1 && values[0] == v {
			return p, nil
		}
	}
	return ix.IndexReader.Postings(ctx, name, values...)
}
