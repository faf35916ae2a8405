// Package queryprotection refuses new queries while the process's heap is
// close to its memory limit, or its CPU close to saturation, as Cortex's
// -<component>.query-protection.rejection.threshold.heap-utilization and
// cpu-utilization do. Of the heap:
// a query admitted then would push the process past GOMEMLIMIT into
// garbage-collection thrash or the kernel's OOM killer, taking every
// tenant's queries (and, on an ingester, its writes) down with it.
//
// Utilization is the heap's object bytes (runtime/metrics
// /memory/classes/heap/objects:bytes: live objects and those not yet swept)
// divided by the Go runtime's memory limit (GOMEMLIMIT, or
// debug.SetMemoryLimit). It is read at each admission, which costs a few
// hundred nanoseconds and no stop of the world. The CPU's utilization is
// the resource monitor's (pkg/util/resource, -resource-monitor.*), which
// must then monitor cpu.
package queryprotection

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/resource"
)

// heapObjectsMetric is the runtime/metrics sample read as the heap in use.
const heapObjectsMetric = "/memory/classes/heap/objects:bytes"

// Config is Cortex's query_protection block of a component.
type Config struct {
	Rejection Rejection `yaml:"rejection"`
}

// Rejection configures when new queries are refused.
type Rejection struct {
	Threshold Threshold `yaml:"threshold"`
}

// Threshold holds the utilizations, between 0 and 1, at which queries are
// refused; 0 turns a check off.
type Threshold struct {
	CPUUtilization  float64 `yaml:"cpu_utilization"`
	HeapUtilization float64 `yaml:"heap_utilization"`
}

// flagName is the heap threshold's flag under prefix ("querier.",
// "ingester.").
func flagName(prefix string) string {
	return prefix + "query-protection.rejection.threshold.heap-utilization"
}

// cpuFlagName is the CPU threshold's flag under prefix.
func cpuFlagName(prefix string) string {
	return prefix + "query-protection.rejection.threshold.cpu-utilization"
}

// RegisterCPUFlagWithPrefix registers
// -<prefix>query-protection.rejection.threshold.cpu-utilization, which
// Cortex has for the ingesters and store-gateways.
func (c *Config) RegisterCPUFlagWithPrefix(f *flag.FlagSet, prefix, component string) {
	f.Float64Var(&c.Rejection.Threshold.CPUUtilization, cpuFlagName(prefix), 0, "CPU utilization, between 0 and 1, at which this "+component+" refuses new queries (of every tenant): the process's CPU seconds per second over -resource-monitor.cpu-rate-interval divided by GOMAXPROCS, which needs -resource-monitor.resources to include cpu. 0 disables.")
}

// RegisterFlagsWithPrefix registers
// -<prefix>query-protection.rejection.threshold.heap-utilization.
func (c *Config) RegisterFlagsWithPrefix(f *flag.FlagSet, prefix, component string) {
	f.Float64Var(&c.Rejection.Threshold.HeapUtilization, flagName(prefix), 0, "Heap utilization, between 0 and 1, at which this "+component+" refuses new queries (of every tenant): the heap's object bytes divided by the Go memory limit, which must then be set (GOMEMLIMIT). 0 disables.")
}

// Validate checks the threshold's range; prefix names its flag.
func (c *Config) Validate(prefix string) error {
	if h := c.Rejection.Threshold.HeapUtilization; h < 0 || h > 1 || math.IsNaN(h) {
		return fmt.Errorf("-%s must be between 0 and 1 (0 disables), got %v", flagName(prefix), h)
	}
	if u := c.Rejection.Threshold.CPUUtilization; u < 0 || u > 1 || math.IsNaN(u) {
		return fmt.Errorf("-%s must be between 0 and 1 (0 disables), got %v", cpuFlagName(prefix), u)
	}
	return nil
}

// Guard admits or refuses queries by heap and CPU utilization. A nil Guard
// admits every query.
type Guard struct {
	flag      string
	threshold float64 // of the heap; 0: not checked
	limit     float64
	heap      func() uint64

	cpuFlag      string
	cpuThreshold float64 // 0: not checked
	cpu          func() float64
	cpuWindow    time.Duration
	cpus         int

	mu     sync.Mutex
	sample []metrics.Sample

	rejected, cpuRejected prometheus.Counter
}

// ErrHeapUtilization and ErrCPUUtilization are what a refused query's
// error wraps.
var (
	ErrHeapUtilization = errors.New("heap utilization limit reached")
	ErrCPUUtilization  = errors.New("cpu utilization limit reached")
)

// RejectedError is a query refused for the heap's, or the CPU's,
// utilization. It is transient: the same query may succeed once the heap
// has shrunk or the load dropped, so the HTTP API answers 503 and the gRPC
// status is Unavailable.
type RejectedError struct {
	Flag                   string
	Utilization, Threshold float64
	HeapBytes, LimitBytes  uint64
	// CPU is set for a refusal by CPU utilization, over Window, of CPUs
	// (GOMAXPROCS).
	CPU    bool
	Window time.Duration
	CPUs   int
}

func (e *RejectedError) Error() string {
	if e.CPU {
		return fmt.Sprintf("%s: the process used %.1f%% of its %d CPUs (GOMAXPROCS) over the last %s, at or above the threshold of %.1f%% set by -%s: the query is refused until the load drops; retry later",
			ErrCPUUtilization, 100*e.Utilization, e.CPUs, e.Window, 100*e.Threshold, e.Flag)
	}
	return fmt.Sprintf("%s: the heap holds %d bytes, %.1f%% of the memory limit of %d bytes (GOMEMLIMIT), at or above the threshold of %.1f%% set by -%s: the query is refused until the heap shrinks; retry later",
		ErrHeapUtilization, e.HeapBytes, 100*e.Utilization, e.LimitBytes, 100*e.Threshold, e.Flag)
}

