package resource

import (
	"flag"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func testMonitor(t *testing.T, cfg Config) (m *Monitor, now *time.Time, cpu *float64) {
	t.Helper()
	old := debug.SetMemoryLimit(1 << 30)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	m, err := NewMonitor(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock, seconds := time.Unix(1_700_000_000, 0), 0.0
	m.now = func() time.Time { return clock }
	m.cpuTime = func() float64 { return seconds }
	return m, &clock, &seconds
}

func TestFlagsAndValidation(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Resources) != 0 || cfg.Interval != 100*time.Millisecond || cfg.CPURateInterval != time.Minute {
		t.Fatalf("defaults %v %s %s, want Cortex's: none, 100ms, 1m", cfg.Resources, cfg.Interval, cfg.CPURateInterval)
	}
	if m, err := NewMonitor(cfg, nil); m != nil || err != nil {
		t.Fatalf("no resources: monitor %v, error %v; want none", m, err)
	}
	if err := fs.Parse([]string{"-resource-monitor.resources=cpu,disk"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || err.Error() != `-resource-monitor.resources: unknown resource "disk" (the resources are cpu and heap)` {
		t.Fatalf("unknown resource: %v", err)
	}
	cfg.Resources = []string{Heap}
	old := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	if _, err := NewMonitor(cfg, nil); err == nil || !strings.Contains(err.Error(), "GOMEMLIMIT") {
		t.Fatalf("heap without a memory limit: %v, want an error naming GOMEMLIMIT", err)
	}
}

// The CPU rate spans the samples of the rate interval, taken at most every
// interval, divided by GOMAXPROCS.
func TestCPUUtilization(t *testing.T) {
	m, now, cpu := testMonitor(t, Config{Resources: []string{CPU}, Interval: time.Second, CPURateInterval: 10 * time.Second})
	m.cpus = 2
	if u := m.CPUUtilization(); u != 0 {
		t.Fatalf("one sample: %v, want 0", u)
	}
	// 1.5 CPU seconds per second on 2 CPUs.
	for range 5 {
		*now = now.Add(time.Second)
		*cpu += 1.5
	}
	if u := m.CPUUtilization(); u != 0.75 {
		t.Fatalf("after 5s at 1.5 CPUs: %v, want 0.75", u)
	}
	// Within the interval no sample is taken: the value stays.
	*now = now.Add(500 * time.Millisecond)
	*cpu += 10
	if u := m.CPUUtilization(); u != 0.75 {
		t.Fatalf("within the interval: %v, want the last value, 0.75", u)
	}
	// Samples older than the window leave it: from t+5.5 to t+16, 1s idle
	// at a time, the CPU seconds at t+5.5 (17.5) and t+16 (17.5) are equal.
	for range 21 {
		*now = now.Add(500 * time.Millisecond)
		m.CPUUtilization()
	}
	if u := m.CPUUtilization(); u != 0 {
		t.Fatalf("after a window with no CPU used: %v, want 0", u)
	}
}

func TestHeapUtilizationAndMetric(t *testing.T) {
	m, _, _ := testMonitor(t, Config{Resources: []string{CPU, Heap}, Interval: time.Second, CPURateInterval: time.Minute})
	m.heap = func() float64 { return 1 << 29 }
	if u := m.HeapUtilization(); u != 0.5 {
		t.Fatalf("heap utilization %v, want 0.5 (512MiB of 1GiB)", u)
	}
	reg := prometheus.NewPedanticRegistry()
	old := debug.SetMemoryLimit(1 << 30)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	if _, err := NewMonitor(Config{Resources: []string{CPU, Heap}, Interval: time.Second, CPURateInterval: time.Minute}, reg); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "cortex_resource_utilization"); err != nil || n != 2 {
		t.Fatalf("cortex_resource_utilization: %d series, %v; want cpu and heap", n, err)
	}
}
