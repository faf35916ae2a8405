// Package queue is the fair per-tenant request queue shared by the
// query-frontend and the query-scheduler: one bounded FIFO per tenant,
// tenants served in turn, and each tenant's queries handed only to its
// shuffle shard of the connected queriers (-frontend.max-queriers-per-tenant).
//
// It knows nothing of what it queues, nor of gRPC: callers enqueue their
// own request type and dequeue it from their querier streams.
package queue

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrTooManyRequests is a tenant's queue at its bound.
var ErrTooManyRequests = errors.New("too many outstanding requests")

// ErrStopped is a queue that no longer takes or hands out work.
var ErrStopped = errors.New("the queue is stopping")

// Cursor is where a querier's last request came from in the rotation of
// tenants; each querier stream keeps its own, so that every stream takes
// the tenants in turn.
type Cursor int

// FirstTenant is the cursor of a stream that has served nothing yet.
const FirstTenant Cursor = -1

// Queue holds the requests of every tenant.
type Queue[T any] struct {
	mu      sync.Mutex
	cond    *sync.Cond
	max     int
	stopped bool

	// tenants is the rotation: a slot per tenant with queued requests,
	// "" for a free slot, so that the cursors of the streams stay valid
	// while tenants come and go.
	tenants []string
	queues  map[string]*tenantQueue[T]
	// queriers counts the connected streams of each querier.
	queriers map[string]int

	length    *prometheus.GaugeVec
	discarded *prometheus.CounterVec
}

type tenantQueue[T any] struct {
	items []item[T]
	slot  int
	// maxQueriers is the tenant's -frontend.max-queriers-per-tenant when
	// its shard was chosen; shard is nil when every querier may serve it.
	maxQueriers float64
	shard       map[string]struct{}
}

type item[T any] struct {
	req      T
	enqueued time.Time
}

// New returns a queue of at most maxPerTenant requests per tenant. length
// (by "user") and discarded (by "user") may be nil.
func New[T any](maxPerTenant int, length *prometheus.GaugeVec, discarded *prometheus.CounterVec) *Queue[T] {
	q := &Queue[T]{max: maxPerTenant, queues: map[string]*tenantQueue[T]{}, queriers: map[string]int{}, length: length, discarded: discarded}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Enqueue adds req to tenant's queue; maxQueriers is the tenant's
// -frontend.max-queriers-per-tenant (0: every querier). It refuses the
// request when the tenant's queue is full (ErrTooManyRequests) or the queue
// stopped (ErrStopped).
func (q *Queue[T]) Enqueue(tenant string, req T, maxQueriers float64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return ErrStopped
	}
	tq := q.queues[tenant]
	if tq != nil && len(tq.items) >= q.max {
		if q.discarded != nil {
			q.discarded.WithLabelValues(tenant).Inc()
		}
		return ErrTooManyRequests
	}
	if tq == nil {
		tq = &tenantQueue[T]{slot: q.freeSlot(tenant), maxQueriers: maxQueriers, shard: q.shardOf(tenant, maxQueriers)}
		q.queues[tenant] = tq
	} else if tq.maxQueriers != maxQueriers {
		tq.maxQueriers = maxQueriers
		tq.shard = q.shardOf(tenant, maxQueriers)
	}
	tq.items = append(tq.items, item[T]{req: req, enqueued: time.Now()})
	if q.length != nil {
		q.length.WithLabelValues(tenant).Set(float64(len(tq.items)))
	}
	// Every waiting stream: only the tenant's shard may take it.
	q.cond.Broadcast()
	return nil
}

func (q *Queue[T]) freeSlot(tenant string) int {
	for i, t := range q.tenants {
		if t == "" {
			q.tenants[i] = tenant
			return i
		}
	}
	q.tenants = append(q.tenants, tenant)
	return len(q.tenants) - 1
}

// Dequeue waits for a request that querierID may serve, taking the tenants
// in turn from last. It returns the request, the cursor to pass next time,
// and how long the request was queued.
func (q *Queue[T]) Dequeue(ctx context.Context, last Cursor, querierID string) (T, Cursor, time.Duration, error) {
	var zero T
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.stopped {
			return zero, last, 0, ErrStopped
		}
		if err := ctx.Err(); err != nil {
			return zero, last, 0, err
		}
		if tq, slot := q.nextFor(last, querierID); tq != nil {
			it := tq.items[0]
			var none item[T]
			tq.items[0] = none
			tq.items = tq.items[1:]
			tenant := q.tenants[slot]
			if len(tq.items) == 0 {
				q.forget(tenant, tq)
			} else if q.length != nil {
				q.length.WithLabelValues(tenant).Set(float64(len(tq.items)))
			}
			return it.req, Cursor(slot), time.Since(it.enqueued), nil
		}
		q.cond.Wait()
	}
}

