package validation

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The distributor and the ingester share one registry in -target=all: both
// get the same counter instead of a duplicate-registration panic.
func TestDiscardedSharedOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := DiscardedSamples(reg), DiscardedSamples(reg)
	a.WithLabelValues("label_invalid", "t").Inc()
	b.WithLabelValues("label_invalid", "t").Inc()
	if got := testutil.ToFloat64(a.WithLabelValues("label_invalid", "t")); got != 2 {
		t.Fatalf("shared counter = %v, want 2", got)
	}
	DiscardedExemplars(reg)
	DiscardedMetadata(reg)
	if n, err := testutil.GatherAndCount(reg, "cortex_discarded_samples_total"); err != nil || n != 1 {
		t.Fatalf("series = %d, %v", n, err)
	}
	if DiscardedSamples(nil) == nil {
		t.Fatal("nil registerer")
	}
}
