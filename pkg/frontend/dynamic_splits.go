package frontend

// splitInterval is the interval a range query is split by (ms):
// -querier.split-queries-by-interval, or with -querier.max-shards-per-query
// the smallest multiple of it that cuts the query into few enough parts
// that the parts times the query's vertical shards
// (-frontend.query-vertical-shard-size, when the query shards) are at most
// that many; at least one part. As Cortex's dynamic query splits: a long
// range is split coarser rather than into more queries than the queriers
// should take at once for one client query.
func (f *Frontend) splitInterval(tenantID, query string, start, end, step int64) int64 {
	base := f.cfg.SplitQueriesByInterval.Milliseconds()
	maxShards := f.cfg.MaxShardsPerQuery
	if base <= 0 || maxShards <= 0 {
		return base
	}
	shards := 1
	if n := f.shardSize(tenantID); n > 1 && f.shardQueries(tenantID, query, n) != nil {
		shards = n
	}
	maxParts := max(1, maxShards/shards)
	n := max(1, (end-start+base*int64(maxParts)-1)/(base*int64(maxParts)))
	// The first part may be cut short by the interval's boundary: widen
	// until the parts fit, at most to twice the range (one part).
	for ; n*base <= 2*(end-start)+base; n++ {
		if len(splitByInterval(start, end, step, n*base)) <= maxParts {
			break
		}
	}
	return n * base
}
