// Package queue is the fair per-tenant request queue shared by the
// query-frontend and the query-scheduler: one FIFO per tenant, bounded by
// the tenant's -frontend.max-outstanding-requests-per-tenant, tenants
// served in turn, and each tenant's queries handed only to its shuffle
// shard of the connected queriers (-frontend.max-queriers-per-tenant).
// A querier that disconnects stays in the shards for the querier forget
// delay, so that a querier restarting does not move every tenant's shard.
//
// With a tenant's limits.query_priority enabled, its queue hands out its
// higher priorities first (FIFO within a priority), and the queriers its
// priority definitions reserve (reserved_queriers) take only queries of
// their priority or higher, as Cortex's.
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
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/validation"
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

// Config is what a queue takes from its owner's flags and limits.
type Config struct {
	// MaxOutstanding is a tenant's bound on queued requests
	// (-frontend.max-outstanding-requests-per-tenant); beyond it Enqueue
	// refuses with ErrTooManyRequests.
	MaxOutstanding func(tenant string) int
	// ForgetDelay keeps a querier whose last stream ended in the tenants'
	// shards this long (-query-frontend.querier-forget-delay,
	// -query-scheduler.querier-forget-delay); 0 forgets it at once.
	ForgetDelay time.Duration
	// QueryPriority is a tenant's limits.query_priority; nil disables
	// priorities for every tenant.
	QueryPriority func(tenant string) validation.QueryPriority
	// Requests counts the requests enqueued, refused or not, by "user"
	// and "priority" (cortex_request_queue_requests_total); nil counts
	// none.
	Requests *prometheus.CounterVec
}

// Queue type labels of the queue length metric, as Cortex's.
const (
	typeFIFO     = "fifo"
	typePriority = "priority"
)

// Bound is a MaxOutstanding of n for every tenant.
func Bound(n int) func(string) int { return func(string) int { return n } }

// Queue holds the requests of every tenant.
type Queue[T any] struct {
	mu      sync.Mutex
	cond    *sync.Cond
	cfg     Config
	stopped bool

	// tenants is the rotation: a slot per tenant with queued requests,
	// "" for a free slot, so that the cursors of the streams stay valid
	// while tenants come and go.
	tenants []string
	queues  map[string]*tenantQueue[T]
	// queriers are the queriers the shards are chosen among: those
	// connected, and those gone less than the forget delay ago.
	queriers map[string]*querierState

	length    *prometheus.GaugeVec
	discarded *prometheus.CounterVec
}

type tenantQueue[T any] struct {
	// items are highest priority first, FIFO within a priority.
	items []item[T]
	slot  int
	// maxQueriers is the tenant's -frontend.max-queriers-per-tenant when
	// its shard was chosen; shard is nil when every querier may serve it.
	maxQueriers float64
	shard       map[string]struct{}
	// reservations are the tenant's priority definitions' (priority,
	// reserved_queriers) when last enqueued to; reserved maps each
	// reserved querier to the lowest priority it takes.
	reservations []reservation
	reserved     map[string]int64
}

type reservation struct {
	priority int64
	queriers float64
}

type querierState struct {
	streams int
	// shuttingDown: the querier said it shuts down, so its last stream
	// ending removes it at once.
	shuttingDown bool
	// forget removes the querier once the forget delay has passed since
	// its last stream ended; nil while it has streams.
	forget *time.Timer
}

type item[T any] struct {
	req      T
	enqueued time.Time
	priority int64
	// kind is the queue type label the item was counted under.
	kind string
}

