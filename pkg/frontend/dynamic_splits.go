package frontend

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// splitInterval is the interval a range query is split by (ms):
// -querier.split-queries-by-interval, or, as Cortex's dynamic query splits
// (query_range.dynamic_query_splits), the smallest multiple of it that cuts
// the query into at most the parts two limits allow:
//   - -querier.max-shards-per-query: the parts times the query's vertical
//     shards (-frontend.query-vertical-shard-size, when the query shards);
//   - -querier.max-fetched-data-duration-per-query: the time ranges the
//     query's selectors read, summed over its parts and shards. Each part
//     reads its own share of the query's range, plus, for every selector,
//     the range, lookback and offsets before it: those repeat per part.
//
// At least one part. A long range is then split coarser rather than into
// more queries than the queriers should take for one client query.
//
// shards is the vertical shard size the query's parts run with (0: the
// tenant's -frontend.query-vertical-shard-size, unchanged). With
// -querier.enable-dynamic-vertical-sharding, as Cortex's
// enable_dynamic_vertical_sharding, every shard size from 1 to the tenant's
// is weighed with the split interval the limits then allow, and the one
// making the most queries in all (the range's parts times the shards) is
// taken, the smaller on a tie: a query whose selectors read far back gains
// parts by running in fewer shards.
func (f *Frontend) splitInterval(tenantID, query string, start, end, step int64) (interval int64, shards int) {
	base := f.cfg.SplitQueriesByInterval.Milliseconds()
	if base <= 0 || (f.cfg.MaxShardsPerQuery <= 0 && f.cfg.MaxFetchedDataDurationPerQuery <= 0) {
		return base, 0
	}
	maxShardSize := 1
	if n := f.shardSize(tenantID); n > 1 && f.shardQueries(tenantID, query, n) != nil {
		maxShardSize = n
	}
	var expr parser.Expr
	if f.cfg.MaxFetchedDataDurationPerQuery > 0 {
		var err error
		if expr, err = f.promql().ParseExpr(query); err != nil {
			return base, 0
		}
	}
	minShardSize := maxShardSize
	if f.cfg.EnableDynamicVerticalSharding {
		minShardSize = 1
	}
	interval, shards = base, maxShardSize
	total := int64(0)
	for candidate := minShardSize; candidate <= maxShardSize; candidate++ {
		ci := f.intervalForShards(expr, start, end, step, candidate)
		if t := ceilDiv(end-start, ci) * int64(candidate); t > total {
			interval, shards, total = ci, candidate, t
		}
	}
	if maxShardSize <= 1 {
		return interval, 0
	}
	return interval, shards
}

// intervalForShards is the smallest multiple of -querier.split-queries-by-interval
// whose parts, each run as shards vertical shards, keep within
// -querier.max-shards-per-query and -querier.max-fetched-data-duration-per-query
// (expr is the query, parsed when the latter is set).
func (f *Frontend) intervalForShards(expr parser.Expr, start, end, step int64, shards int) int64 {
	base := f.cfg.SplitQueriesByInterval.Milliseconds()
	maxShards, maxDuration := f.cfg.MaxShardsPerQuery, f.cfg.MaxFetchedDataDurationPerQuery
	maxParts := math.MaxInt
	if maxShards > 0 {
		maxParts = max(1, maxShards/shards)
	}
	if maxDuration > 0 {
		byRange, bySelectors := fetchedDurations(expr, start, end, f.cfg.SplitQueriesByInterval, f.lookbackDelta())
		fromDuration := int(maxDuration / f.cfg.SplitQueriesByInterval)
		if bySelectors > 0 {
			fromDuration = int((maxDuration/time.Duration(shards) - byRange) / bySelectors)
		}
		maxParts = min(maxParts, max(1, fromDuration))
	}
	n := max(1, (end-start)/(base*int64(min(maxParts, math.MaxInt32))))
	// The first part may be cut short by the interval's boundary: widen
	// until the parts fit, at most to twice the range (one part).
	for ; n*base <= 2*(end-start)+base; n++ {
		if len(splitByInterval(start, end, step, n*base)) <= maxParts {
			break
		}
	}
	return n * base
}

