// Package resource measures the process's CPU and heap utilization, as
// Cortex's resource monitor (-resource-monitor.*) does, for the query
// protection of the ingesters and store-gateways: CPU is the process's CPU
// time per second over -resource-monitor.cpu-rate-interval, divided by
// GOMAXPROCS; heap is the heap's object bytes divided by the Go memory
// limit (GOMEMLIMIT).
//
// The monitor samples when read, at most every -resource-monitor.interval,
// rather than on a goroutine of its own: it reads nothing while nothing asks
// (no query, no scrape), and needs no service of its own in the process.
// After such a pause the CPU rate spans from the last sample before it.
package resource

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
)

// The resources a monitor can measure, as Cortex names them.
const (
	CPU  = "cpu"
	Heap = "heap"
)

// Config is Cortex's resource_monitor block.
type Config struct {
	Resources       flagext.StringSliceCSV `yaml:"resources"`
	Interval        time.Duration          `yaml:"interval"`
	CPURateInterval time.Duration          `yaml:"cpu_rate_interval"`
}

// RegisterFlags registers -resource-monitor.*.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Var(&c.Resources, "resource-monitor.resources", "Comma-separated resources to monitor for query protection: cpu, heap. Heap needs a Go memory limit (GOMEMLIMIT). Utilization is exported as cortex_resource_utilization{resource}.")
	f.DurationVar(&c.Interval, "resource-monitor.interval", 100*time.Millisecond, "Shortest time between two samples of the monitored resources: they are sampled when a query's admission or a scrape reads them, at most this often.")
	f.DurationVar(&c.CPURateInterval, "resource-monitor.cpu-rate-interval", time.Minute, "Window over which the CPU utilization is averaged.")
}

// Validate checks the resources and durations.
func (c *Config) Validate() error {
	for _, r := range c.Resources {
		if r != CPU && r != Heap {
			return fmt.Errorf("-resource-monitor.resources: unknown resource %q (the resources are cpu and heap)", r)
		}
	}
	if c.Interval <= 0 || c.CPURateInterval < c.Interval {
		return fmt.Errorf("-resource-monitor.interval (%s) must be positive and -resource-monitor.cpu-rate-interval (%s) at least as long", c.Interval, c.CPURateInterval)
	}
	return nil
}

// Monitors reports whether c monitors resource.
func (c *Config) Monitors(resource string) bool { return slices.Contains(c.Resources, resource) }

// Monitor measures the resources of its Config. Its methods accept a nil
// receiver, which measures nothing.
type Monitor struct {
	cfg      Config
	cpus     float64
	memLimit float64
	now      func() time.Time
	cpuTime  func() float64 // seconds
	heap     func() float64 // bytes

	mu      sync.Mutex
	samples []cpuSample // oldest first, spanning the rate interval
	heapAt  time.Time
	heapVal float64
	heapBuf []metrics.Sample
}

type cpuSample struct {
	at  time.Time
	cpu float64
}

// NewMonitor returns the monitor of cfg, or nil when it monitors nothing.
// reg may be nil.
func NewMonitor(cfg Config, reg prometheus.Registerer) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Resources) == 0 {
		return nil, nil
	}
	m := &Monitor{cfg: cfg, cpus: float64(runtime.GOMAXPROCS(0)), now: time.Now, cpuTime: processCPUSeconds}
	m.heapBuf = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	m.heap = m.readHeap
	if cfg.Monitors(Heap) {
		limit := debug.SetMemoryLimit(-1)
		if limit <= 0 || limit == math.MaxInt64 {
			return nil, errors.New("-resource-monitor.resources=heap needs a Go memory limit to measure utilization against: set the GOMEMLIMIT environment variable (for example GOMEMLIMIT=3GiB, somewhat below the container's memory limit)")
		}
		m.memLimit = float64(limit)
	}
	if reg != nil {
		for _, r := range cfg.Resources {
			get := m.CPUUtilization
			if r == Heap {
				get = m.HeapUtilization
			}
			if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "cortex_resource_utilization",
				Help:        "Utilization of the resource: CPU seconds per second over the CPU rate interval divided by GOMAXPROCS, or heap bytes divided by the Go memory limit.",
				ConstLabels: prometheus.Labels{"resource": r},
			}, get)); err != nil {
				return nil, fmt.Errorf("registering cortex_resource_utilization: %w", err)
			}
		}
	}
	return m, nil
}

// CPURateInterval is the window of CPUUtilization.
func (m *Monitor) CPURateInterval() time.Duration { return m.cfg.CPURateInterval }

// Monitors reports whether m measures resource.
func (m *Monitor) Monitors(resource string) bool { return m != nil && m.cfg.Monitors(resource) }

// CPUUtilization is the process's CPU time per second over the rate
// interval, divided by GOMAXPROCS; 0 until two samples are apart.
func (m *Monitor) CPUUtilization() float64 {
	if !m.Monitors(CPU) {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if n := len(m.samples); n == 0 || now.Sub(m.samples[n-1].at) >= m.cfg.Interval {
		m.samples = append(m.samples, cpuSample{at: now, cpu: m.cpuTime()})
	}
	// Keep one sample at or before the window's start as the rate's base.
	cut := 0
	for cut+1 < len(m.samples) && !m.samples[cut+1].at.After(now.Add(-m.cfg.CPURateInterval)) {
		cut++
	}
	m.samples = m.samples[cut:]
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0
	}
	return (last.cpu - first.cpu) / secs / m.cpus
}

// HeapUtilization is the heap's object bytes divided by the Go memory
// limit, sampled at most every interval.
func (m *Monitor) HeapUtilization() float64 {
	if !m.Monitors(Heap) {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if now := m.now(); m.heapAt.IsZero() || now.Sub(m.heapAt) >= m.cfg.Interval {
		m.heapAt, m.heapVal = now, m.heap()
	}
	return m.heapVal / m.memLimit
}

// readHeap reads the heap's object bytes; the caller holds mu.
func (m *Monitor) readHeap() float64 {
	metrics.Read(m.heapBuf)
	if m.heapBuf[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(m.heapBuf[0].Value.Uint64())
}

// processCPUSeconds is the user and system CPU time the process used.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
