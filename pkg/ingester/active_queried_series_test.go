package ingester

import (
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
)

// fakeClock is a settable clock for the active queried series tracking.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func queriedSeriesConfig(t *testing.T, windows string) Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.ActiveQueriedSeriesMetricsEnabled = true
	// The tests update the gauge themselves.
	cfg.ActiveQueriedSeriesMetricsUpdatePeriod = time.Hour
	mustSet(t, &cfg.ActiveQueriedSeriesMetricsWindows, windows)
	return cfg
}

// pushSeries pushes n series of metric name, labelled i=0..n-1 and
// half=0 or 1 (i%2), in requests of 1000.
func (h *harness) pushSeries(tenantID, name string, n int) {
	h.t.Helper()
	var batch []prompb.TimeSeries
	for i := range n {
		batch = append(batch, floats(series(name, "i", fmt.Sprint(i), "half", fmt.Sprint(i%2)), float64(base), 1))
		if len(batch) == 1000 || i == n-1 {
			h.mustPush(tenantID, batch...)
			batch = nil
		}
	}
}

func (h *harness) queriedGauge(tenantID, window string) float64 {
	return testutil.ToFloat64(h.ing.queried.gauge.WithLabelValues(tenantID, window))
}

func (h *harness) updateQueried() {
	h.t.Helper()
	if err := h.ing.queried.update(h.ing.allTSDBs()); err != nil {
		h.t.Fatal(err)
	}
}

// Every series QueryStream and QueryStreamChunks return counts once per
// window, however often it is queried: 20,000 distinct series give an
// estimate within HyperLogLog's error (0.81% standard error at precision
// 14), and another tenant's queries do not count.
func TestActiveQueriedSeriesEstimate(t *testing.T) {
	const n = 20000
	h := startHarness(t, queriedSeriesConfig(t, "15m,2h"), newTestLimits(t, nil))
	h.pushSeries("team-a", "load", n)
	h.pushSeries("team-b", "load", 10)

	if got := len(h.query("team-a", base, base, eq("__name__", "load"), eq("half", "0"))); got != n/2 {
		t.Fatalf("QueryStream returned %d series, want %d", got, n/2)
	}
	h.updateQueried()
	for _, w := range []string{"15m0s", "2h0m0s"} {
		if got := h.queriedGauge("team-a", w); got < 0.97*n/2 || got > 1.03*n/2 {
			t.Fatalf("window %s: %v active queried series after querying %d, want within 3%%", w, got, n/2)
		}
	}
	if got := h.queriedGauge("team-b", "2h0m0s"); got != 0 {
		t.Fatalf("team-b, never queried: %v active queried series, want 0", got)
	}

	// All of them through QueryStreamChunks, the first half again.
	if got := len(h.queryChunks("team-a", base, base, eq("__name__", "load"))); got != n {
		t.Fatalf("QueryStreamChunks returned %d series, want %d", got, n)
	}
	h.query("team-a", base, base, eq("__name__", "load"), eq("half", "0"))
	// A query that returns nothing adds nothing.
	h.query("team-a", base, base, eq("__name__", "absent"))
	h.updateQueried()
	for _, w := range []string{"15m0s", "2h0m0s"} {
		if got := h.queriedGauge("team-a", w); got < 0.97*n || got > 1.03*n {
			t.Fatalf("window %s: %v active queried series after querying %d distinct ones, want within 3%%", w, got, n)
		}
	}

	// A closed tenant's gauges go with its TSDB.
	h.stop()
	if c, err := testutil.GatherAndCount(h.reg, "cortex_ingester_active_queried_series"); err != nil || c != 0 {
		t.Fatalf("after the TSDBs closed: %d gauges (%v), want none", c, err)
	}
}

