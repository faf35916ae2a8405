package distributor

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// pushWorkers run the calls of pushes to the ingesters on long-lived
// goroutines (-distributor.num-push-workers), as Cortex's worker pool does:
// a call that finds every worker busy runs on a new goroutine, counted in
// cortex_worker_pool_fallback_total, so a push never waits for a worker.
// dskit's ReusableGoroutinesPool has the same behaviour but not the metric
// Cortex's dashboards read.
type pushWorkers struct {
	jobs      chan func()
	done      chan struct{}
	fallbacks prometheus.Counter
	stopOnce  sync.Once
}

func newPushWorkers(n int, reg prometheus.Registerer) *pushWorkers {
	w := &pushWorkers{
		jobs: make(chan func()),
		done: make(chan struct{}),
		fallbacks: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name:        "cortex_worker_pool_fallback_total",
			Help:        "The total number additional go routines that needed to be created to run jobs.",
			ConstLabels: prometheus.Labels{"name": "distributor"},
		}),
	}
	for range n {
		go w.run()
	}
	return w
}

// Go runs f on an idle worker, or on a new goroutine when none is idle.
func (w *pushWorkers) Go(f func()) {
	select {
	case w.jobs <- f:
	default:
		w.fallbacks.Inc()
		go f()
	}
}

func (w *pushWorkers) run() {
	for {
		select {
		case f := <-w.jobs:
			f()
		case <-w.done:
			return
		}
	}
}

// stop ends the workers once their current calls return; a later Go runs
// its call on a new goroutine.
func (w *pushWorkers) stop() { w.stopOnce.Do(func() { close(w.done) }) }
