package ingester

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// cortex_ingester_active_series counts, per tenant, the series pushed to
// within -ingester.active-series-metrics-idle-timeout.
func TestActiveSeriesMetrics(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.ActiveSeriesMetricsUpdatePeriod = 50 * time.Millisecond
	h := startHarness(t, cfg, newTestLimits(t, nil))
	h.mustPush("team-a", floats(series("up", "job", "a"), float64(base), 1), floats(series("up", "job", "b"), float64(base), 1), floats(series("up", "job", "c"), float64(base), 1))
	h.mustPush("team-b", floats(series("up", "job", "a"), float64(base), 1))
	// A refused sample (out of order) does not make its series active.
	h.mustPush("team-b", floats(series("up", "job", "a"), float64(base+1000), 1))
	_ = h.push("team-b", floats(series("up", "job", "z"), float64(base-2*3600*1000), 1))

	gauge := func(user string) float64 { return testutil.ToFloat64(h.ing.metrics.activeSeries.WithLabelValues(user)) }
	testkit.Eventually(t, 5*time.Second, "the active series counted on the update period", func() bool {
		return gauge("team-a") == 3 && gauge("team-b") == 1
	})

	// Past the idle timeout nothing is active; a push makes its series
	// active again.
	h.ing.updateActiveSeries(time.Now().Add(cfg.ActiveSeriesMetricsIdleTimeout + time.Minute))
	if gauge("team-a") != 0 || gauge("team-b") != 0 {
		t.Fatalf("after the idle timeout: %v and %v active, want none", gauge("team-a"), gauge("team-b"))
	}
	h.mustPush("team-a", floats(series("up", "job", "a"), float64(base+60000), 1))
	h.ing.updateActiveSeries(time.Now())
	if gauge("team-a") != 1 {
		t.Fatalf("after a push to one series: %v active, want 1", gauge("team-a"))
	}
}

func TestActiveSeriesDisabled(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.ActiveSeriesMetricsEnabled = false
	h := startHarness(t, cfg, newTestLimits(t, nil))
	h.mustPush("team-a", floats(series("up", "job", "a"), float64(base), 1))
	h.ing.updateActiveSeries(time.Now())
	if n, err := testutil.GatherAndCount(h.reg, "cortex_ingester_active_series"); err != nil || n != 0 {
		t.Fatalf("cortex_ingester_active_series has %d series (%v), want none when disabled", n, err)
	}
	cfg.ActiveSeriesMetricsEnabled = true
	cfg.ActiveSeriesMetricsIdleTimeout = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-ingester.active-series-metrics-idle-timeout must be greater than 0") {
		t.Fatalf("idle timeout 0: %v", err)
	}
}

// The tracker's pages: native histogram series are told apart, series the
// head removed are forgotten, and a page left empty is freed.
func TestActiveSeriesTracker(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	a := newActiveSeries(start)
	a.mark(storage.SeriesRef(1), false, start)
	a.mark(storage.SeriesRef(2), true, start.Add(time.Minute))
	a.mark(storage.SeriesRef(3*activePageSize+5), false, start.Add(2*time.Minute))
	if active, hist := a.purge(start.Add(2*time.Minute), 10*time.Minute); active != 3 || hist != 1 {
		t.Fatalf("%d active, %d histograms; want 3 and 1", active, hist)
	}
	a.forget(map[chunks.HeadSeriesRef]labels.Labels{2: labels.EmptyLabels()})
	if active, hist := a.purge(start.Add(2*time.Minute), 10*time.Minute); active != 2 || hist != 0 {
		t.Fatalf("after forgetting series 2: %d active, %d histograms; want 2 and 0", active, hist)
	}
	// At start+11m only the series marked at start+2m is within 10m.
	if active, _ := a.purge(start.Add(11*time.Minute), 10*time.Minute); active != 1 {
		t.Fatalf("%d active at start+11m, want 1", active)
	}
	if pages := *a.pages.Load(); pages[0] != nil || pages[3] == nil {
		t.Fatalf("page 0 (emptied) kept: %v, page 3 (in use) freed: %v", pages[0] != nil, pages[3] == nil)
	}
	a.mark(storage.SeriesRef(7), false, start.Add(12*time.Minute))
	if active, _ := a.purge(start.Add(12*time.Minute), 10*time.Minute); active != 2 {
		t.Fatalf("%d active after a freed page is marked again, want 2", active)
	}
}

// BenchmarkPushActiveSeries is BenchmarkPush with the active series
// tracking on and off: its cost on the write path.
func BenchmarkPushActiveSeries(b *testing.B) {
	for _, enabled := range []bool{true, false} {
		b.Run(fmt.Sprintf("enabled=%v", enabled), func(b *testing.B) {
			cfg := testConfig(b, b.TempDir(), newKV(b))
			cfg.ActiveSeriesMetricsEnabled = enabled
			h := startHarness(b, cfg, newTestLimits(b, nil))
			reqs := benchRequests(20000, 1000)
			preqs := make([]*client.PushRequest, len(reqs))
			for r, req := range reqs {
				preqs[r] = &client.PushRequest{WriteRequest: *req}
			}
			benchPush(b, reqs, func(r int) error {
				_, err := h.ing.Push(ctxFor("bench"), preqs[r])
				return err
			})
		})
	}
}
