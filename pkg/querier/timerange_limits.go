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

// The tenant's max_query_lookback and max_query_length, applied as Cortex's
// querier applies them to every read (PromQL, remote read, series, labels;
// exemplars call limitTimeRange): the start is moved up to now minus the
// lookback, then a range still longer than max_query_length is refused.

// queryLengthError is a read over the tenant's max_query_length.
func queryLengthError(length, limit time.Duration) error {
	return &limitError{fmt.Sprintf("the query time range exceeds the limit (query length: %s, limit: %s, set by -store.max-query-length or max_query_length): select a shorter time range", length, limit)}
}

// limitTimeRange returns [mint, maxt] (ms) within the tenant's limits:
// ok false when nothing of it is left after the lookback, an error when it
// is longer than max_query_length.
func limitTimeRange(limits *validation.Limits, now time.Time, mint, maxt int64) (int64, int64, bool, error) {
	if l := time.Duration(limits.MaxQueryLookback); l > 0 {
		if oldest := now.Add(-l).UnixMilli(); mint < oldest {
			mint = oldest
		}
	}
	if maxt < mint {
		return mint, maxt, false, nil
	}
	if l := time.Duration(limits.MaxQueryLength); l > 0 {
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
	mint, maxt, ok, err := limitTimeRange(limits, q.parent.now(), q.mint, q.maxt)
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
		start, end, ok, err := limitTimeRange(limits, q.parent.now(), hints.Start, hints.End)
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