type shardSizeKey struct{}

// withShardSize makes the range query parts run with ctx use n vertical
// shards rather than the tenant's -frontend.query-vertical-shard-size.
func withShardSize(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, shardSizeKey{}, n)
}

// rangeShardSize is the vertical shard size of a range query part: the
// one splitInterval chose, else the tenant's.
func (f *Frontend) rangeShardSize(ctx context.Context, tenantID string) int {
	if n, ok := ctx.Value(shardSizeKey{}).(int); ok {
		return n
	}
	return f.shardSize(tenantID)
}

// lookbackDelta is the queriers' -querier.lookback-delta, which instant
// selectors read before each step.
func (f *Frontend) lookbackDelta() time.Duration {
	if f.lookback > 0 {
		return f.lookback
	}
	return 5 * time.Minute
}

// WithLookbackDelta tells the frontend the queriers' -querier.lookback-delta,
// which -querier.max-fetched-data-duration-per-query counts.
func WithLookbackDelta(d time.Duration) Option { return func(f *Frontend) { f.lookback = d } }

// fetchedDurations estimates, as Cortex does, the time the selectors of
// expr read over [start, end], in whole split intervals: byRange, the
// query's own range per selector, which splitting does not grow, and
// bySelectors, what each selector reads before it (matrix range or
// lookback, offsets, subqueries), which every part reads again.
func fetchedDurations(expr parser.Expr, start, end int64, interval, lookback time.Duration) (byRange, bySelectors time.Duration) {
	ivl := interval.Milliseconds()
	var rangeCount, selectorCount int64
	var evalRange time.Duration
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			rangeCount += floorDiv(end, ivl) - floorDiv(start, ivl) + 1
			s, e := selectorRange(start, end, lookback, n, path, evalRange)
			selectorCount += ceilDiv((e-s)-(end-start), ivl)
			evalRange = 0
		case *parser.MatrixSelector:
			evalRange = n.Range
		}
		return nil
	})
	return time.Duration(rangeCount) * interval, time.Duration(selectorCount) * interval
}

// selectorRange is the time range (ms) selector n at path reads when the
// query is evaluated over [start, end], as Cortex's GetTimeRangesForSelector
// (after Prometheus' engine).
func selectorRange(start, end int64, lookback time.Duration, n *parser.VectorSelector, path []parser.Node, evalRange time.Duration) (int64, int64) {
	var subqOffset, subqRange time.Duration
	var subqTs *int64
	for _, node := range path {
		if sq, ok := node.(*parser.SubqueryExpr); ok {
			subqOffset += sq.OriginalOffset
			subqRange += sq.Range
			if sq.Timestamp != nil {
				// @ resets what the outer subqueries added.
				subqOffset, subqRange, subqTs = sq.OriginalOffset, sq.Range, sq.Timestamp
			}
		}
	}
	if subqTs != nil {
		start, end = *subqTs, *subqTs
	}
	if n.Timestamp != nil {
		start, end = *n.Timestamp, *n.Timestamp
	} else {
		start -= subqOffset.Milliseconds() + subqRange.Milliseconds()
		end -= subqOffset.Milliseconds()
	}
	if evalRange == 0 {
		start -= lookback.Milliseconds()
	} else {
		start -= evalRange.Milliseconds()
	}
	return start - n.OriginalOffset.Milliseconds(), end - n.OriginalOffset.Milliseconds()
}

func floorDiv(a, b int64) int64 {
	if a < 0 && a%b != 0 {
		return a/b - 1
	}
	return a / b
}

func ceilDiv(a, b int64) int64 {
	if a > 0 && a%b != 0 {
		return a/b + 1
	}
	return a / b
}
