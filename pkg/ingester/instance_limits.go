package ingester

import (
	"errors"
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// InstanceLimits bound what one ingester holds and takes, whatever the
// tenant: Cortex's -ingester.instance-limits.* flags, overridable while
// the process runs by the runtime configuration's ingester_limits block.
// 0 means unlimited.
type InstanceLimits struct {
	MaxIngestionRate        float64 `yaml:"max_ingestion_rate"`
	MaxInMemoryTenants      int64   `yaml:"max_tenants"`
	MaxInMemorySeries       int64   `yaml:"max_series"`
	MaxInflightPushRequests int64   `yaml:"max_inflight_push_requests"`
	// MaxInflightQueryRequests bounds the ingester's reads at once.
	MaxInflightQueryRequests int64 `yaml:"max_inflight_query_requests"`
}

// RegisterFlagsWithPrefix registers the limits as -<prefix>instance-limits.*.
func (l *InstanceLimits) RegisterFlagsWithPrefix(f *flag.FlagSet, prefix string) {
	f.Float64Var(&l.MaxIngestionRate, prefix+"instance-limits.max-ingestion-rate", 0, "Most samples per second this ingester accepts, all tenants together, as an exponentially weighted moving average updated every second: pushes beyond it are refused. 0 means unlimited.")
	f.Int64Var(&l.MaxInMemoryTenants, prefix+"instance-limits.max-tenants", 0, "Most tenants this ingester holds a TSDB for: pushes of further tenants are refused. 0 means unlimited.")
	f.Int64Var(&l.MaxInMemorySeries, prefix+"instance-limits.max-series", 0, "Most series this ingester holds in memory, all tenants together: pushes that would create more are refused. 0 means unlimited.")
	f.Int64Var(&l.MaxInflightPushRequests, prefix+"instance-limits.max-inflight-push-requests", 0, "Most push requests this ingester handles at once, all tenants together: further ones are refused. 0 means unlimited.")
	f.Int64Var(&l.MaxInflightQueryRequests, prefix+"instance-limits.max-inflight-query-requests", 0, "Most query requests (samples, series, labels, exemplars, TSDB status) this ingester handles at once, all tenants together: further ones are refused with Unavailable, and the querier asks another replica. 0 means unlimited.")
}

// Validate refuses negative limits, naming the field.
func (l *InstanceLimits) Validate() error {
	switch {
	case l.MaxIngestionRate < 0:
		return fmt.Errorf("max_ingestion_rate (-ingester.instance-limits.max-ingestion-rate) must not be negative (0 means unlimited), got %g", l.MaxIngestionRate)
	case l.MaxInMemoryTenants < 0:
		return fmt.Errorf("max_tenants (-ingester.instance-limits.max-tenants) must not be negative (0 means unlimited), got %d", l.MaxInMemoryTenants)
	case l.MaxInMemorySeries < 0:
		return fmt.Errorf("max_series (-ingester.instance-limits.max-series) must not be negative (0 means unlimited), got %d", l.MaxInMemorySeries)
	case l.MaxInflightPushRequests < 0:
		return fmt.Errorf("max_inflight_push_requests (-ingester.instance-limits.max-inflight-push-requests) must not be negative (0 means unlimited), got %d", l.MaxInflightPushRequests)
	case l.MaxInflightQueryRequests < 0:
		return fmt.Errorf("max_inflight_query_requests (-ingester.instance-limits.max-inflight-query-requests) must not be negative (0 means unlimited), got %d", l.MaxInflightQueryRequests)
	}
	return nil
}

// Cortex's refusals, which name no value so as not to tell tenants about
// the cluster's sizing; the flag names tell the operator what to change.
var (
	errMaxIngestionRate     = errors.New("cannot push more samples: ingester's samples push rate limit reached (-ingester.instance-limits.max-ingestion-rate)")
	errMaxTenants           = errors.New("cannot create TSDB: ingester's max tenants limit reached (-ingester.instance-limits.max-tenants)")
	errMaxSeries            = errors.New("cannot add series: ingester's max series limit reached (-ingester.instance-limits.max-series)")
	errMaxInflightPushes    = errors.New("cannot push: too many inflight push requests in ingester (-ingester.instance-limits.max-inflight-push-requests)")
	errMaxInflightQueries   = errors.New("cannot push: too many inflight query requests in ingester (-ingester.instance-limits.max-inflight-query-requests)")
	instanceIngestionPeriod = time.Second
)

// instanceLimiter counts what the limits bound. Its methods accept a nil
// receiver, which limits nothing.
type instanceLimiter struct {
	defaults InstanceLimits
	// current returns the runtime configuration's limits, nil for none.
	current func() *InstanceLimits

	inflightPushes atomic.Int64
	series         atomic.Int64
	rate           *ewmaRate

	inflightQueries atomic.Int64
	// maxQueries is the most queries in flight in the current minute and
	// the previous one (Cortex's max tracker).
	maxQueries, maxQueriesBefore atomic.Int64
	maxQueriesReset              time.Time
}

// WithInstanceLimits makes the ingester read its instance limits from
// current on every check (the runtime configuration's ingester_limits),
// falling back to -ingester.instance-limits.* when it returns nil.
func WithInstanceLimits(current func() *InstanceLimits) Option {
	return func(i *Ingester) { i.instanceLimitsFn = current }
}

func newInstanceLimiter(defaults InstanceLimits, current func() *InstanceLimits, reg prometheus.Registerer) (*instanceLimiter, error) {
	l := &instanceLimiter{defaults: defaults, current: current, rate: newEWMARate(0.2, instanceIngestionPeriod), maxQueriesReset: time.Now()}
	if reg == nil {
		return l, nil
	}
	limit := func(name string, v func(*InstanceLimits) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "cortex_ingester_instance_limits",
			Help:        "Instance limits used by this ingester.",
			ConstLabels: prometheus.Labels{"limit": name},
		}, func() float64 { return v(l.limits()) })
	}
	for _, c := range []prometheus.Collector{
		limit("max_ingestion_rate", func(x *InstanceLimits) float64 { return x.MaxIngestionRate }),
		limit("max_tenants", func(x *InstanceLimits) float64 { return float64(x.MaxInMemoryTenants) }),
		limit("max_series", func(x *InstanceLimits) float64 { return float64(x.MaxInMemorySeries) }),
		limit("max_inflight_push_requests", func(x *InstanceLimits) float64 { return float64(x.MaxInflightPushRequests) }),
		limit("max_inflight_query_requests", func(x *InstanceLimits) float64 { return float64(x.MaxInflightQueryRequests) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cortex_ingester_max_inflight_query_requests",
			Help: "Max number of inflight query requests in ingester.",
		}, func() float64 { return float64(max(l.maxQueries.Load(), l.maxQueriesBefore.Load())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cortex_ingester_inflight_push_requests",
			Help: "Current number of inflight push requests in ingester.",
		}, func() float64 { return float64(l.inflightPushes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cortex_ingester_ingestion_rate_samples_per_second",
			Help: "Current ingestion rate in samples/sec that ingester is using to limit access.",
		}, func() float64 { return l.rate.rate() }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// limits are the limits in force: the runtime configuration's, or the flags'.
func (l *instanceLimiter) limits() *InstanceLimits {
	if l.current != nil {
		if c := l.current(); c != nil {
			return c
		}
	}
	return &l.defaults
}

// admitPush counts a push in flight and refuses it over the in-flight or
// rate limit; the caller calls done when the push is over. Refusals are
// Unavailable: another ingester, or a later retry, can take the samples.
func (l *instanceLimiter) admitPush() (done func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	n := l.inflightPushes.Add(1)
	done = func() { l.inflightPushes.Add(-1) }
	lim := l.limits()
	if lim.MaxInflightPushRequests > 0 && n > lim.MaxInflightPushRequests {
		done()
		return nil, status.Error(codes.Unavailable, errMaxInflightPushes.Error())
	}
	if lim.MaxIngestionRate > 0 && l.rate.rate() >= lim.MaxIngestionRate {
		done()
		return nil, status.Error(codes.Unavailable, errMaxIngestionRate.Error())
	}
	return done, nil
}

// admitQuery counts a query in flight and refuses it over the in-flight
// limit; the caller calls done when the query is over.
func (l *instanceLimiter) admitQuery() (done func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	n := l.inflightQueries.Add(1)
	done = func() { l.inflightQueries.Add(-1) }
	if lim := l.limits().MaxInflightQueryRequests; lim > 0 && n > lim {
		done()
		return nil, status.Error(codes.Unavailable, errMaxInflightQueries.Error())
	}
	for {
		m := l.maxQueries.Load()
		if n <= m || l.maxQueries.CompareAndSwap(m, n) {
			break
		}
	}
	return done, nil
}

// admitTenant refuses a new tenant's TSDB when open already holds the most.
func (l *instanceLimiter) admitTenant(open int) error {
	if l == nil {
		return nil
	}
	if max := l.limits().MaxInMemoryTenants; max > 0 && int64(open) >= max {
		return status.Error(codes.Unavailable, errMaxTenants.Error())
	}
	return nil
}

// admitSeries refuses a new series when the ingester holds the most.
func (l *instanceLimiter) admitSeries() error {
	if l == nil {
		return nil
	}
	if max := l.limits().MaxInMemorySeries; max > 0 && l.series.Load() >= max {
		return errMaxSeries
	}
	return nil
}

func (l *instanceLimiter) seriesAdded(n int) {
	if l != nil {
		l.series.Add(int64(n))
	}
}

func (l *instanceLimiter) samplesIngested(n int) {
	if l != nil {
		l.rate.add(int64(n))
	}
}

// maxQueriesPeriod is how long cortex_ingester_max_inflight_query_requests
// remembers a peak: between one and two of these.
const maxQueriesPeriod = time.Minute

func (l *instanceLimiter) tick() {
	if l == nil {
		return
	}
	l.rate.tick()
	if time.Since(l.maxQueriesReset) >= maxQueriesPeriod {
		l.maxQueriesReset = time.Now()
		l.maxQueriesBefore.Store(l.maxQueries.Swap(l.inflightQueries.Load()))
	}
}
