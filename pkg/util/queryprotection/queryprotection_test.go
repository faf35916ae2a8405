package queryprotection

import (
	"errors"
	"flag"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func TestFlagAndValidation(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlagsWithPrefix(fs, "querier.", "querier")
	if err := fs.Parse([]string{"-querier.query-protection.rejection.threshold.heap-utilization=0.8"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Rejection.Threshold.HeapUtilization != 0.8 {
		t.Fatalf("threshold %v, want 0.8", cfg.Rejection.Threshold.HeapUtilization)
	}
	if err := cfg.Validate("querier."); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float64{-0.1, 1.5, math.NaN()} {
		cfg.Rejection.Threshold.HeapUtilization = bad
		err := cfg.Validate("ingester.")
		if err == nil || !strings.Contains(err.Error(), "-ingester.query-protection.rejection.threshold.heap-utilization must be between 0 and 1") {
			t.Errorf("threshold %v: %v, want an error naming the flag and the range", bad, err)
		}
	}
}

func TestNewGuardNeedsAMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })

	g, err := NewGuard(Config{}, "querier.", "querier", nil)
	if g != nil || err != nil {
		t.Fatalf("threshold 0: guard %v, error %v; want no guard", g, err)
	}
	cfg := Config{Rejection: Rejection{Threshold: Threshold{HeapUtilization: 0.9}}}
	_, err = NewGuard(cfg, "querier.", "querier", nil)
	if err == nil || !strings.Contains(err.Error(), "-querier.query-protection.rejection.threshold.heap-utilization=0.9 needs a Go memory limit") || !strings.Contains(err.Error(), "GOMEMLIMIT") {
		t.Fatalf("no memory limit: %v, want an error naming the flag and GOMEMLIMIT", err)
	}
}

func TestGuardAdmitsBelowTheThreshold(t *testing.T) {
	heap := uint64(0)
	g := newGuard("ingester.query-protection.rejection.threshold.heap-utilization", 0.8, 1000, func() uint64 { return heap })
	for _, h := range []uint64{0, 500, 799} {
		heap = h
		if err := g.Admit(); err != nil {
			t.Fatalf("heap %d of 1000: %v", h, err)
		}
	}
	heap = 800
	err := g.Admit()
	var re *RejectedError
	if !errors.As(err, &re) || !errors.Is(err, ErrHeapUtilization) {
		t.Fatalf("heap 800 of 1000: %v, want a RejectedError", err)
	}
	want := "heap utilization limit reached: the heap holds 800 bytes, 80.0% of the memory limit of 1000 bytes (GOMEMLIMIT), at or above the threshold of 80.0% set by -ingester.query-protection.rejection.threshold.heap-utilization"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q, want it to start with %q", err, want)
	}
	if re.HTTPStatus() != 503 || re.ErrorType() != "unavailable" {
		t.Fatalf("status %d %s, want 503 unavailable", re.HTTPStatus(), re.ErrorType())
	}
	var nilGuard *Guard
	if err := nilGuard.Admit(); err != nil {
		t.Fatalf("a nil guard refused: %v", err)
	}
}

// The guard reads the runtime's heap against debug.SetMemoryLimit, and
// counts its refusals.
func TestGuardReadsTheRuntimeHeap(t *testing.T) {
	old := debug.SetMemoryLimit(1 << 40)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	reg := prometheus.NewRegistry()
	// Any heap at all is over a millionth of a millionth of 1 TiB.
	cfg := Config{Rejection: Rejection{Threshold: Threshold{HeapUtilization: 1e-12}}}
	g, err := NewGuard(cfg, "querier.", "querier", reg)
	if err != nil {
		t.Fatal(err)
	}
	var re *RejectedError
	if err := g.Admit(); !errors.As(err, &re) || re.HeapBytes == 0 || re.LimitBytes != 1<<40 {
		t.Fatalf("Admit: %v (%+v), want a refusal reading a non-empty heap against 1 TiB", err, re)
	}
	if got := testkit.MetricSum(t, reg, "cortex_resource_based_limiter_throttled_total", "component", "querier", "resource", "heap"); got != 1 {
		t.Fatalf("throttled_total %v, want 1", got)
	}
	if got := testkit.MetricSum(t, reg, "cortex_resource_based_limiter_limit", "component", "querier"); got != 1e-12 {
		t.Fatalf("limit gauge %v, want 1e-12", got)
	}

	cfg.Rejection.Threshold.HeapUtilization = 0.99
	g, err = NewGuard(cfg, "ingester.", "ingester", prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Admit(); err != nil {
		t.Fatalf("99%% of 1 TiB: %v", err)
	}
}

// BenchmarkAdmit measures the check every query start pays: one read of
// the runtime's heap metric.
func BenchmarkAdmit(b *testing.B) {
	g := newGuard("querier.query-protection.rejection.threshold.heap-utilization", 0.99, 1<<40, nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Admit(); err != nil {
			b.Fatal(err)
		}
	}
}