// New returns a queue. length (by "user", "priority" and "type") and
// discarded (by "user" and "priority") may be nil.
func New[T any](cfg Config, length *prometheus.GaugeVec, discarded *prometheus.CounterVec) *Queue[T] {
	q := &Queue[T]{cfg: cfg, queues: map[string]*tenantQueue[T]{}, queriers: map[string]*querierState{}, length: length, discarded: discarded}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Enqueue adds req to tenant's queue at priority 0; see EnqueuePriority.
func (q *Queue[T]) Enqueue(tenant string, req T, maxQueriers float64) error {
	return q.EnqueuePriority(tenant, req, 0, maxQueriers)
}

// EnqueuePriority adds req to tenant's queue; maxQueriers is the tenant's
// -frontend.max-queriers-per-tenant (0: every querier). With the tenant's
// query priorities enabled, req goes after the requests of its priority or
// higher and before those of a lower priority; otherwise last. It refuses
// the request when the tenant's queue holds its MaxOutstanding requests
// (ErrTooManyRequests) or the queue stopped (ErrStopped).
func (q *Queue[T]) EnqueuePriority(tenant string, req T, priority int64, maxQueriers float64) error {
	var prio validation.QueryPriority
	if q.cfg.QueryPriority != nil {
		prio = q.cfg.QueryPriority(tenant)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return ErrStopped
	}
	tq := q.queues[tenant]
	queued := 0
	if tq != nil {
		queued = len(tq.items)
	}
	priorityLabel := strconv.FormatInt(priority, 10)
	if q.cfg.Requests != nil {
		q.cfg.Requests.WithLabelValues(tenant, priorityLabel).Inc()
	}
	if queued >= q.cfg.MaxOutstanding(tenant) {
		if q.discarded != nil {
			q.discarded.WithLabelValues(tenant, priorityLabel).Inc()
		}
		return ErrTooManyRequests
	}
	reservations := reservationsOf(prio)
	switch {
	case tq == nil:
		tq = &tenantQueue[T]{slot: q.freeSlot(tenant), maxQueriers: maxQueriers, shard: q.shardOf(tenant, maxQueriers), reservations: reservations}
		q.queues[tenant] = tq
		q.reserve(tq)
	case tq.maxQueriers != maxQueriers:
		tq.maxQueriers = maxQueriers
		tq.shard = q.shardOf(tenant, maxQueriers)
		tq.reservations = reservations
		q.reserve(tq)
	case !slices.Equal(tq.reservations, reservations):
		tq.reservations = reservations
		q.reserve(tq)
	}
	it := item[T]{req: req, enqueued: time.Now(), priority: priority, kind: typeFIFO}
	at := len(tq.items)
	if prio.Enabled {
		it.kind = typePriority
		for at > 0 && tq.items[at-1].priority < priority {
			at--
		}
	}
	tq.items = slices.Insert(tq.items, at, it)
	if q.length != nil {
		q.length.WithLabelValues(tenant, priorityLabel, it.kind).Inc()
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
				q.length.WithLabelValues(tenant, strconv.FormatInt(it.priority, 10), it.kind).Dec()
			}
			return it.req, Cursor(slot), time.Since(it.enqueued), nil
		}
		q.cond.Wait()
	}
}

// nextFor returns the first tenant after last whose shard holds querierID
// and whose first request querierID may take: a querier reserved to a
// priority takes only requests of that priority or higher.
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
		if lowest, ok := tq.reserved[querierID]; ok && tq.items[0].priority < lowest {
			continue
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
		q.length.DeletePartialMatch(prometheus.Labels{"user": tenant})
	}
}

// RegisterQuerier counts one more stream of querierID.
func (q *Queue[T]) RegisterQuerier(querierID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qs := q.queriers[querierID]; qs != nil {
		// Back within the forget delay: the shards kept it.
		if qs.forget != nil {
			qs.forget.Stop()
			qs.forget = nil
		}
		qs.streams++
		qs.shuttingDown = false
		return
	}
	q.queriers[querierID] = &querierState{streams: 1}
	q.reshard()
}

// UnregisterQuerier counts one stream of querierID fewer. When its last
// stream is gone, the tenants' shards are chosen again among the other
// queriers, at once or, with a forget delay, once it has passed without the
// querier coming back.
func (q *Queue[T]) UnregisterQuerier(querierID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qs := q.queriers[querierID]
	if qs == nil || qs.streams <= 0 {
		return
	}
	qs.streams--
	if qs.streams > 0 {
		return
	}
	if q.cfg.ForgetDelay <= 0 || qs.shuttingDown {
		q.removeQuerier(querierID)
		return
	}
	var timer *time.Timer
	timer = time.AfterFunc(q.cfg.ForgetDelay, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if cur := q.queriers[querierID]; cur != nil && cur.forget == timer {
			q.removeQuerier(querierID)
		}
	})
	qs.forget = timer
}

