package storegateway

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/util/annotations"
)

// blockQuerier queries one block: series and labels from its local index,
// samples from chunks read from the bucket.
type blockQuerier struct {
	b          *block
	ir         tsdb.IndexReader
	mint, maxt int64
	// batchSize is how many series' chunks are read at a time
	// (-blocks-storage.bucket-store.series-batch-size).
	batchSize int
	// held counts the chunk buffers the querier's series hold
	// (-blocks-storage.bucket-store.max-chunk-pool-bytes).
	held      heldChunkBytes
	closeOnce sync.Once
	closeErr  error
}

func newBlockQuerier(b *block, mint, maxt int64, l *limits, batchSize int) (*blockQuerier, error) {
	// Index counts the querier as a reader, so that dropping the block
	// waits for the querier to be closed, and keeps a lazily loaded block
	// open until it is.
	ir, err := b.index()
	if err != nil {
		return nil, err
	}
	return &blockQuerier{b: b, ir: ir, mint: mint, maxt: maxt, batchSize: batchSize, held: heldChunkBytes{limits: l}}, nil
}

// Close releases the block and the chunk buffers; closing twice is
// harmless, as the index's reader count must drop only once.
func (q *blockQuerier) Close() error {
	q.closeOnce.Do(func() {
		q.closeErr = q.b.releaseIndex(q.ir)
		q.held.release()
	})
	return q.closeErr
}

func (q *blockQuerier) wrap(what string, err error) error {
	return fmt.Errorf("tenant %s block %s: %s from index: %w", q.b.tenant, q.b.id, what, err)
}

func (q *blockQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	vals, err := q.ir.SortedLabelValues(ctx, name, hints, matchers...)
	if err != nil {
		return nil, nil, q.wrap("label values", err)
	}
	if hints != nil && hints.Limit > 0 && len(vals) > hints.Limit {
		vals = vals[:hints.Limit]
	}
	return vals, nil, nil
}

func (q *blockQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	names, err := q.ir.LabelNames(ctx, matchers...)
	if err != nil {
		return nil, nil, q.wrap("label names", err)
	}
	if hints != nil && hints.Limit > 0 && len(names) > hints.Limit {
		names = names[:hints.Limit]
	}
	return names, nil, nil
}

// Select finds the matching series in the index and reads their chunks
// overlapping the range, -blocks-storage.bucket-store.series-batch-size
// series at a time: the first batch before returning, so that reads are
// batched across series and an error in it surfaces before any series is
// used, the next ones as the caller reaches them. Series always come
// sorted: a block's postings are in label order.
func (q *blockQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	start := time.Now()
	defer func() { q.b.m.seriesFetchDuration.Observe(time.Since(start).Seconds()) }()

	mint, maxt := q.mint, q.maxt
	labelsOnly := false
	limit := 0
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
		// "series" asks for label sets only (the series API).
		labelsOnly = hints.Func == "series"
		limit = hints.Limit
	}
	ms, lazy, err := q.lazyMatchers(ctx, ms)
	if err != nil {
		return storage.ErrSeriesSet(q.wrap("postings", err))
	}
	p, err := q.postingsForMatchers(ctx, ms)
	if err != nil {
		return storage.ErrSeriesSet(q.wrap("postings", err))
	}
	if hints != nil && hints.ShardCount > 0 {
		p = q.ir.ShardedPostings(p, hints.ShardIndex, hints.ShardCount)
	}
	p = q.ir.SortedPostings(p)

	var (
		set         = &seriesSet{mint: mint, maxt: maxt, batchSize: max(q.batchSize, 1)}
		builder     labels.ScratchBuilder
		chks        []chunks.Meta
		postings    int64
		seriesBytes int64
	)
	for p.Next() {
		postings++
		if err := q.ir.Series(p.At(), &builder, &chks); err != nil {
			return storage.ErrSeriesSet(q.wrap(fmt.Sprintf("series %d", p.At()), err))
		}
		var lset labels.Labels
		if len(lazy) > 0 {
			// The lazy matchers are checked on the series' labels rather
			// than through their postings.
			lset = builder.Labels()
			if !matchesAll(lazy, lset) {
				continue
			}
		}
		from := len(set.metas)
		for _, c := range chks {
			if c.MaxTime >= mint && c.MinTime <= maxt {
				set.metas = append(set.metas, c)
			}
		}
		// A series with no samples in the range is not in it, as in the TSDB.
		if len(set.metas) == from {
			continue
		}
		if len(lazy) == 0 {
			lset = builder.Labels()
		}
		// The size of the series' entry in the index: its labels and,
		// for each chunk, a reference and two times.
		seriesBytes += int64(lset.ByteSize()) + 16*int64(len(chks))
		set.series = append(set.series, seriesEntry{lset: lset, from: from, to: len(set.metas)})
		if limit > 0 && len(set.series) >= limit {
			break
		}
	}
	if err := p.Err(); err != nil {
		return storage.ErrSeriesSet(q.wrap("postings", err))
	}
	if err := ctx.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	requestOf(ctx).touchedIndex(postings, int64(len(set.series)), seriesBytes)
	if err := requestOf(ctx).touchIndex(postings, seriesBytes); err != nil {
		return storage.ErrSeriesSet(err)
	}
	set.i = -1
	if labelsOnly {
		set.labelsOnly = true
		return set
	}
	set.fetch = func(metas []chunks.Meta) error { return q.b.fetchChunks(ctx, metas, &q.held) }
	if err := set.loadBatch(0); err != nil {
		return storage.ErrSeriesSet(err)
	}
	return set
}

