package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

func priorities(defs ...validation.PriorityDef) func(string) validation.QueryPriority {
	return func(string) validation.QueryPriority {
		return validation.QueryPriority{Enabled: true, Priorities: defs}
	}
}

// dequeueAll takes n requests as querierID, failing if one does not come.
func dequeueAll(t *testing.T, q *Queue[string], querierID string, n int) []string {
	t.Helper()
	var got []string
	cur := FirstTenant
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, next, _, err := q.Dequeue(ctx, cur, querierID)
		cancel()
		if err != nil {
			t.Fatalf("dequeue %d as %s: %v (got %v so far)", len(got)+1, querierID, err, got)
		}
		cur = next
		got = append(got, r)
	}
	return got
}

func TestHigherPriorityDequeuedFirst(t *testing.T) {
	length := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "l"}, []string{"user", "priority", "type"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"user", "priority"})
	q := New[string](Config{MaxOutstanding: Bound(100), QueryPriority: priorities(), Requests: requests}, length, nil)
	q.RegisterQuerier("q1")
	for _, e := range []struct {
		req      string
		priority int64
	}{{"low-1", 1}, {"low-2", 1}, {"default-1", 0}, {"high-1", 5}, {"low-3", 1}, {"high-2", 5}} {
		if err := q.EnqueuePriority("t", e.req, e.priority, 0); err != nil {
			t.Fatal(err)
		}
	}
	if v := testutil.ToFloat64(length.WithLabelValues("t", "1", "priority")); v != 3 {
		t.Fatalf(`queue length {user="t",priority="1",type="priority"} = %v, want 3`, v)
	}
	if v := testutil.ToFloat64(requests.WithLabelValues("t", "5")); v != 2 {
		t.Fatalf(`requests {user="t",priority="5"} = %v, want 2`, v)
	}
	got := dequeueAll(t, q, "q1", 3)
	if want := []string{"high-1", "high-2", "low-1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dequeued %v, want %v", got, want)
	}
	if v := testutil.ToFloat64(length.WithLabelValues("t", "5", "priority")); v != 0 {
		t.Fatalf(`queue length {user="t",priority="5",type="priority"} = %v after its requests left, want 0`, v)
	}
	if v := testutil.ToFloat64(length.WithLabelValues("t", "1", "priority")); v != 2 {
		t.Fatalf(`queue length {user="t",priority="1",type="priority"} = %v, want 2`, v)
	}
	if got := dequeueAll(t, q, "q1", 3); fmt.Sprint(got) != "[low-2 low-3 default-1]" {
		t.Fatalf("dequeued %v, want [low-2 low-3 default-1]", got)
	}
	if n := testutil.CollectAndCount(length); n != 0 {
		t.Fatalf("%d queue length series left once the tenant's queue is empty", n)
	}
}

func TestPrioritiesDisabledKeepOrder(t *testing.T) {
	length := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "l"}, []string{"user", "priority", "type"})
	q := New[string](Config{MaxOutstanding: Bound(100)}, length, nil)
	_ = q.EnqueuePriority("t", "first", 1, 0)
	_ = q.EnqueuePriority("t", "second", 5, 0)
	if v := testutil.ToFloat64(length.WithLabelValues("t", "5", "fifo")); v != 1 {
		t.Fatalf(`queue length {user="t",priority="5",type="fifo"} = %v, want 1`, v)
	}
	if got := dequeueAll(t, q, "q1", 2); fmt.Sprint(got) != "[first second]" {
		t.Fatalf("without query priorities dequeued %v, want [first second]", got)
	}
}

func TestReservedQueriersTakeOnlyTheirPriority(t *testing.T) {
	// Of queriers a, b, c, d the first by ID is reserved to priority 10.
	q := New[string](Config{MaxOutstanding: Bound(100), QueryPriority: priorities(
		validation.PriorityDef{Priority: 10, ReservedQueriers: 1},
		validation.PriorityDef{Priority: 5},
	)}, nil, nil)
	for _, id := range []string{"d", "c", "b", "a"} {
		q.RegisterQuerier(id)
	}
	_ = q.EnqueuePriority("t", "low", 5, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if r, _, _, err := q.Dequeue(ctx, FirstTenant, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("querier reserved to priority 10 took %q (%v), want it to wait", r, err)
	}
	if got := dequeueAll(t, q, "b", 1); got[0] != "low" {
		t.Fatalf("an unreserved querier took %q, want low", got[0])
	}

	// The reserved querier waits until a request of its priority comes.
	done := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, _, _, err := q.Dequeue(ctx, FirstTenant, "a")
		if err != nil {
			r = err.Error()
		}
		done <- r
	}()
	_ = q.EnqueuePriority("t", "high", 10, 0)
	if got := <-done; got != "high" {
		t.Fatalf("the reserved querier took %q, want high", got)
	}
}

func TestReservedQueriersFraction(t *testing.T) {
	// Half of the tenant's shard of 4 queriers (of 6) is reserved: its
	// first 2 by ID.
	q := New[string](Config{MaxOutstanding: Bound(100), QueryPriority: priorities(
		validation.PriorityDef{Priority: 1, ReservedQueriers: 0.5},
	)}, nil, nil)
	for i := range 6 {
		q.RegisterQuerier(fmt.Sprintf("q%d", i))
	}
	_ = q.EnqueuePriority("t", "req", 0, 4)
	q.mu.Lock()
	tq := q.queues["t"]
	var shard []string
	for id := range tq.shard {
		shard = append(shard, id)
	}
	reserved := len(tq.reserved)
	q.mu.Unlock()
	if len(shard) != 4 || reserved != 2 {
		t.Fatalf("shard %v, %d reserved queriers; want 4 and 2", shard, reserved)
	}
	for id := range tq.reserved {
		if _, ok := tq.shard[id]; !ok {
			t.Fatalf("querier %s reserved outside the tenant's shard %v", id, shard)
		}
	}
}

func TestReservationsNeverTakeEveryQuerier(t *testing.T) {
	q := New[string](Config{MaxOutstanding: Bound(100), QueryPriority: priorities(
		validation.PriorityDef{Priority: 10, ReservedQueriers: 2},
	)}, nil, nil)
	q.RegisterQuerier("a")
	q.RegisterQuerier("b")
	_ = q.EnqueuePriority("t", "low", 0, 0)
	if got := dequeueAll(t, q, "a", 1); got[0] != "low" {
		t.Fatalf("took %q, want low: 2 reserved of 2 queriers reserves none", got[0])
	}
	// A third querier: now a and b are reserved, c takes the rest.
	q.RegisterQuerier("c")
	_ = q.EnqueuePriority("t", "low-2", 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if r, _, _, err := q.Dequeue(ctx, FirstTenant, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("querier b, reserved once c connected, took %q (%v)", r, err)
	}
	if got := dequeueAll(t, q, "c", 1); got[0] != "low-2" {
		t.Fatalf("took %q, want low-2", got[0])
	}
}
