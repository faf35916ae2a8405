package queryprotection

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/resource"
)

func TestCPUGuard(t *testing.T) {
	util := 0.5
	g := &Guard{cpuFlag: cpuFlagName("ingester."), cpuThreshold: 0.8, cpu: func() float64 { return util }, cpuWindow: time.Minute, cpus: 2}
	if err := g.Admit(); err != nil {
		t.Fatalf("at 50%% of a threshold of 80%%: %v", err)
	}
	util = 0.85
	err := g.Admit()
	var re *RejectedError
	if !errors.As(err, &re) || !errors.Is(err, ErrCPUUtilization) || re.HTTPStatus() != 503 {
		t.Fatalf("at 85%%: %v, want a 503 RejectedError wrapping ErrCPUUtilization", err)
	}
	want := "cpu utilization limit reached: the process used 85.0% of its 2 CPUs (GOMAXPROCS) over the last 1m0s, at or above the threshold of 80.0% set by -ingester.query-protection.rejection.threshold.cpu-utilization"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q, want it to start with %q", err, want)
	}
}

func TestCPUThresholdNeedsTheMonitor(t *testing.T) {
	cfg := Config{Rejection: Rejection{Threshold: Threshold{CPUUtilization: 0.8}}}
	_, err := NewGuardWithMonitor(cfg, "store-gateway.", "store-gateway", nil, nil)
	if err == nil || err.Error() != "-store-gateway.query-protection.rejection.threshold.cpu-utilization=0.8 needs the resource monitor to measure the CPU: add cpu to -resource-monitor.resources" {
		t.Fatalf("no monitor: %v", err)
	}
	mon, err := resource.NewMonitor(resource.Config{Resources: []string{resource.CPU}, Interval: time.Millisecond, CPURateInterval: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGuardWithMonitor(cfg, "store-gateway.", "store-gateway", mon, nil)
	if err != nil || g == nil {
		t.Fatalf("with the monitor: guard %v, %v", g, err)
	}
	cfg.Rejection.Threshold.CPUUtilization = 1.2
	if err := cfg.Validate("store-gateway."); err == nil || !strings.Contains(err.Error(), "-store-gateway.query-protection.rejection.threshold.cpu-utilization must be between 0 and 1") {
		t.Fatalf("threshold 1.2: %v", err)
	}
}