// postingsForMatchers is tsdb.PostingsForMatchers, through the index cache
// if the block has one.
func (q *blockQuerier) postingsForMatchers(ctx context.Context, ms []*labels.Matcher) (index.Postings, error) {
	ic := q.b.indexCache
	if ic == nil {
		return tsdb.PostingsForMatchers(ctx, q.ir, ms...)
	}
	key := expandedPostingsKey(q.b.cacheKey(), ms)
	if refs, ok := ic.fetchExpandedPostings(ctx, key); ok {
		return index.NewListPostings(refs), nil
	}
	p, err := tsdb.PostingsForMatchers(ctx, q.ir, ms...)
	if err != nil {
		return nil, err
	}
	refs, err := index.ExpandPostings(p)
	if err != nil {
		return nil, err
	}
	ic.storeExpandedPostings(key, refs)
	return index.NewListPostings(refs), nil
}

type seriesEntry struct {
	lset     labels.Labels
	from, to int // the series' chunk references: seriesSet.metas[from:to]
}

// seriesSet is a Select's result: labels and chunk references held in
// memory, and the chunks of one batch of series at a time read from the
// bucket.
type seriesSet struct {
	series     []seriesEntry
	metas      []chunks.Meta // references only: their Chunk is not read
	i          int
	mint, maxt int64
	labelsOnly bool

	// The batch read: the chunks of series[batchFrom:batchTo], which are
	// metas[batchOff:] in a copy of their own, so that the series handed
	// out keep their chunks once the set moves to the next batch, and the
	// set holds no chunk of a batch it is done with.
	batchSize int
	batchFrom int
	batchTo   int
	batchOff  int
	batch     []chunks.Meta
	fetch     func([]chunks.Meta) error
	err       error
}

// loadBatch reads the chunks of the batch of series starting at from.
func (s *seriesSet) loadBatch(from int) error {
	to := min(from+s.batchSize, len(s.series))
	s.batchFrom, s.batchTo, s.batch = from, to, nil
	if from >= to {
		return nil
	}
	off, end := s.series[from].from, s.series[to-1].to
	batch := slices.Clone(s.metas[off:end])
	if err := s.fetch(batch); err != nil {
		return err
	}
	s.batchOff, s.batch = off, batch
	return nil
}

func (s *seriesSet) Next() bool {
	if s.err != nil {
		return false
	}
	s.i++
	if s.i >= len(s.series) {
		return false
	}
	if !s.labelsOnly && s.i >= s.batchTo {
		if s.err = s.loadBatch(s.i); s.err != nil {
			return false
		}
	}
	return true
}

// chunksOf returns the chunks read of a series of the current batch.
func (s *seriesSet) chunksOf(e seriesEntry) []chunks.Meta {
	return s.batch[e.from-s.batchOff : e.to-s.batchOff]
}