// nextFor returns the first tenant after last whose shard holds querierID.
func (q *Queue[T]) nextFor(last Cursor, querierID string) (*tenantQueue[T], int) {
	n := len(q.tenants)
	for i := 1; i <= n; i++ {
		slot := (int(last) + i) % n
		if slot < 0 {
			slot += n
		}
		tenant := q.tenants[slot]
		if tenant == "" {
			continue
		}
		tq := q.queues[tenant]
		if tq.shard != nil {
			if _, ok := tq.shard[querierID]; !ok {
				continue
			}
		}
		return tq, slot
	}
	return nil, 0
}

func (q *Queue[T]) forget(tenant string, tq *tenantQueue[T]) {
	delete(q.queues, tenant)
	q.tenants[tq.slot] = ""
	for len(q.tenants) > 0 && q.tenants[len(q.tenants)-1] == "" {
		q.tenants = q.tenants[:len(q.tenants)-1]
	}
	if q.length != nil {
		q.length.DeleteLabelValues(tenant)
	}
}

// RegisterQuerier counts one more stream of querierID.
func (q *Queue[T]) RegisterQuerier(querierID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queriers[querierID]++
	if q.queriers[querierID] == 1 {
		q.reshard()
	}
}

// UnregisterQuerier counts one stream of querierID fewer; the tenants'
// shards are chosen again when its last stream is gone.
func (q *Queue[T]) UnregisterQuerier(querierID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queriers[querierID]--
	if q.queriers[querierID] <= 0 {
		delete(q.queriers, querierID)
		q.reshard()
	}
	// Streams of other queriers may now be in the shard of waiting work.
	q.cond.Broadcast()
}

// ConnectedQuerierWorkers returns the number of querier streams connected.
func (q *Queue[T]) ConnectedQuerierWorkers() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, c := range q.queriers {
		n += c
	}
	return n
}

func (q *Queue[T]) reshard() {
	for tenant, tq := range q.queues {
		tq.shard = q.shardOf(tenant, tq.maxQueriers)
	}
}

// shardOf picks the tenant's queriers among those connected: the same
// tenant and the same queriers give the same shard in every process. nil
// means every querier.
func (q *Queue[T]) shardOf(tenant string, maxQueriers float64) map[string]struct{} {
	n := ShardSize(maxQueriers, len(q.queriers))
	if n == 0 || n >= len(q.queriers) {
		return nil
	}
	ids := make([]string, 0, len(q.queriers))
	for id := range q.queriers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	h := fnv.New64a()
	_, _ = h.Write([]byte(tenant))
	seed := h.Sum64()
	rnd := rand.New(rand.NewPCG(seed, seed))
	shard := make(map[string]struct{}, n)
	for _, i := range rnd.Perm(len(ids))[:n] {
		shard[ids[i]] = struct{}{}
	}
	return shard
}

// ShardSize is the number of queriers of a tenant with
// -frontend.max-queriers-per-tenant=maxQueriers among connected queriers:
// a value below 1 is a fraction of them (at least one), 0 means all.
func ShardSize(maxQueriers float64, connected int) int {
	switch {
	case maxQueriers <= 0 || connected == 0:
		return 0
	case maxQueriers < 1:
		return max(1, int(math.Ceil(maxQueriers*float64(connected))))
	default:
		return min(int(maxQueriers), connected)
	}
}

// Stop refuses further work, wakes every waiting stream and returns the
// requests still queued, for the caller to fail.
func (q *Queue[T]) Stop() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	var left []T
	for tenant, tq := range q.queues {
		for _, it := range tq.items {
			left = append(left, it.req)
		}
		if q.length != nil {
			q.length.DeleteLabelValues(tenant)
		}
	}
	q.queues, q.tenants = map[string]*tenantQueue[T]{}, nil
	q.cond.Broadcast()
	return left
}

// Len returns the number of queued requests of tenant.
func (q *Queue[T]) Len(tenant string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if tq := q.queues[tenant]; tq != nil {
		return len(tq.items)
	}
	return 0
}
