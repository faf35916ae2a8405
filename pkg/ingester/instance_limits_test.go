package ingester

import (
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestInstanceLimitsMaxSeriesAndTenantsFromFlagsThenRuntime(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.InstanceLimits.MaxInMemorySeries = 2
	cfg.InstanceLimits.MaxInMemoryTenants = 1
	var runtime atomic.Pointer[InstanceLimits]
	h := startHarness(t, cfg, newTestLimits(t, nil), WithInstanceLimits(runtime.Load))

	h.mustPush("a", floats(series("s1"), float64(base), 1), floats(series("s2"), float64(base), 2))
	err := h.push("a", floats(series("s3"), float64(base), 3))
	if !strings.Contains(status.Convert(err).Message(), "max series limit reached (-ingester.instance-limits.max-series)") {
		t.Errorf("third series over -ingester.instance-limits.max-series=2: %v", err)
	}
	err = h.push("b", floats(series("s1"), float64(base), 1))
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "max tenants limit reached (-ingester.instance-limits.max-tenants)") {
		t.Errorf("second tenant over -ingester.instance-limits.max-tenants=1: %v", err)
	}
	// Samples of existing series still go in.
	h.mustPush("a", floats(series("s1"), float64(base+1), 4))

	// The runtime configuration's ingester_limits replace the flags' at once.
	runtime.Store(&InstanceLimits{MaxInMemorySeries: 10, MaxInMemoryTenants: 2})
	h.mustPush("a", floats(series("s3"), float64(base), 3))
	h.mustPush("b", floats(series("s1"), float64(base), 1))
	if got := h.ing.instance.series.Load(); got != 4 {
		t.Errorf("instance series count %d, want 4", got)
	}
}

func TestInstanceLimitsInflightPushes(t *testing.T) {
	l, err := newInstanceLimiter(InstanceLimits{MaxInflightPushRequests: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := l.admitPush()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.admitPush(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "too many inflight push requests in ingester (-ingester.instance-limits.max-inflight-push-requests)") {
		t.Errorf("second push in flight: %v", err)
	}
	done()
	done2, err := l.admitPush()
	if err != nil {
		t.Errorf("push after the first ended: %v", err)
	} else {
		done2()
	}
	if n := l.inflightPushes.Load(); n != 0 {
		t.Errorf("%d pushes counted in flight after all ended", n)
	}
}

func TestInstanceLimitsIngestionRate(t *testing.T) {
	l, err := newInstanceLimiter(InstanceLimits{MaxIngestionRate: 100}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.samplesIngested(500)
	if _, err := l.admitPush(); err != nil {
		t.Fatalf("before the rate is first computed: %v", err)
	}
	l.tick() // 500 samples in one second
	if _, err := l.admitPush(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "-ingester.instance-limits.max-ingestion-rate") {
		t.Errorf("at 500 samples/s over a limit of 100: %v", err)
	}
}

func TestInstanceLimitsValidate(t *testing.T) {
	l := InstanceLimits{MaxInMemorySeries: -1}
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "max_series (-ingester.instance-limits.max-series) must not be negative") {
		t.Errorf("Validate: %v", err)
	}
}