func (s *seriesSet) At() storage.Series {
	e := s.series[s.i]
	if s.labelsOnly {
		return labelsOnlySeries{e.lset}
	}
	return &chunkSeries{lset: e.lset, chks: s.chunksOf(e), mint: s.mint, maxt: s.maxt}
}

func (s *seriesSet) Err() error                        { return s.err }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

type labelsOnlySeries struct{ lset labels.Labels }

func (s labelsOnlySeries) Labels() labels.Labels { return s.lset }
func (s labelsOnlySeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return chunkenc.NewNopIterator()
}

// chunkSeries is a series whose samples are its chunks' samples within
// [mint, maxt]. A block's chunks of one series are in time order and do not
// overlap (the TSDB's compaction merges overlapping ones).
type chunkSeries struct {
	lset       labels.Labels
	chks       []chunks.Meta
	mint, maxt int64
}

func (s *chunkSeries) Labels() labels.Labels { return s.lset }

func (s *chunkSeries) Iterator(reuse chunkenc.Iterator) chunkenc.Iterator {
	it, ok := reuse.(*chunksIterator)
	if !ok {
		it = &chunksIterator{}
	}
	*it = chunksIterator{chks: s.chks, mint: s.mint, maxt: s.maxt, cur: it.cur}
	it.started = false
	return it
}

// chunksIterator iterates the samples of a series' chunks within
// [mint, maxt].
type chunksIterator struct {
	chks       []chunks.Meta
	next       int
	cur        chunkenc.Iterator // the chunk being read; reused for the next
	started    bool              // cur reads chks[next-1]
	mint, maxt int64
	done       bool
	err        error
}

// nextChunk moves to the next chunk and its first sample at or after t.
func (it *chunksIterator) nextChunk(t int64) chunkenc.ValueType {
	for it.next < len(it.chks) {
		c := it.chks[it.next]
		it.next++
		if c.MaxTime < t {
			continue
		}
		it.cur = c.Chunk.Iterator(it.cur)
		it.started = true
		if vt := it.cur.Seek(t); vt != chunkenc.ValNone {
			return it.check(vt)
		}
		if err := it.cur.Err(); err != nil {
			it.err = err
			return it.stop()
		}
	}
	return it.stop()
}

func (it *chunksIterator) check(vt chunkenc.ValueType) chunkenc.ValueType {
	if it.cur.AtT() > it.maxt {
		return it.stop()
	}
	return vt
}

func (it *chunksIterator) stop() chunkenc.ValueType {
	it.done = true
	return chunkenc.ValNone
}

func (it *chunksIterator) Next() chunkenc.ValueType {
	if it.done {
		return chunkenc.ValNone
	}
	if !it.started {
		return it.nextChunk(it.mint)
	}
	if vt := it.cur.Next(); vt != chunkenc.ValNone {
		return it.check(vt)
	}
	if err := it.cur.Err(); err != nil {
		it.err = err
		return it.stop()
	}
	return it.nextChunk(it.mint)
}

func (it *chunksIterator) Seek(t millis) chunkenc.ValueType {
	if it.done {
		return chunkenc.ValNone
	}
	t = max(t, it.mint)
	if it.started {
		// Seek never moves back: the current sample stays if it is at or after t.
		if vt := it.cur.Seek(t); vt != chunkenc.ValNone {
			return it.check(vt)
		}
		if err := it.cur.Err(); err != nil {
			it.err = err
			return it.stop()
		}
	}
	return it.nextChunk(t)
}

func (it *chunksIterator) At() (int64, float64) { return it.cur.At() }
func (it *chunksIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return it.cur.AtHistogram(h)
}

func (it *chunksIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.cur.AtFloatHistogram(fh)
}
func (it *chunksIterator) AtT() int64 { return it.cur.AtT() }
func (it *chunksIterator) Err() error { return it.err }

// AtST is the current sample's start timestamp, kept by the chunk formats
// that have one.
func (it *chunksIterator) AtST() int64 { return it.cur.AtST() }

// millis is a sample time in milliseconds. Seek takes one rather than a
// plain int64 because go vet judges any Seek(int64) method against
// io.Seeker's signature.
type millis = int64
