package frontend

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	fairqueue "github.com/cortex-tls/cortex/pkg/scheduler/queue"
)

// errTooManyRequests is a tenant's queue at its bound.
var errTooManyRequests = fairqueue.ErrTooManyRequests

// errStopped is a queue that no longer hands out work.
var errStopped = fairqueue.ErrStopped

// queue is the frontend's own fair queue (pkg/scheduler/queue, which the
// query-scheduler uses too): one FIFO per tenant, tenants served in turn,
// so a tenant flooding its queue delays only itself, and each tenant's
// queries go only to its shard of queriers (-frontend.max-queriers-per-tenant),
// each tenant's queue bounded by -frontend.max-outstanding-requests-per-tenant.
type queue struct {
	q        *fairqueue.Queue[*request]
	length   *prometheus.GaugeVec
	duration prometheus.Histogram
	// maxQueriers is a tenant's -frontend.max-queriers-per-tenant.
	maxQueriers func(tenant string) float64

	// cursor is the rotation of dequeue, which serves no querier in particular.
	mu     sync.Mutex
	cursor fairqueue.Cursor
}

// length is by "user", "priority" and "type", discarded by "user" and
// "priority" (nil counts none).
func newQueue(cfg fairqueue.Config, length *prometheus.GaugeVec, discarded *prometheus.CounterVec, duration prometheus.Histogram) *queue {
	return &queue{q: fairqueue.New[*request](cfg, length, discarded), length: length, duration: duration,
		maxQueriers: func(string) float64 { return 0 }, cursor: fairqueue.FirstTenant}
}

// enqueue adds r to its tenant's queue at its priority, or refuses it when
// the queue is full.
func (q *queue) enqueue(r *request) error {
	return q.q.EnqueuePriority(r.tenant, r, r.priority, q.maxQueriers(r.tenant))
}

// dequeue waits for a request of any tenant, taking the tenants in turn.
func (q *queue) dequeue(ctx context.Context) (*request, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r, next, err := q.dequeueFor(ctx, q.cursor, "")
	q.cursor = next
	return r, err
}

// dequeueFor waits for a request that querierID may serve, after last.
func (q *queue) dequeueFor(ctx context.Context, last fairqueue.Cursor, querierID string) (*request, fairqueue.Cursor, error) {
	r, next, waited, err := q.q.Dequeue(ctx, last, querierID)
	if err != nil {
		return nil, last, err
	}
	q.duration.Observe(waited.Seconds())
	return r, next, nil
}

// stop wakes every waiting querier stream, fails the queued requests and
// refuses further work.
func (q *queue) stop() {
	for _, r := range q.q.Stop() {
		r.result <- result{err: errStopped}
	}
}

// len returns the number of queued requests of tenant.
func (q *queue) len(tenant string) int { return q.q.Len(tenant) }
