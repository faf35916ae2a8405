package querier

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// The tenant's max_query_lookback and max_query_length, and
// -querier.max-query-into-future, applied as Cortex's querier applies them
// to every read (PromQL, remote read, series, labels; exemplars call
// limitTimeRange): the end is moved back to now plus max-query-into-future,
// the start up to now minus the lookback, then a range still longer than
// max_query_length is refused (unless -querier.ignore-max-query-length
// skips that for all but series requests).

// queryLengthError is a read over the tenant's max_query_length.
func queryLengthError(length, limit time.Duration) error {
	return &limitError{fmt.Sprintf("the query time range exceeds the limit (query length: %s, limit: %s, set by -store.max-query-length or max_query_length): select a shorter time range", length, limit)}
}

// rangeChecks are the process-wide settings limitTimeRange applies beside
// the tenant's limits.
type rangeChecks struct {
	maxIntoFuture time.Duration // 0: no clamp
	skipLength    bool
}

// limitTimeRange returns [mint, maxt] (ms) within the tenant's limits:
// ok false when nothing of it is left after the clamps, an error when it
// is longer than max_query_length.
func limitTimeRange(limits *validation.Limits, now time.Time, mint, maxt int64, checks rangeChecks) (int64, int64, bool, error) {
	if f := checks.maxIntoFuture; f > 0 {
		if latest := now.Add(f).UnixMilli(); maxt > latest {
			maxt = latest
		}
	}
	if l := time.Duration(limits.MaxQueryLookback); l > 0 {
		if oldest := now.Add(-l).UnixMilli(); mint < oldest {
			mint = oldest
		}
	}
	if maxt < mint {
		return mint, maxt, false, nil
	}
	if l := time.Duration(limits.MaxQueryLength); l > 0 && !checks.skipLength {
		if length := time.Duration(maxt-mint) * time.Millisecond; length > l {
			return 0, 0, false, queryLengthError(length, l)
		}
	}
	return mint, maxt, true, nil
}

// timeRangeQueryable applies the tenant's time range limits to the
// queriers of a Queryable. The tenant is known only at Select or Label*
// time (from the context), so the inner querier is made then, over the
// querier's range left by the limits, once per tenant: its per-query
// counters (max_fetched_*) cover every Select of the query.
type timeRangeQueryable struct {
	storage.Queryable
	limits *validation.Overrides
	now    func() time.Time
	// maxIntoFuture is -querier.max-query-into-future.
	maxIntoFuture time.Duration
	// ignoreMaxQueryLength is -querier.ignore-max-query-length.
	ignoreMaxQueryLength bool
}

// checks are the range checks of a read; series requests always check
// max_query_length, as Cortex's do, since no query-frontend checks them.
func (q *timeRangeQueryable) checks(series bool) rangeChecks {
	return rangeChecks{maxIntoFuture: q.maxIntoFuture, skipLength: q.ignoreMaxQueryLength && !series}
}

func (q *timeRangeQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &timeRangeQuerier{parent: q, mint: mint, maxt: maxt}, nil
}

type timeRangeQuerier struct {
	parent     *timeRangeQueryable
	mint, maxt int64

	mu    sync.Mutex
	inner map[string]storage.Querier // by tenant; nil value: nothing left to read
}

// querier returns the inner querier of the tenant of ctx and its limits,
// a nil querier when the lookback leaves nothing to read.
func (q *timeRangeQuerier) querier(ctx context.Context) (storage.Querier, *validation.Limits, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, nil, err
	}
	limits := q.parent.limits.For(id)
	q.mu.Lock()
	defer q.mu.Unlock()
	if inner, ok := q.inner[id]; ok {
		return inner, limits, nil
	}
	mint, maxt, ok, err := limitTimeRange(limits, q.parent.now(), q.mint, q.maxt, q.parent.checks(false))
	if err != nil {
		return nil, nil, err
	}
	var inner storage.Querier
	if ok {
		if inner, err = q.parent.Queryable.Querier(mint, maxt); err != nil {
			return nil, nil, err
		}
	}
	if q.inner == nil {
		q.inner = map[string]storage.Querier{}
	}
	q.inner[id] = inner
	return inner, limits, nil
}

func (q *timeRangeQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	inner, limits, err := q.querier(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if inner == nil {
		return storage.EmptySeriesSet()
	}
	if hints != nil {
		start, end, ok, err := limitTimeRange(limits, q.parent.now(), hints.Start, hints.End, q.parent.checks(hints.Func == "series"))
		if err != nil {
			return storage.ErrSeriesSet(err)
		}
		if !ok {
			return storage.EmptySeriesSet()
		}
		h := *hints
		h.Start, h.End = start, end
		hints = &h
	}
	return inner.Select(ctx, sortSeries, hints, matchers...)
}

func (q *timeRangeQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	inner, _, err := q.querier(ctx)
	if err != nil || inner == nil {
		return nil, nil, err
	}
	return inner.LabelValues(ctx, name, hints, matchers...)
}

func (q *timeRangeQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	inner, _, err := q.querier(ctx)
	if err != nil || inner == nil {
		return nil, nil, err
	}
	return inner.LabelNames(ctx, hints, matchers...)
}

func (q *timeRangeQuerier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var first error
	for _, in := range q.inner {
		if in == nil {
			continue
		}
		if err := in.Close(); err != nil && first == nil {
			first = err
		}
	}
	q.inner = nil
	return first
}

// clock is the time the limits apply at: now, unless a test set now.
func (q *ingesterQueryable) clock() time.Time {
	if q.now != nil {
		return q.now()
	}
	return time.Now()
}
