package storegateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// newLazyLoading returns the metrics of lazily loaded indexes, with
// Cortex's names.
func newLazyLoading(reg prometheus.Registerer) *lazyLoading {
	f := promauto.With(reg)
	return &lazyLoading{
		loads: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_bucket_store_indexheader_lazy_load_total",
			Help: "Total number of index-header lazy load operations.",
		}),
		loadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_bucket_store_indexheader_lazy_load_failed_total",
			Help: "Total number of failed index-header lazy load operations.",
		}),
		unloads: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_bucket_store_indexheader_lazy_unload_total",
			Help: "Total number of index-header lazy unload operations.",
		}),
		loadDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cortex_bucket_store_indexheader_lazy_load_duration_seconds",
			Help:    "Duration of the index-header lazy loading in seconds.",
			Buckets: []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5},
		}),
	}
}

// startIdleUnloading closes, every tenth of
// -blocks-storage.bucket-store.index-header-lazy-loading-idle-timeout (as
// Thanos checks), the indexes no query used for that long; a query opens
// them again.
func (s *BucketStore) startIdleUnloading() {
	timeout := s.cfg.IndexHeaderLazyLoadingIdleTimeout
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(timeout/10, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.unloadIdle(time.Now().Add(-timeout))
			}
		}
	}()
	s.stopIdle = func() {
		close(stop)
		<-done
	}
}

// unloadIdle closes the indexes unused since idleSince; only lazily
// loaded ones, which a query opens again.
func (s *BucketStore) unloadIdle(idleSince time.Time) {
	if !s.cfg.IndexHeaderLazyLoadingEnabled {
		return
	}
	s.mu.RLock()
	var blocks []*block
	for _, bs := range s.blocks {
		for _, b := range bs {
			blocks = append(blocks, b)
		}
	}
	s.mu.RUnlock()
	for _, b := range blocks {
		if _, err := b.unloadIfIdle(idleSince.UnixNano()); err != nil {
			s.logger.Warn("closing an idle block index", "user", b.tenant, "block", b.id.String(), "err", err)
		}
	}
}