// With -ingester.active-queried-series-metrics-sample-rate=0.5, every
// other query (by the random source's draws) is tracked: of ten queries
// of 100 distinct series each, five count.
func TestActiveQueriedSeriesSampling(t *testing.T) {
	cfg := queriedSeriesConfig(t, "2h")
	cfg.ActiveQueriedSeriesMetricsSampleRate = 0.5
	h := startHarness(t, cfg, newTestLimits(t, nil))
	draws := 0
	h.ing.queried.random = func() float64 {
		draws++
		return []float64{0.25, 0.75}[(draws-1)%2]
	}
	for q := range 10 {
		name := fmt.Sprintf("metric_%d", q)
		h.pushSeries("team-a", name, 100)
		// Queries 0, 2, 4, ... draw 0.25 (sampled), the others 0.75.
		if q%2 == 0 {
			h.query("team-a", base, base, eq("__name__", name))
		} else {
			h.queryChunks("team-a", base, base, eq("__name__", name))
		}
	}
	if draws != 10 {
		t.Fatalf("%d draws for 10 queries, want one each", draws)
	}
	h.updateQueried()
	if got := h.queriedGauge("team-a", "2h0m0s"); got < 490 || got > 510 {
		t.Fatalf("%v active queried series, want about 500 (5 of 10 queries of 100)", got)
	}

	// At rate 1 every query is tracked without a draw.
	cfg = queriedSeriesConfig(t, "2h")
	h = startHarness(t, cfg, newTestLimits(t, nil))
	h.ing.queried.random = func() float64 { t.Fatal("random draw at sample rate 1"); return 0 }
	h.pushSeries("team-a", "up", 10)
	h.query("team-a", base, base, eq("__name__", "up"))
	h.updateQueried()
	if got := h.queriedGauge("team-a", "2h0m0s"); got != 10 {
		t.Fatalf("%v active queried series at rate 1, want 10", got)
	}
}

// Series leave a window once the sub-window they were queried in no
// longer overlaps it, and the ring drops sub-windows older than the
// longest window.
func TestActiveQueriedSeriesRotation(t *testing.T) {
	cfg := queriedSeriesConfig(t, "2h")
	h := startHarness(t, cfg, newTestLimits(t, nil))
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	h.ing.queried.now = clock.now
	h.pushSeries("team-a", "up", 50)
	h.query("team-a", base, base, eq("__name__", "up"))
	h.updateQueried()
	if got := h.queriedGauge("team-a", "2h0m0s"); got != 50 {
		t.Fatalf("%v active queried series, want 50", got)
	}
	clock.t = clock.t.Add(2 * time.Hour)
	h.updateQueried()
	if got := h.queriedGauge("team-a", "2h0m0s"); got != 0 {
		t.Fatalf("2h later: %v active queried series, want 0", got)
	}
}

func hashes(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i < to; i++ {
		// splitmix64's finalizer spreads the bits as a label hash would.
		x := i * 0x9E3779B97F4A7C15
		x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
		x = (x ^ x>>27) * 0x94D049BB133111EB
		out = append(out, x^x>>31)
	}
	return out
}

func TestActiveQueriedSeriesWindows(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := t0.Add
	a := newActiveQueriedSeries([]time.Duration{15 * time.Minute, time.Hour}, 15*time.Minute, t0)
	if len(a.subWindows) != 4 {
		t.Fatalf("%d sub-windows for 1h of 15m, want 4", len(a.subWindows))
	}
	want := func(now time.Duration, window time.Duration, n uint64) {
		t.Helper()
		got, err := a.estimate(at(now), window)
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("at t0+%s, window %s: %d series, want %d", now, window, got, n)
		}
	}
	a.add(at(0), hashes(0, 100)) // sub-window [0, 15m)
	a.add(at(5*time.Minute), hashes(50, 150))
	want(10*time.Minute, 15*time.Minute, 150)
	want(10*time.Minute, time.Hour, 150)
	a.add(at(20*time.Minute), hashes(1000, 1100)) // [20m, 35m)
	want(20*time.Minute, 15*time.Minute, 250)     // [0, 15m) still overlaps (5m, 20m]
	want(40*time.Minute, 15*time.Minute, 100)     // cutoff 25m: only [20m, 35m)
	want(40*time.Minute, time.Hour, 250)
	// At 76m the ring moves two sub-windows on ([61m, 76m), [76m, 91m)),
	// reusing the one of [0, 15m).
	want(76*time.Minute, time.Hour, 100)
	want(76*time.Minute, 15*time.Minute, 0)
	// Long idle: everything is gone, and tracking goes on.
	want(10*time.Hour, time.Hour, 0)
	a.add(at(10*time.Hour), hashes(0, 10))
	want(10*time.Hour+time.Minute, 15*time.Minute, 10)
	// A clock that goes back before the current sub-window records nothing.
	a.add(at(9*time.Hour), hashes(500, 600))
	want(10*time.Hour+time.Minute, time.Hour, 10)
}

