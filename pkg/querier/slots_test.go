package querier

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// TestQuerySlots runs on synctest's fake clock: the query timeout passes
// at once, and synctest.Wait tells when a query is queued.
func TestQuerySlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newQuerySlots(1, 50*time.Millisecond)
		if _, err := s.Insert(context.Background(), "q1"); err != nil {
			t.Fatal(err)
		}
		// Full: the next query waits for the query timeout, then gives up.
		start := time.Now()
		_, err := s.Insert(context.Background(), "q2")
		var timeout promql.ErrQueryTimeout
		if !errors.As(err, &timeout) || time.Since(start) < 50*time.Millisecond {
			t.Fatalf("got %v after %s, want a timeout after the query timeout", err, time.Since(start))
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var canceled promql.ErrQueryCanceled
		if _, err := s.Insert(ctx, "q3"); !errors.As(err, &canceled) {
			t.Fatalf("got %v, want canceled", err)
		}
		// A freed slot is taken by a waiting query.
		done := make(chan error)
		go func() {
			_, err := s.Insert(context.Background(), "q4")
			done <- err
		}()
		synctest.Wait() // q4 is queued
		s.Delete(0)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
