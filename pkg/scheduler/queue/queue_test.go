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
	q := New[string](Config{MaxOutstanding: Bound(100)}, nil, nil)
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
	length := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "l"}, []string{"user", "priority", "type"})
	discarded := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"user", "priority"})
	q := New[int](Config{MaxOutstanding: Bound(2)}, length, discarded)
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
	if v := testutil.ToFloat64(length.WithLabelValues("t1", "0", "fifo")); v != 2 {
		t.Fatalf("queue length of t1 = %v, want 2", v)
	}
	if v := testutil.ToFloat64(discarded.WithLabelValues("t1", "0")); v != 1 {
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
	q := New[int](Config{MaxOutstanding: Bound(10)}, nil, nil)
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
		q := New[int](Config{MaxOutstanding: Bound(1000)}, nil, nil)
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
	q := New[int](Config{MaxOutstanding: Bound(10)}, nil, nil)
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

// TestPerTenantBound: each tenant's queue is bounded by its own
// -frontend.max-outstanding-requests-per-tenant, and a bound of 0 refuses
// every request of the tenant, as in Cortex.
func TestPerTenantBound(t *testing.T) {
	bounds := map[string]int{"small": 1, "large": 3, "blocked": 0}
	q := New[int](Config{MaxOutstanding: func(tenant string) int { return bounds[tenant] }}, nil, nil)
	for tenant, bound := range bounds {
		for i := range bound {
			if err := q.Enqueue(tenant, i, 0); err != nil {
				t.Fatalf("request %d of %s (bound %d): %v", i, tenant, bound, err)
			}
		}
		if err := q.Enqueue(tenant, bound, 0); !errors.Is(err, ErrTooManyRequests) {
			t.Fatalf("request %d of %s (bound %d): %v, want %v", bound+1, tenant, bound, err, ErrTooManyRequests)
		}
	}
	// The bound is read on every enqueue: a raised limit applies at once.
	bounds["small"] = 2
	if err := q.Enqueue("small", 9, 0); err != nil {
		t.Fatalf("after raising small's bound to 2: %v", err)
	}
}

// shardOwner returns the one of ids that dequeues tenant "t"'s next
// request, with a shard of one querier.
func shardOwner(t *testing.T, q *Queue[int], ids ...string) string {
	t.Helper()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, _, _, err := q.Dequeue(ctx, FirstTenant, id)
		cancel()
		if err == nil {
			return id
		}
	}
	t.Fatal("no querier served the tenant")
	return ""
}

// TestQuerierForgetDelay: a querier whose last stream ends stays in the
// tenants' shards for the forget delay: its tenants' queries wait for it
// rather than moving to another querier, and a querier back within the
// delay keeps its shards. Once the delay passes, the shards are chosen
// among the queriers left.
func TestQuerierForgetDelay(t *testing.T) {
	other := map[string]string{"querier-1": "querier-2", "querier-2": "querier-1"}

	q := New[int](Config{MaxOutstanding: Bound(10), ForgetDelay: time.Hour}, nil, nil)
	q.RegisterQuerier("querier-1")
	q.RegisterQuerier("querier-2")
	_ = q.Enqueue("t", 1, 1)
	owner := shardOwner(t, q, "querier-1", "querier-2")
	q.UnregisterQuerier(owner)
	if n, c := q.KnownQueriers(), q.ConnectedQuerierWorkers(); n != 2 || c != 1 {
		t.Fatalf("within the forget delay: %d known queriers, %d streams; want 2 and 1", n, c)
	}
	_ = q.Enqueue("t", 2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if r, _, _, err := q.Dequeue(ctx, FirstTenant, other[owner]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("within the forget delay, %s took the tenant's request %d (%v): the shard moved", other[owner], r, err)
	}
	cancel()
	q.RegisterQuerier(owner)
	if q.queriers[owner].forget != nil {
		t.Fatal("a querier back within the forget delay is still to be forgotten")
	}
	if got := shardOwner(t, q, "querier-1", "querier-2"); got != owner {
		t.Fatalf("after coming back, the tenant is served by %s, want %s", got, owner)
	}
	q.Stop()

	q = New[int](Config{MaxOutstanding: Bound(10), ForgetDelay: 50 * time.Millisecond}, nil, nil)
	q.RegisterQuerier("querier-1")
	q.RegisterQuerier("querier-2")
	_ = q.Enqueue("t", 1, 1)
	owner = shardOwner(t, q, "querier-1", "querier-2")
	_ = q.Enqueue("t", 2, 1)
	q.UnregisterQuerier(owner)
	// Dequeue waits until the forget delay reshards the tenant onto the
	// remaining querier.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, _, _, err := q.Dequeue(ctx, FirstTenant, other[owner]); err != nil || r != 2 {
		t.Fatalf("after the forget delay, %s got %d, %v; want request 2", other[owner], r, err)
	}
	if n := q.KnownQueriers(); n != 1 {
		t.Fatalf("after the forget delay: %d known queriers, want 1", n)
	}
}

// TestNotifyQuerierShutdown: a querier that says it shuts down leaves the
// shards as soon as its last stream ends (at once if none is left), without
// waiting for the forget delay.
func TestNotifyQuerierShutdown(t *testing.T) {
	q := New[int](Config{MaxOutstanding: Bound(10), ForgetDelay: time.Hour}, nil, nil)
	q.RegisterQuerier("querier-1")
	q.RegisterQuerier("querier-1")
	q.RegisterQuerier("querier-2")
	q.NotifyQuerierShutdown("querier-1")
	q.UnregisterQuerier("querier-1")
	if n := q.KnownQueriers(); n != 2 {
		t.Fatalf("with one of its streams left, %d known queriers, want 2", n)
	}
	q.UnregisterQuerier("querier-1")
	if n := q.KnownQueriers(); n != 1 {
		t.Fatalf("after its last stream ended, %d known queriers, want 1", n)
	}
	// Gone without notice, then the notice: forgotten at once.
	q.UnregisterQuerier("querier-2")
	if n := q.KnownQueriers(); n != 1 {
		t.Fatalf("within the forget delay, %d known queriers, want 1", n)
	}
	q.NotifyQuerierShutdown("querier-2")
	if n := q.KnownQueriers(); n != 0 {
		t.Fatalf("after the notice, %d known queriers, want 0", n)
	}
	// A querier back after its notice is kept again for the delay.
	q.RegisterQuerier("querier-3")
	q.NotifyQuerierShutdown("querier-3")
	q.RegisterQuerier("querier-3")
	q.UnregisterQuerier("querier-3")
	q.UnregisterQuerier("querier-3")
	if n := q.KnownQueriers(); n != 1 {
		t.Fatalf("a querier that reconnected after its notice: %d known queriers, want 1 (kept for the delay)", n)
	}
	q.NotifyQuerierShutdown("unknown") // ignored
}