// NotifyQuerierShutdown records that querierID shuts down gracefully: it
// leaves the shards once its last stream ends (at once if none is left),
// without waiting for the forget delay, as in Cortex.
func (q *Queue[T]) NotifyQuerierShutdown(querierID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qs := q.queriers[querierID]
	if qs == nil {
		return
	}
	if qs.streams == 0 {
		if qs.forget != nil {
			qs.forget.Stop()
		}
		q.removeQuerier(querierID)
		return
	}
	qs.shuttingDown = true
}

func (q *Queue[T]) removeQuerier(querierID string) {
	delete(q.queriers, querierID)
	q.reshard()
	// Streams of other queriers may now be in the shard of waiting work.
	q.cond.Broadcast()
}

// ConnectedQuerierWorkers returns the number of querier streams connected.
func (q *Queue[T]) ConnectedQuerierWorkers() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, qs := range q.queriers {
		n += qs.streams
	}
	return n
}

// KnownQueriers returns the number of queriers the shards are chosen among:
// the connected ones and those gone within the forget delay.
func (q *Queue[T]) KnownQueriers() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queriers)
}

func (q *Queue[T]) reshard() {
	for tenant, tq := range q.queues {
		tq.shard = q.shardOf(tenant, tq.maxQueriers)
		q.reserve(tq)
	}
}

// reservationsOf is the reserved queriers of prio's definitions, in their
// order; none when priorities are disabled.
func reservationsOf(prio validation.QueryPriority) []reservation {
	if !prio.Enabled {
		return nil
	}
	var rs []reservation
	for _, p := range prio.Priorities {
		if p.ReservedQueriers > 0 {
			rs = append(rs, reservation{priority: p.Priority, queriers: p.ReservedQueriers})
		}
	}
	return rs
}

// reserve chooses the tenant's reserved queriers among its shard (every
// querier when it has none), as Cortex's: the definitions in order take
// the shard's queriers in the order of their IDs. Reservations that would
// take every querier of the shard are not made, so that every priority
// keeps a querier.
func (q *Queue[T]) reserve(tq *tenantQueue[T]) {
	tq.reserved = nil
	if len(tq.reservations) == 0 {
		return
	}
	var ids []string
	for id := range q.queriers {
		if _, ok := tq.shard[id]; ok || tq.shard == nil {
			ids = append(ids, id)
		}
	}
	var priorities []int64
	for _, r := range tq.reservations {
		for range validation.ReservedQuerierCount(r.queriers, len(ids)) {
			priorities = append(priorities, r.priority)
		}
	}
	if len(priorities) == 0 || len(priorities) >= len(ids) {
		return
	}
	slices.Sort(ids)
	tq.reserved = make(map[string]int64, len(priorities))
	for i, p := range priorities {
		tq.reserved[ids[i]] = p
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
	for _, qs := range q.queriers {
		if qs.forget != nil {
			qs.forget.Stop()
		}
	}
	var left []T
	for tenant, tq := range q.queues {
		for _, it := range tq.items {
			left = append(left, it.req)
		}
		if q.length != nil {
			q.length.DeletePartialMatch(prometheus.Labels{"user": tenant})
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

// NewRequestsCounter returns Cortex's cortex_request_queue_requests_total,
// registered on reg (nil: not registered). The query-frontend's queue and
// the query-scheduler's share it when they run in one process.
func NewRequestsCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cortex_request_queue_requests_total", Help: "Total number of query requests going to the request queue."}, []string{"user", "priority"})
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			return already.ExistingCollector.(*prometheus.CounterVec)
		}
		panic(err)
	}
	return c
}