func (e *RejectedError) Unwrap() error {
	if e.CPU {
		return ErrCPUUtilization
	}
	return ErrHeapUtilization
}

// HTTPStatus is the HTTP status of the refusal: 503, retry later.
func (e *RejectedError) HTTPStatus() int { return 503 }

// ErrorType is the Prometheus API errorType of the refusal.
func (e *RejectedError) ErrorType() string { return "unavailable" }

// NewGuard returns the guard of cfg for component ("querier", "ingester"),
// whose flags are under prefix, or nil when the thresholds are 0. A heap
// threshold without a Go memory limit is an error: utilization would have
// no denominator. reg may be nil.
func NewGuard(cfg Config, prefix, component string, reg prometheus.Registerer) (*Guard, error) {
	return NewGuardWithMonitor(cfg, prefix, component, nil, reg)
}

// NewGuardWithMonitor is NewGuard with the CPU threshold checked against
// the resource monitor mon, which must monitor cpu when the threshold is
// set.
func NewGuardWithMonitor(cfg Config, prefix, component string, mon *resource.Monitor, reg prometheus.Registerer) (*Guard, error) {
	if err := cfg.Validate(prefix); err != nil {
		return nil, err
	}
	g, err := newHeapGuard(cfg, prefix, component, reg)
	if err != nil {
		return nil, err
	}
	cpu := cfg.Rejection.Threshold.CPUUtilization
	if cpu == 0 {
		return g, nil
	}
	if !mon.Monitors(resource.CPU) {
		return nil, fmt.Errorf("-%s=%v needs the resource monitor to measure the CPU: add cpu to -resource-monitor.resources", cpuFlagName(prefix), cpu)
	}
	if g == nil {
		g = &Guard{}
	}
	g.cpuFlag, g.cpuThreshold, g.cpu = cpuFlagName(prefix), cpu, mon.CPUUtilization
	g.cpuWindow, g.cpus = mon.CPURateInterval(), runtime.GOMAXPROCS(0)
	if reg != nil {
		labels := prometheus.Labels{"component": component, "resource": resource.CPU}
		limitGauge := prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "cortex_resource_based_limiter_limit",
			Help:        "Utilization of the resource at which new queries are refused.",
			ConstLabels: labels,
		})
		limitGauge.Set(cpu)
		g.cpuRejected = prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "cortex_resource_based_limiter_throttled_total",
			Help:        "Queries refused because the resource's utilization reached its limit.",
			ConstLabels: labels,
		})
		for _, c := range []prometheus.Collector{limitGauge, g.cpuRejected} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering the %s's CPU protection metrics: %w", component, err)
			}
		}
	}
	return g, nil
}

// newHeapGuard returns the guard of cfg's heap threshold, nil when it is 0.
func newHeapGuard(cfg Config, prefix, component string, reg prometheus.Registerer) (*Guard, error) {
	threshold := cfg.Rejection.Threshold.HeapUtilization
	if threshold == 0 {
		return nil, nil
	}
	limit := debug.SetMemoryLimit(-1)
	if limit <= 0 || limit == math.MaxInt64 {
		return nil, fmt.Errorf("-%s=%v needs a Go memory limit to measure utilization against: set the GOMEMLIMIT environment variable (for example GOMEMLIMIT=3GiB, somewhat below the container's memory limit)", flagName(prefix), threshold)
	}
	g := newGuard(flagName(prefix), threshold, uint64(limit), nil)
	if reg != nil {
		labels := prometheus.Labels{"component": component, "resource": "heap"}
		limitGauge := prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "cortex_resource_based_limiter_limit",
			Help:        "Utilization of the resource at which new queries are refused.",
			ConstLabels: labels,
		})
		limitGauge.Set(threshold)
		g.rejected = prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "cortex_resource_based_limiter_throttled_total",
			Help:        "Queries refused because the resource's utilization reached its limit.",
			ConstLabels: labels,
		})
		for _, c := range []prometheus.Collector{limitGauge, g.rejected} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering the %s's heap protection metrics: %w", component, err)
			}
		}
	}
	return g, nil
}

// newGuard returns a guard reading the heap with heap, or from the runtime
// when heap is nil.
func newGuard(flag string, threshold float64, limit uint64, heap func() uint64) *Guard {
	g := &Guard{flag: flag, threshold: threshold, limit: float64(limit), heap: heap}
	if g.heap == nil {
		g.sample = []metrics.Sample{{Name: heapObjectsMetric}}
		g.heap = g.readRuntime
	}
	return g
}

func (g *Guard) readRuntime() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	metrics.Read(g.sample)
	if g.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return g.sample[0].Value.Uint64()
}

// Admit returns nil when a new query may start, and a *RejectedError when
// the heap's or the CPU's utilization is at or above its threshold.
func (g *Guard) Admit() error {
	if g == nil {
		return nil
	}
	if g.cpuThreshold > 0 {
		if util := g.cpu(); util >= g.cpuThreshold {
			if g.cpuRejected != nil {
				g.cpuRejected.Inc()
			}
			return &RejectedError{Flag: g.cpuFlag, Utilization: util, Threshold: g.cpuThreshold, CPU: true, Window: g.cpuWindow, CPUs: g.cpus}
		}
	}
	if g.threshold == 0 {
		return nil
	}
	heap := g.heap()
	util := float64(heap) / g.limit
	if util < g.threshold {
		return nil
	}
	if g.rejected != nil {
		g.rejected.Inc()
	}
	return &RejectedError{Flag: g.flag, Utilization: util, Threshold: g.threshold, HeapBytes: heap, LimitBytes: uint64(g.limit)}
}
