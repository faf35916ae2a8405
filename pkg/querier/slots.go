package querier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// querySlots limits how many queries the engine evaluates at once. It is the
// engine's promql.QueryTracker, so queries queue for a slot exactly where
// Prometheus's active query tracker makes them queue. A query waits at most
// the query timeout, which Prometheus' tracker does not bound. With log set
// (-querier.active-query-tracker-dir), each query holding a slot is also
// written to Prometheus' tracker file, whose queries the next start logs
// after a crash.
type querySlots struct {
	slots   chan struct{}
	timeout time.Duration
	log     *promql.ActiveQueryTracker
}

func newQuerySlots(n int, timeout time.Duration) *querySlots {
	return &querySlots{slots: make(chan struct{}, n), timeout: timeout}
}

// openActiveQueryLog opens Prometheus' active query tracker in dir, sized
// for the slots, after logging the queries a crashed run left in it.
func (s *querySlots) openActiveQueryLog(dir string, logger *slog.Logger) error {
	log, err := promql.NewActiveQueryTracker(dir, cap(s.slots), logger)
	if err != nil {
		return fmt.Errorf("-querier.active-query-tracker-dir %q: %w", dir, err)
	}
	s.log = log
	return nil
}

func (s *querySlots) GetMaxConcurrent() int { return cap(s.slots) }

// Insert takes a slot. Running out of time or being canceled while queued
// is reported as the engine's own timeout or cancellation error, which the
// API answers with 503 or 499 as Prometheus does.
func (s *querySlots) Insert(ctx context.Context, query string) (int, error) {
	select {
	case s.slots <- struct{}{}:
		return s.logInsert(ctx, query)
	default:
	}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case s.slots <- struct{}{}:
		return s.logInsert(ctx, query)
	case <-timer.C:
		return 0, promql.ErrQueryTimeout("query queue")
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, promql.ErrQueryTimeout("query queue")
		}
		return 0, promql.ErrQueryCanceled("query queue")
	}
}

// logInsert writes a query that took a slot to the tracker file. The
// file has an entry per slot, and a slot is freed only after its entry, so
// the tracker never waits here.
func (s *querySlots) logInsert(ctx context.Context, query string) (int, error) {
	if s.log == nil {
		return 0, nil
	}
	i, err := s.log.Insert(ctx, query)
	if err != nil {
		<-s.slots
		return 0, promql.ErrQueryCanceled("query queue")
	}
	return i, nil
}

// Delete frees the slot Insert took; i is the index Insert returned.
func (s *querySlots) Delete(i int) {
	if s.log != nil {
		s.log.Delete(i)
	}
	<-s.slots
}

func (s *querySlots) Close() error { return s.log.Close() }

var _ promql.QueryTracker = (*querySlots)(nil)
