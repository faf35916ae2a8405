package ingester

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/cortex-tls/cortex/pkg/ingester/postingscache"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// userTSDB is one tenant's TSDB and the state kept beside it. It is the
// TSDB's series lifecycle callback, which is where the series limits are
// enforced: PreCreation runs exactly when a new series would be created,
// so existing series never pay for the check.
type userTSDB struct {
	id     string
	db     *tsdb.DB
	limits func() *validation.Limits
	m      *metrics

	// limitsActive is false while the TSDB replays its WAL, so that series
	// acknowledged before a restart are never dropped by a limit.
	limitsActive atomic.Bool

	seriesMu       sync.Mutex
	seriesInMetric map[string]int
	// histogramSeries are the label hashes of the series a native
	// histogram created since the ingester started, for
	// -ingester.max-native-histogram-series-per-user; guarded by seriesMu.
	histogramSeries map[uint64]struct{}

	// limiter applies the global limits; set by the ingester.
	limiter *limiter

	// appendMu is held for reading by pushes and for writing while an idle
	// head is compacted whole.
	appendMu sync.RWMutex

	rate     *ewmaRate
	lastPush atomic.Int64 // unix nanoseconds
	// active marks the series pushed to recently; nil with
	// -ingester.active-series-metrics-enabled=false.
	active *activeSeries
	// queried estimates the series the tenant's queries returned; nil
	// with -ingester.active-queried-series-metrics-enabled=false.
	queried *activeQueriedSeries
	// instance counts the ingester's series for its instance limits.
	instance *instanceLimiter

	// Limits applied to the open TSDB, to notice runtime changes, and the
	// exemplar buffer's size (see tsdbLimits).
	tsdbConfigMu sync.Mutex
	tsdb         tsdbLimits
	oooWindow    atomic.Int64 // tsdb.oooWindow, read by pushes without the lock

	metadata *metadataStore

	// shipper uploads the tenant's blocks; nil without long-term storage
	// or with -blocks-storage.tsdb.ship-interval=0.
	shipper *shipper
	// retention is -blocks-storage.tsdb.retention-period, and retentionDB
	// the open TSDB as blocksToDelete sees it: the TSDB calls it from its
	// own goroutines, before and after db is set.
	retention   time.Duration
	retentionDB atomic.Pointer[tsdb.DB]

	// postings caches the expanded postings of queries; nil with
	// -blocks-storage.expanded_postings_cache.*.enabled off.
	postings *postingscache.Cache
}

func newUserTSDB(id string, limits func() *validation.Limits, m *metrics, rateInterval time.Duration) *userTSDB {
	u := &userTSDB{
		id:             id,
		limits:         limits,
		m:              m,
		seriesInMetric: map[string]int{},
		rate:           newEWMARate(0.2, rateInterval),
		metadata:       newMetadataStore(m.memMetadata),
	}
	u.lastPush.Store(time.Now().UnixNano())
	return u
}

// blocksToDelete is the TSDB's BlocksToDelete when blocks are shipped: a
// block goes only once it is in the bucket and past retention, whether
// -blocks-storage.tsdb.retention-period measured from now (as Cortex) or
// from the newest block (as Prometheus). Unshipped blocks stay whatever
// their age, so an unreachable bucket never costs data.
func (u *userTSDB) blocksToDelete(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
	db := u.retentionDB.Load()
	if db == nil {
		// tsdb.Open reloads before it returns the DB that retention
		// needs: deletion waits for the next reload.
		return nil
	}
	deletable := tsdb.DefaultBlocksToDelete(db)(blocks)
	if u.retention > 0 {
		cutoff := time.Now().Add(-u.retention).UnixMilli()
		for _, b := range blocks {
			if b.MaxTime() <= cutoff {
				deletable[b.Meta().ULID] = struct{}{}
			}
		}
	}
	for _, b := range blocks {
		m := b.Meta()
		if _, ok := deletable[m.ULID]; !ok || m.Stats.NumSamples == 0 {
			// An empty block holds nothing to ship.
			continue
		}
		if !u.shipper.isShipped(m.ULID.String()) {
			delete(deletable, m.ULID)
		}
	}
	return deletable
}

// errSeriesLimit is a series refused by a limit; it is reported for the
// series and counted under reason.
type errSeriesLimit struct {
	reason string
	msg    string
}

func (e *errSeriesLimit) Error() string { return e.msg }

