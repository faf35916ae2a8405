package frontend

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// errTooManyRequests is a tenant's queue at its bound.
var errTooManyRequests = errors.New("too many outstanding requests")

// errStopped is a queue that no longer hands out work.
var errStopped = errors.New("query-frontend is stopping")

// queue holds one FIFO per tenant and hands requests out round-robin
// across the tenants that have work, so a tenant flooding its queue delays
// only itself: another tenant's request waits for at most one request of
// each other tenant per connected querier slot.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	max     int
	tenants map[string][]*request
	order   []string // tenants with queued requests, in round-robin order
	next    int      // index in order of the tenant served next
	stopped bool

	length   *prometheus.GaugeVec
	duration prometheus.Histogram
}

func newQueue(maxPerTenant int, length *prometheus.GaugeVec, duration prometheus.Histogram) *queue {
	q := &queue{max: maxPerTenant, tenants: map[string][]*request{}, length: length, duration: duration}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// enqueue adds r to its tenant's queue, or refuses it when the queue is full.
func (q *queue) enqueue(r *request) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return errStopped
	}
	reqs, ok := q.tenants[r.tenant]
	if len(reqs) >= q.max {
		return errTooManyRequests
	}
	if !ok || len(reqs) == 0 {
		// A tenant joining the rotation goes last: just before next.
		q.order = append(q.order, "")
		copy(q.order[q.next+1:], q.order[q.next:])
		q.order[q.next] = r.tenant
		q.next++
		if q.next >= len(q.order) {
			q.next = 0
		}
	}
	r.enqueued = time.Now()
	q.tenants[r.tenant] = append(reqs, r)
	q.length.WithLabelValues(r.tenant).Set(float64(len(reqs) + 1))
	q.cond.Signal()
	return nil
}

// dequeue waits for a request, taking the tenants in turn.
func (q *queue) dequeue(ctx context.Context) (*request, error) {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.stopped && ctx.Err() == nil {
		q.cond.Wait()
	}
	if q.stopped {
		return nil, errStopped
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.next >= len(q.order) {
		q.next = 0
	}
	tenant := q.order[q.next]
	reqs := q.tenants[tenant]
	r := reqs[0]
	reqs[0] = nil
	reqs = reqs[1:]
	if len(reqs) == 0 {
		delete(q.tenants, tenant)
		q.order = append(q.order[:q.next], q.order[q.next+1:]...)
		q.length.DeleteLabelValues(tenant)
	} else {
		q.tenants[tenant] = reqs
		q.length.WithLabelValues(tenant).Set(float64(len(reqs)))
		q.next++
	}
	if q.next >= len(q.order) {
		q.next = 0
	}
	q.duration.Observe(time.Since(r.enqueued).Seconds())
	return r, nil
}

// stop wakes every waiting querier stream, fails the queued requests and
// refuses further work.
func (q *queue) stop() {
	q.mu.Lock()
	q.stopped = true
	for tenant, reqs := range q.tenants {
		for _, r := range reqs {
			r.result <- result{err: errStopped}
		}
		q.length.DeleteLabelValues(tenant)
	}
	q.tenants, q.order = map[string][]*request{}, nil
	q.cond.Broadcast()
	q.mu.Unlock()
}

// len returns the number of queued requests of tenant.
func (q *queue) len(tenant string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.tenants[tenant])
}
