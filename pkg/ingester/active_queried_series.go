package ingester

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// activeQueriedSeries estimates how many distinct series a tenant's queries
// returned lately, for cortex_ingester_active_queried_series (Cortex's
// -ingester.active-queried-series-metrics-*). A sketch cannot forget a
// series, so the tracked period, the longest of
// -ingester.active-queried-series-metrics-windows, is cut into sub-windows
// of -ingester.active-queried-series-metrics-window-duration, each with its
// own HyperLogLog sketch (precision 14, as Cortex: about 0.8% standard
// error, at most 16 KiB of registers), and expiry drops the oldest
// sub-window whole. A window's estimate merges the sketches of the
// sub-windows that overlap it.
type activeQueriedSeries struct {
	windowDuration time.Duration

	mu sync.Mutex
	// subWindows is a ring; current is the newest.
	subWindows []queriedSubWindow
	current    int
}

// queriedSubWindow holds the series queried in [start, start+windowDuration).
type queriedSubWindow struct {
	sketch *hyperloglog.Sketch
	start  time.Time
}

// newActiveQueriedSeries tracks enough sub-windows of windowDuration to
// cover the longest window (Cortex rounds down; rounding up keeps every
// series of the longest window), the current one starting at now.
func newActiveQueriedSeries(windows []time.Duration, windowDuration time.Duration, now time.Time) *activeQueriedSeries {
	var longest time.Duration
	for _, w := range windows {
		longest = max(longest, w)
	}
	n := max(int((longest+windowDuration-1)/windowDuration), 1)
	a := &activeQueriedSeries{
		windowDuration: windowDuration,
		subWindows:     make([]queriedSubWindow, n),
	}
	a.reset(n, now)
	return a
}

// reset empties the last steps sub-windows of the ring from the current
// one on, which becomes the one starting at now; those before it follow
// one another back from there.
func (a *activeQueriedSeries) reset(steps int, now time.Time) {
	n := len(a.subWindows)
	for k := steps - 1; k >= 0; k-- {
		a.current = (a.current + 1) % n
		a.subWindows[a.current] = queriedSubWindow{
			sketch: hyperloglog.New14(),
			start:  now.Add(-time.Duration(k) * a.windowDuration),
		}
	}
}

// add records series label hashes a query returned at now.
func (a *activeQueriedSeries) add(now time.Time, hashes []uint64) {
	if len(hashes) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rotate(now)
	w := a.subWindows[a.current]
	if now.Before(w.start) {
		// The clock went back before the current sub-window.
		return
	}
	for _, h := range hashes {
		w.sketch.InsertHash(h)
	}
}

// rotate makes the current sub-window one holding now, emptying the
// sub-windows it moves past. As in Cortex, a new current sub-window starts
// at now, not where the last one ended: the sub-windows of a tenant that
// is queried rarely are not kept in step with the clock.
func (a *activeQueriedSeries) rotate(now time.Time) {
	elapsed := now.Sub(a.subWindows[a.current].start)
	if elapsed < a.windowDuration {
		return
	}
	a.reset(min(int(elapsed/a.windowDuration), len(a.subWindows)), now)
}

// estimate returns the distinct series queried within window of now: those
// of every sub-window overlapping (now-window, now].
func (a *activeQueriedSeries) estimate(now time.Time, window time.Duration) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rotate(now)
	cutoff := now.Add(-window)
	merged := hyperloglog.New14()
	for _, w := range a.subWindows {
		if !w.start.Add(a.windowDuration).After(cutoff) || w.start.After(now) {
			continue
		}
		if err := merged.Merge(w.sketch); err != nil {
			return 0, fmt.Errorf("merging active queried series sketches: %w", err)
		}
	}
	return merged.Estimate(), nil
}