// PreCreation refuses a new series beyond the tenant's limits. Concurrent
// pushes creating series at the same moment may overshoot a limit by the
// number of in-flight creations, as in Cortex: exactness would need a lock
// around every series creation.
func (u *userTSDB) PreCreation(ls labels.Labels) error {
	if !u.limitsActive.Load() {
		return nil
	}
	if err := u.instance.admitSeries(); err != nil {
		return err
	}
	l := u.limits()
	if max := u.limiter.localLimit(l, l.MaxSeriesPerUser, l.MaxGlobalSeriesPerUser, false); max > 0 && u.db.Head().NumSeries() >= uint64(max) {
		return &errSeriesLimit{
			reason: reasonPerUserSeriesLimit,
			msg: u.limiter.limitError("per-user series", "", max, l.MaxSeriesPerUser, l.MaxGlobalSeriesPerUser, "-ingester.max-series-per-user, -ingester.max-global-series-per-user") +
				fmt.Sprintf("; this tenant has %d active series on this ingester", u.db.Head().NumSeries()),
		}
	}
	if max := u.limiter.localLimit(l, l.MaxSeriesPerMetric, l.MaxGlobalSeriesPerMetric, true); max > 0 {
		name := ls.Get(model.MetricNameLabel)
		if u.limiter.ignoresMetric(name) {
			return nil
		}
		u.seriesMu.Lock()
		n := u.seriesInMetric[name]
		u.seriesMu.Unlock()
		if n >= max {
			return &errSeriesLimit{
				reason: reasonPerMetricSeriesLimit,
				msg:    u.limiter.limitError("per-metric series", fmt.Sprintf(" for metric %q", name), max, l.MaxSeriesPerMetric, l.MaxGlobalSeriesPerMetric, "-ingester.max-series-per-metric, -ingester.max-global-series-per-metric"),
			}
		}
	}
	return nil
}

// admitHistogramSeries refuses a new series of native histograms beyond
// the tenant's -ingester.max-native-histogram-series-per-user and
// -ingester.max-global-native-histogram-series-per-user.
func (u *userTSDB) admitHistogramSeries() error {
	l := u.limits()
	max := u.limiter.localLimit(l, l.MaxNativeHistogramSeriesPerUser, l.MaxGlobalNativeHistogramSeriesPerUser, false)
	if max <= 0 {
		return nil
	}
	u.seriesMu.Lock()
	n := len(u.histogramSeries)
	u.seriesMu.Unlock()
	if n >= max {
		return &errSeriesLimit{
			reason: reasonPerUserNativeHistogramSeriesLimit,
			msg: u.limiter.limitError("per-user native histogram series", "", max, l.MaxNativeHistogramSeriesPerUser, l.MaxGlobalNativeHistogramSeriesPerUser, "-ingester.max-native-histogram-series-per-user, -ingester.max-global-native-histogram-series-per-user") +
				fmt.Sprintf("; this tenant has %d native histogram series on this ingester", n),
		}
	}
	return nil
}

// histogramSeriesCreated counts a series a native histogram created.
func (u *userTSDB) histogramSeriesCreated(ls labels.Labels) {
	u.seriesMu.Lock()
	if u.histogramSeries == nil {
		u.histogramSeries = map[uint64]struct{}{}
	}
	u.histogramSeries[ls.Hash()] = struct{}{}
	u.seriesMu.Unlock()
}

// PostCreation counts a new series, also during WAL replay.
func (u *userTSDB) PostCreation(ls labels.Labels) {
	name := ls.Get(model.MetricNameLabel)
	u.seriesMu.Lock()
	u.seriesInMetric[name]++
	u.seriesMu.Unlock()
	u.m.memSeries.Inc()
	u.instance.seriesAdded(1)
	u.m.seriesCreated.WithLabelValues(u.id).Inc()
	if u.postings != nil {
		// The series is in the head's postings already: the next query
		// of its metric misses the cache and sees it.
		u.postings.ExpireSeries(ls)
	}
}

// PostDeletion uncounts series removed by head garbage collection.
func (u *userTSDB) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	u.seriesMu.Lock()
	for _, ls := range deleted {
		if len(u.histogramSeries) > 0 {
			delete(u.histogramSeries, ls.Hash())
		}
		if u.postings != nil {
			u.postings.ExpireSeries(ls)
		}
		name := ls.Get(model.MetricNameLabel)
		if u.seriesInMetric[name] <= 1 {
			delete(u.seriesInMetric, name)
		} else {
			u.seriesInMetric[name]--
		}
	}
	u.seriesMu.Unlock()
	u.m.memSeries.Sub(float64(len(deleted)))
	u.instance.seriesAdded(-len(deleted))
	u.m.seriesRemoved.WithLabelValues(u.id).Add(float64(len(deleted)))
	if u.active != nil {
		u.active.forget(deleted)
	}
}

// ewmaRate is an exponentially weighted moving average of an event rate,
// ticked at a fixed interval, as Cortex computes ingestion rates.
type ewmaRate struct {
	newEvents atomic.Int64
	alpha     float64
	interval  time.Duration

	mu       sync.Mutex
	lastRate float64
	init     bool
}

func newEWMARate(alpha float64, interval time.Duration) *ewmaRate {
	return &ewmaRate{alpha: alpha, interval: interval}
}

func (r *ewmaRate) add(n int64) { r.newEvents.Add(n) }

func (r *ewmaRate) tick() {
	instant := float64(r.newEvents.Swap(0)) / r.interval.Seconds()
	r.mu.Lock()
	if r.init {
		r.lastRate += r.alpha * (instant - r.lastRate)
	} else {
		r.init, r.lastRate = true, instant
	}
	r.mu.Unlock()
}

func (r *ewmaRate) rate() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastRate
}
