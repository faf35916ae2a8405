package ingester

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/util/resource"
)

// burnCPU spins for d of wall-clock time, using CPU all along.
func burnCPU(d time.Duration) {
	start := time.Now()
	x := 0
	for time.Since(start) < d {
		x++
	}
	_ = x
}

// Over -ingester.query-protection.rejection.threshold.cpu-utilization the
// ingester refuses reads with Unavailable, naming the flag; pushes go on.
func TestCPUProtectionRefusesQueries(t *testing.T) {
	mon, err := resource.NewMonitor(resource.Config{Resources: []string{resource.CPU}, Interval: time.Millisecond, CPURateInterval: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, t.TempDir(), newKV(t))
	// Any CPU used at all is over a millionth of a millionth.
	cfg.QueryProtection.Rejection.Threshold.CPUUtilization = 1e-12
	h := startHarness(t, cfg, newTestLimits(t, nil), WithResourceMonitor(mon))
	mon.CPUUtilization() // the rate's first sample
	h.mustPush("team-a", floats(series("up", "job", "a"), float64(base), 1))
	burnCPU(20 * time.Millisecond)

	_, err = h.conn.LabelNames(ctxFor("team-a"), &client.LabelNamesRequest{EndMs: base + 1})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "cpu utilization limit reached") || !strings.Contains(err.Error(), "-ingester.query-protection.rejection.threshold.cpu-utilization") {
		t.Fatalf("label names over the CPU threshold: %v, want Unavailable naming the flag", err)
	}
	s, err := h.conn.QueryStream(ctxFor("team-a"), &prompb.Query{EndTimestampMs: base + 1, Matchers: []*prompb.LabelMatcher{eq("__name__", "up")}})
	if err == nil {
		err = drain(s.Recv)
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("query over the CPU threshold: %v, want Unavailable", err)
	}
	h.mustPush("team-a", floats(series("up", "job", "a"), float64(base+1000), 1))

	// Without cpu among the monitored resources the ingester does not start.
	cfg.QueryProtection.Rejection.Threshold.CPUUtilization = 0.9
	if _, err := New(cfg, ringStoreOf(cfg), newTestLimits(t, nil).overridesFor(), nil, nil); err == nil || !strings.Contains(err.Error(), "add cpu to -resource-monitor.resources") {
		t.Fatalf("no monitor: %v", err)
	}
}
