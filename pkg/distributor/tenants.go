package distributor

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// tenantIdleTimeout is how long a tenant that stopped pushing keeps its
// rate limiter, its per-tenant metrics and its place on
// /distributor/all_user_stats.
const tenantIdleTimeout = time.Hour

// tenantState is what the distributor keeps per tenant. Its counters are
// resolved once, not looked up by label on every request.
type tenantState struct {
	limiter  atomic.Pointer[rate.Limiter] // replaced when the limits change
	rate     float64                      // rate and burst of limiter; guarded by tenants.mu
	burst    int
	lastSeen time.Time // guarded by tenants.mu

	// histogramLimiter is -distributor.native-histogram-ingestion-rate-limit's,
	// kept as limiter is.
	histogramLimiter atomic.Pointer[rate.Limiter]
	histogramRate    float64
	histogramBurst   int

	samplesIn, exemplarsIn, metadataIn prometheus.Counter
	samples, exemplars, metadata       prometheus.Counter
	latestSeen                         prometheus.Gauge
}

type tenants struct {
	mu sync.Mutex
	m  map[string]*tenantState
}

// get returns the state of a tenant, its rate limiter following the
// tenant's current limits.
func (d *Distributor) tenant(id string, l *validation.Limits, now time.Time) *tenantState {
	d.tenants.mu.Lock()
	defer d.tenants.mu.Unlock()
	s, ok := d.tenants.m[id]
	if !ok {
		s = &tenantState{
			samplesIn:   d.metrics.samplesIn.WithLabelValues(id),
			exemplarsIn: d.metrics.exemplarsIn.WithLabelValues(id),
			metadataIn:  d.metrics.metadataIn.WithLabelValues(id),
			samples:     d.metrics.receivedSamples.WithLabelValues(id),
			exemplars:   d.metrics.receivedExemplars.WithLabelValues(id),
			metadata:    d.metrics.receivedMetadata.WithLabelValues(id),
			latestSeen:  d.metrics.latestSeen.WithLabelValues(id),
		}
		d.tenants.m[id] = s
	}
	r := d.localRate(l.IngestionRate)
	if s.limiter.Load() == nil || s.rate != r || s.burst != l.IngestionBurstSize {
		// Changed limits start a full bucket: an operator raising a
		// tenant's limit wants it to apply now, not once the old rate
		// refilled the bucket.
		s.limiter.Store(rate.NewLimiter(limitOf(r), l.IngestionBurstSize))
		s.rate, s.burst = r, l.IngestionBurstSize
	}
	if hr := d.localRate(l.NativeHistogramIngestionRate); s.histogramLimiter.Load() == nil || s.histogramRate != hr || s.histogramBurst != l.NativeHistogramIngestionBurstSize {
		s.histogramLimiter.Store(rate.NewLimiter(rate.Limit(hr), l.NativeHistogramIngestionBurstSize))
		s.histogramRate, s.histogramBurst = hr, l.NativeHistogramIngestionBurstSize
	}
	s.lastSeen = now
	return s
}

// localRate is this distributor's share of a tenant's rate limit: all of
// it with the local strategy, the limit divided by the healthy
// distributors of the ring with the global one, as in Cortex. An unlimited
// rate (0 for the ingestion rate, the largest float for the native
// histogram rate) stays unlimited.
func (d *Distributor) localRate(r float64) float64 {
	if d.distributors == nil || r <= 0 || r == math.MaxFloat64 {
		return r
	}
	n := d.distributors.HealthyInstancesCount()
	if n <= 0 {
		return r
	}
	return r / float64(n)
}

// limitOf is the limiter rate of -distributor.ingestion-rate-limit: 0
// means no limit (the limits refuse negative values).
func limitOf(r float64) rate.Limit {
	if r <= 0 {
		return rate.Inf
	}
	return rate.Limit(r)
}

// allow takes n tokens from the tenant's bucket, or answers how long to
// wait before a request of that size could pass.
func (s *tenantState) allow(now time.Time, n int) (bool, time.Duration) {
	return allowN(s.limiter.Load(), now, n)
}

// allowHistograms takes n tokens from the tenant's native histogram bucket.
func (s *tenantState) allowHistograms(now time.Time, n int) (bool, time.Duration) {
	return allowN(s.histogramLimiter.Load(), now, n)
}

func allowN(lim *rate.Limiter, now time.Time, n int) (bool, time.Duration) {
	if lim.Limit() == rate.Inf {
		return true, 0
	}
	r := lim.ReserveN(now, n)
	if !r.OK() {
		// Larger than the burst: it can never pass whole. Suggest the
		// time the bucket takes to refill.
		return false, time.Duration(float64(lim.Burst()) / math.Max(float64(lim.Limit()), 1) * float64(time.Second))
	}
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

// evictIdle forgets tenants idle for tenantIdleTimeout, with their
// per-tenant metrics, so that tenants that come and go do not accumulate.
func (d *Distributor) evictIdle(now time.Time) {
	d.tenants.mu.Lock()
	var idle []string
	for id, s := range d.tenants.m {
		if now.Sub(s.lastSeen) > tenantIdleTimeout {
			idle = append(idle, id)
			delete(d.tenants.m, id)
		}
	}
	d.tenants.mu.Unlock()
	for _, id := range idle {
		for _, v := range []*prometheus.CounterVec{d.metrics.samplesIn, d.metrics.exemplarsIn, d.metrics.metadataIn, d.metrics.receivedSamples, d.metrics.receivedExemplars, d.metrics.receivedMetadata, d.metrics.reducedResolution} {
			v.DeleteLabelValues(id)
		}
		d.metrics.latestSeen.DeleteLabelValues(id)
	}
}

// seenTenants lists the tenants that pushed recently, sorted.
func (d *Distributor) seenTenants() []string {
	d.tenants.mu.Lock()
	ids := make([]string, 0, len(d.tenants.m))
	for id := range d.tenants.m {
		ids = append(ids, id)
	}
	d.tenants.mu.Unlock()
	slices.Sort(ids)
	return ids
}
