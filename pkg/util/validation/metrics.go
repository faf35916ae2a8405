package validation

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// RateLimited is the discard reason of data refused by the ingestion rate limit.
const RateLimited = "rate_limited"

// DiscardedSamples returns cortex_discarded_samples_total{reason,user}. The
// distributor and the ingester both count into it and may share one
// registry (-target=all), so the second caller gets the first's collector
// instead of a duplicate-registration panic.
func DiscardedSamples(reg prometheus.Registerer) *prometheus.CounterVec {
	return discarded(reg, "cortex_discarded_samples_total", "The total number of samples that were discarded.")
}

// DiscardedExemplars returns cortex_discarded_exemplars_total{reason,user}, shared as DiscardedSamples is.
func DiscardedExemplars(reg prometheus.Registerer) *prometheus.CounterVec {
	return discarded(reg, "cortex_discarded_exemplars_total", "The total number of exemplars that were discarded.")
}

// DiscardedMetadata returns cortex_discarded_metadata_total{reason,user}, shared as DiscardedSamples is.
func DiscardedMetadata(reg prometheus.Registerer) *prometheus.CounterVec {
	return discarded(reg, "cortex_discarded_metadata_total", "The total number of metadata that were discarded.")
}

func discarded(reg prometheus.Registerer, name, help string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"reason", "user"})
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		panic(err) // same name with other labels or help: a programming error
	}
	return c
}
