package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTenantsTakeTurns(t *testing.T) {
	q := New[string](100, nil, nil)
	for i := range 10 {
		if err := q.Enqueue("flood", fmt.Sprintf("flood-%d", i), 0); err != nil {
			t.Fatal(err)
		}
	}
	_ = q.Enqueue("b", "b-0", 0)
	_ = q.Enqueue("c", "c-0", 0)
	var got []string
	cur := FirstTenant
	for range 4 {
		r, next, _, err := q.Dequeue(context.Background(), cur, "q1")
		if err != nil {
			t.Fatal(err)
		}
		cur = next
		got = append(got, r)
	}
	want := []string{"flood-0", "b-0", "c-0", "flood-1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dequeued %v, want %v", got, want)
	}
}

func TestBoundAndMetrics(t *testing.T) {
	length := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "l"}, []string{"user"})
	discarded := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"user"})
	q := New[int](2, length, discarded)
	for i := range 2 {
		if err := q.Enqueue("t1", i, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Enqueue("t1", 3, 0); !errors.Is(err, ErrTooManyRequests) {
		t.Fatalf("third request of a tenant bounded at 2: %v, want %v", err, ErrTooManyRequests)
	}
	if err := q.Enqueue("t2", 1, 0); err != nil {
		t.Fatalf("another tenant is not bounded by t1's queue: %v", err)
	}
	if v := testutil.ToFloat64(length.WithLabelValues("t1")); v != 2 {
		t.Fatalf("queue length of t1 = %v, want 2", v)
	}
	if v := testutil.ToFloat64(discarded.WithLabelValues("t1")); v != 1 {
		t.Fatalf("discarded requests of t1 = %v, want 1", v)
	}
	left := q.Stop()
	if len(left) != 3 {
		t.Fatalf("Stop returned %d queued requests, want 3", len(left))
	}
	if err := q.Enqueue("t1", 9, 0); !errors.Is(err, ErrStopped) {
		t.Fatalf("enqueue after stop: %v", err)
	}
	if _, _, _, err := q.Dequeue(context.Background(), FirstTenant, "q"); !errors.Is(err, ErrStopped) {
		t.Fatalf("dequeue after stop: %v", err)
	}
	if n := testutil.CollectAndCount(length); n != 0 {
		t.Fatalf("%d queue length series left after stop", n)
	}
}

func TestDequeueWaitsAndCancels(t *testing.T) {
	q := New[int](10, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, _, err := q.Dequeue(ctx, FirstTenant, "q1")
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled dequeue: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a canceled dequeue still waits")
	}
	go func() {
		r, _, _, err := q.Dequeue(context.Background(), FirstTenant, "q1")
		if err == nil && r != 7 {
			err = fmt.Errorf("got %d", r)
		}
		done <- err
	}()
	_ = q.Enqueue("t", 7, 0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestShuffleShard: with -frontend.max-queriers-per-tenant=2 of 4
// queriers, a tenant's requests go to the same two queriers in every
// queue, and the others never see them.
func TestShuffleShard(t *testing.T) {
	queriers := []string{"querier-1", "querier-2", "querier-3", "querier-4"}
	shardIn := func() []string {
		q := New[int](1000, nil, nil)
		for _, id := range queriers {
			q.RegisterQuerier(id)
		}
		for i := range 100 {
			_ = q.Enqueue("tenant-a", i, 2)
		}
		var served []string
		for _, id := range queriers {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			_, _, _, err := q.Dequeue(ctx, FirstTenant, id)
			cancel()
			if err == nil {
				served = append(served, id)
			} else if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
		}
		return served
	}
	a, b := shardIn(), shardIn()
	if len(a) != 2 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("queriers serving tenant-a: %v, then %v; want the same 2", a, b)
	}

	// Another querier leaving reshards; the tenant's queue is served again
	// by its shard among the remaining ones.
	q := New[int](10, nil, nil)
	q.RegisterQuerier("querier-1")
	q.RegisterQuerier("querier-2")
	_ = q.Enqueue("t", 1, 1)
	_ = q.Enqueue("t", 2, 1)
	owner := ""
	for _, id := range []string{"querier-1", "querier-2"} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if _, _, _, err := q.Dequeue(ctx, FirstTenant, id); err == nil {
			owner = id
		}
		cancel()
	}
	if owner == "" {
		t.Fatal("neither querier served the tenant")
	}
	other := map[string]string{"querier-1": "querier-2", "querier-2": "querier-1"}[owner]
	q.UnregisterQuerier(owner)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, _, _, err := q.Dequeue(ctx, FirstTenant, other); err != nil || r != 2 {
		t.Fatalf("after %s left, %s got %d, %v", owner, other, r, err)
	}
	if n := q.ConnectedQuerierWorkers(); n != 1 {
		t.Fatalf("connected querier workers = %d, want 1", n)
	}
}

func TestShardSize(t *testing.T) {
	for _, c := range []struct {
		max       float64
		connected int
		want      int
	}{{0, 5, 0}, {2, 5, 2}, {9, 5, 5}, {0.5, 5, 3}, {0.01, 5, 1}, {3, 0, 0}} {
		if got := ShardSize(c.max, c.connected); got != c.want {
			t.Errorf("ShardSize(%v, %d) = %d, want %d", c.max, c.connected, got, c.want)
		}
	}
}