// A sub-window's sketch stays within its fixed size however many series
// are queried.
func TestActiveQueriedSeriesBoundedMemory(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := newActiveQueriedSeries([]time.Duration{2 * time.Hour}, 15*time.Minute, t0)
	for i := range uint64(50) {
		a.add(t0, hashes(i*10000, (i+1)*10000))
	}
	b, err := a.subWindows[a.current].sketch.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// 2^14 one-byte registers and a small header.
	if len(b) > 1<<14+64 {
		t.Fatalf("sketch of 500,000 series is %d bytes, want at most %d", len(b), 1<<14+64)
	}
	if got, err := a.estimate(t0, 2*time.Hour); err != nil || got < 485000 || got > 515000 {
		t.Fatalf("%d (%v) series, want 500,000 within 3%%", got, err)
	}
}

func TestActiveQueriedSeriesConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("ingester", flag.ContinueOnError)
	cfg.RegisterFlags(fs, testLogger(t))
	if err := fs.Parse([]string{"-ingester.active-queried-series-metrics-windows=1h,2h"}); err != nil {
		t.Fatal(err)
	}
	if got := cfg.ActiveQueriedSeriesMetricsWindows.String(); got != "1h0m0s,2h0m0s" {
		t.Fatalf("windows %s, want 1h0m0s,2h0m0s", got)
	}
	for _, tc := range []struct {
		mutate func(*Config)
		err    string
	}{
		{func(c *Config) { c.ActiveQueriedSeriesMetricsSampleRate = 0 }, "-ingester.active-queried-series-metrics-sample-rate must be greater than 0 and at most 1, got 0"},
		{func(c *Config) { c.ActiveQueriedSeriesMetricsSampleRate = 1.5 }, "-ingester.active-queried-series-metrics-sample-rate must be greater than 0 and at most 1, got 1.5"},
		{func(c *Config) { c.ActiveQueriedSeriesMetricsWindowDuration = 0 }, "-ingester.active-queried-series-metrics-window-duration must be greater than 0, got 0s"},
		{func(c *Config) { c.ActiveQueriedSeriesMetricsUpdatePeriod = 0 }, "-ingester.active-queried-series-metrics-update-period must be greater than 0, got 0s"},
		{func(c *Config) { c.ActiveQueriedSeriesMetricsWindows = nil }, "-ingester.active-queried-series-metrics-windows must list at least one window"},
		{func(c *Config) { c.ActiveQueriedSeriesMetricsWindows = DurationList{10 * time.Minute} }, "-ingester.active-queried-series-metrics-windows: window 10m0s must be at least -ingester.active-queried-series-metrics-window-duration (15m0s)"},
	} {
		c := queriedSeriesConfig(t, "2h")
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("got %v, want %q", err, tc.err)
		}
		// Disabled, the flags are not checked.
		c.ActiveQueriedSeriesMetricsEnabled = false
		if err := c.Validate(); err != nil {
			t.Errorf("disabled: %v", err)
		}
	}
}

// Disabled (the default), no tenant has a tracker and no gauge is
// registered.
func TestActiveQueriedSeriesDisabled(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	h.pushSeries("team-a", "up", 10)
	h.query("team-a", base, base, eq("__name__", "up"))
	if h.ing.queried != nil || h.ing.getTSDB("team-a").queried != nil {
		t.Fatal("active queried series tracked while disabled")
	}
	if err := h.ing.queried.update(h.ing.allTSDBs()); err != nil {
		t.Fatal(err)
	}
	if c, err := testutil.GatherAndCount(h.reg, "cortex_ingester_active_queried_series"); err != nil || c != 0 {
		t.Fatalf("%d gauges (%v), want none when disabled", c, err)
	}
}

// BenchmarkQueryStreamChunksActiveQueriedSeries is a QueryStreamChunks call
// returning 10,000 series, in process, with the active queried series
// tracking on and off: its cost on the read path.
func BenchmarkQueryStreamChunksActiveQueriedSeries(b *testing.B) {
	for _, enabled := range []bool{true, false} {
		b.Run(fmt.Sprintf("enabled=%v", enabled), func(b *testing.B) {
			cfg := testConfig(b, b.TempDir(), newKV(b))
			cfg.ActiveQueriedSeriesMetricsEnabled = enabled
			h := startHarness(b, cfg, newTestLimits(b, nil))
			h.pushSeries("bench", "load", 10000)
			req := &prompb.Query{StartTimestampMs: base, EndTimestampMs: base, Matchers: []*prompb.LabelMatcher{eq("__name__", "load")}}
			for b.Loop() {
				s := &recordingStream{ctx: ctxFor("bench")}
				if err := h.ing.QueryStreamChunks(req, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