// queriedSeriesTracking is the ingester's part of the active queried series
// metrics: which queries are sampled, each tenant's tracker, the gauge.
type queriedSeriesTracking struct {
	windows        []time.Duration
	windowDuration time.Duration
	sampleRate     float64
	gauge          *prometheus.GaugeVec

	// now and random are the clock and the sampling's source of numbers
	// in [0, 1); tests replace them.
	now    func() time.Time
	random func() float64
}

// newQueriedSeriesTracking returns nil unless
// -ingester.active-queried-series-metrics-enabled; the gauge is registered
// only then, as in Cortex.
func newQueriedSeriesTracking(cfg Config, reg prometheus.Registerer) (*queriedSeriesTracking, error) {
	if !cfg.ActiveQueriedSeriesMetricsEnabled {
		return nil, nil
	}
	t := &queriedSeriesTracking{
		windows:        cfg.ActiveQueriedSeriesMetricsWindows,
		windowDuration: cfg.ActiveQueriedSeriesMetricsWindowDuration,
		sampleRate:     cfg.ActiveQueriedSeriesMetricsSampleRate,
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_ingester_active_queried_series",
			Help: "Estimated number of currently active queried series per user (probabilistic count using HyperLogLog).",
		}, []string{"user", "window"}),
		now:    time.Now,
		random: rand.Float64,
	}
	if reg != nil {
		if err := reg.Register(t.gauge); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// newTenant returns a tenant's tracker; nil when tracking is off.
func (t *queriedSeriesTracking) newTenant() *activeQueriedSeries {
	if t == nil {
		return nil
	}
	return newActiveQueriedSeries(t.windows, t.windowDuration, t.now())
}

// recorder returns what a query adds its series to, or nil (which records
// nothing) when tracking is off or the query is not sampled. The
// decision is taken before the query reads anything, so an unsampled
// query does not even hash its series.
func (t *queriedSeriesTracking) recorder(a *activeQueriedSeries) *queriedSeriesRecorder {
	if t == nil || a == nil || (t.sampleRate < 1 && t.random() >= t.sampleRate) {
		return nil
	}
	return &queriedSeriesRecorder{tracking: t, series: a}
}

// update sets the gauge of every tenant and configured window.
func (t *queriedSeriesTracking) update(tsdbs []*userTSDB) error {
	if t == nil {
		return nil
	}
	now := t.now()
	for _, u := range tsdbs {
		if u.queried == nil {
			continue
		}
		for _, w := range t.windows {
			n, err := u.queried.estimate(now, w)
			if err != nil {
				return fmt.Errorf("tenant %q: %w", u.id, err)
			}
			t.gauge.WithLabelValues(u.id, w.String()).Set(float64(n))
		}
	}
	return nil
}

// forget removes a closed tenant's gauges.
func (t *queriedSeriesTracking) forget(id string) {
	if t != nil {
		t.gauge.DeletePartialMatch(prometheus.Labels{"user": id})
	}
}

// queriedSeriesRecorderBatch is how many series a query notes before it
// adds them to the tracker: the tracker's lock is taken once per batch, and
// a query's notes take a fixed 4 KiB whatever it returns.
const queriedSeriesRecorderBatch = 512

// queriedSeriesRecorder gathers the label hashes of the series one query
// returns. Its methods do nothing on a nil recorder.
type queriedSeriesRecorder struct {
	tracking *queriedSeriesTracking
	series   *activeQueriedSeries
	n        int
	hashes   [queriedSeriesRecorderBatch]uint64
}

// add notes a series the query returns.
func (r *queriedSeriesRecorder) add(ls labels.Labels) {
	if r == nil {
		return
	}
	if r.n == len(r.hashes) {
		r.record()
	}
	r.hashes[r.n] = ls.Hash()
	r.n++
}

// record adds the series noted so far to the tenant's current sub-window.
func (r *queriedSeriesRecorder) record() {
	if r != nil {
		r.series.add(r.tracking.now(), r.hashes[:r.n])
		r.n = 0
	}
}
