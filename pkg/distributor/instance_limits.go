package distributor

import (
	"flag"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// InstanceLimits bound what one distributor takes, whatever the tenant:
// Cortex's -distributor.instance-limits.* flags. 0 means unlimited.
type InstanceLimits struct {
	MaxIngestionRate          float64 `yaml:"max_ingestion_rate"`
	MaxInflightPushRequests   int     `yaml:"max_inflight_push_requests"`
	MaxInflightClientRequests int     `yaml:"max_inflight_client_requests"`
}

// RegisterFlags registers -distributor.instance-limits.*.
func (l *InstanceLimits) RegisterFlags(f *flag.FlagSet) {
	f.Float64Var(&l.MaxIngestionRate, "distributor.instance-limits.max-ingestion-rate", 0, "Most samples per second this distributor accepts, all tenants together (samples, exemplars and metadata, as the per-tenant rate counts them), as an exponentially weighted moving average updated every second: pushes beyond it get 503. 0 means unlimited.")
	f.IntVar(&l.MaxInflightPushRequests, "distributor.instance-limits.max-inflight-push-requests", 0, "Most push requests this distributor handles at once, all tenants together: further ones get 503. 0 means unlimited.")
	f.IntVar(&l.MaxInflightClientRequests, "distributor.instance-limits.max-inflight-client-requests", 0, "Most push calls to ingesters this distributor has in flight, all tenants together: while over it, new pushes get 503 (the calls of pushes already admitted still go out). 0 means unlimited.")
}

// Validate refuses negative limits, naming the flag.
func (l *InstanceLimits) Validate() error {
	switch {
	case l.MaxIngestionRate < 0 || math.IsNaN(l.MaxIngestionRate):
		return fmt.Errorf("-distributor.instance-limits.max-ingestion-rate must not be negative (0 means unlimited), got %g", l.MaxIngestionRate)
	case l.MaxInflightPushRequests < 0:
		return fmt.Errorf("-distributor.instance-limits.max-inflight-push-requests must not be negative (0 means unlimited), got %d", l.MaxInflightPushRequests)
	case l.MaxInflightClientRequests < 0:
		return fmt.Errorf("-distributor.instance-limits.max-inflight-client-requests must not be negative (0 means unlimited), got %d", l.MaxInflightClientRequests)
	}
	return nil
}

// Cortex's refusals, with the flag that set the limit. They name no value,
// so as not to tell tenants about the cluster's sizing.
const (
	errMaxInflightPushes   = "too many inflight push requests in distributor (-distributor.instance-limits.max-inflight-push-requests)"
	errMaxIngestionRate    = "distributor's samples push rate limit reached (-distributor.instance-limits.max-ingestion-rate)"
	errMaxInflightRequests = "too many inflight ingester client requests in distributor (-distributor.instance-limits.max-inflight-client-requests)"
)

// instanceLimiter counts what the limits bound.
type instanceLimiter struct {
	limits         InstanceLimits
	inflightPushes atomic.Int64
	inflightCalls  atomic.Int64
	rate           ewmaRate
}

func newInstanceLimiter(limits InstanceLimits, now func() time.Time, reg prometheus.Registerer) *instanceLimiter {
	l := &instanceLimiter{limits: limits, rate: ewmaRate{alpha: 0.2, interval: time.Second, now: now, last: now()}}
	if reg == nil {
		return l
	}
	limit := func(name string, v float64) prometheus.Collector {
		g := prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "cortex_distributor_instance_limits",
			Help:        "Instance limits used by this distributor.",
			ConstLabels: prometheus.Labels{"limit": name},
		})
		g.Set(v)
		return g
	}
	reg.MustRegister(
		limit("max_inflight_push_requests", float64(limits.MaxInflightPushRequests)),
		limit("max_inflight_client_requests", float64(limits.MaxInflightClientRequests)),
		limit("max_ingestion_rate", limits.MaxIngestionRate),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cortex_distributor_inflight_push_requests",
			Help: "Current number of inflight push requests in distributor.",
		}, func() float64 { return float64(l.inflightPushes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cortex_distributor_inflight_client_requests",
			Help: "Current number of inflight client requests in distributor.",
		}, func() float64 { return float64(l.inflightCalls.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cortex_distributor_ingestion_rate_samples_per_second",
			Help: "Current ingestion rate in samples/sec that distributor is using to limit access.",
		}, func() float64 { return l.rate.current() }),
	)
	return l
}

// admitPush counts a push in flight and refuses it, with 503 as Cortex
// does, over any of the limits; the caller calls done when the push is
// over.
func (l *instanceLimiter) admitPush() (done func(), err error) {
	n := l.inflightPushes.Add(1)
	done = func() { l.inflightPushes.Add(-1) }
	var msg string
	switch {
	case l.limits.MaxInflightPushRequests > 0 && n > int64(l.limits.MaxInflightPushRequests):
		msg = errMaxInflightPushes
	case l.limits.MaxIngestionRate > 0 && l.rate.current() >= l.limits.MaxIngestionRate:
		msg = errMaxIngestionRate
	case l.limits.MaxInflightClientRequests > 0 && l.inflightCalls.Load() > int64(l.limits.MaxInflightClientRequests):
		// Only new pushes are refused: the calls of one admitted go out
		// whole, or its replicas would differ.
		msg = errMaxInflightRequests
	default:
		return done, nil
	}
	done()
	return nil, &PushError{Code: http.StatusServiceUnavailable, Msg: msg}
}

// ewmaRate is the exponentially weighted moving average of a count per
// interval, as Cortex's ingestion rate. It ticks when read, for every
// interval passed since the last tick, so it needs no goroutine of its own.
type ewmaRate struct {
	alpha    float64
	interval time.Duration
	now      func() time.Time

	pending atomic.Int64

	mu     sync.Mutex
	last   time.Time
	rate   float64
	primed bool
}

func (r *ewmaRate) add(n int64) { r.pending.Add(n) }

// current returns the rate after the ticks due.
func (r *ewmaRate) current() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ticks := int(r.now().Sub(r.last) / r.interval)
	if ticks <= 0 {
		return r.rate
	}
	r.last = r.last.Add(time.Duration(ticks) * r.interval)
	// The count since the last tick fell in the first interval due; the
	// others saw nothing.
	instant := float64(r.pending.Swap(0)) / r.interval.Seconds()
	if r.primed {
		r.rate += r.alpha * (instant - r.rate)
	} else {
		r.rate, r.primed = instant, true
	}
	r.rate *= math.Pow(1-r.alpha, float64(ticks-1))
	return r.rate
}
