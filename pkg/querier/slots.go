package querier

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// querySlots limits how many queries the engine evaluates at once. It is the
// engine's promql.QueryTracker, so queries queue for a slot exactly where
// Prometheus's active query tracker makes them queue, without its mmapped
// file. A query waits at most the query timeout.
type querySlots struct {
	slots   chan struct{}
	timeout time.Duration
}

func newQuerySlots(n int, timeout time.Duration) *querySlots {
	return &querySlots{slots: make(chan struct{}, n), timeout: timeout}
}

func (s *querySlots) GetMaxConcurrent() int { return cap(s.slots) }

// Insert takes a slot. Running out of time or being canceled while queued
// is reported as the engine's own timeout or cancellation error, which the
// API answers with 503 or 499 as Prometheus does.
func (s *querySlots) Insert(ctx context.Context, _ string) (int, error) {
	select {
	case s.slots <- struct{}{}:
		return 0, nil
	default:
	}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case s.slots <- struct{}{}:
		return 0, nil
	case <-timer.C:
		return 0, promql.ErrQueryTimeout("query queue")
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, promql.ErrQueryTimeout("query queue")
		}
		return 0, promql.ErrQueryCanceled("query queue")
	}
}

func (s *querySlots) Delete(int) { <-s.slots }

func (s *querySlots) Close() error { return nil }

var _ promql.QueryTracker = (*querySlots)(nil)
