package ingester

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
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

	// appendMu is held for reading by pushes and for writing while an idle
	// head is compacted whole.
	appendMu sync.RWMutex

	rate     *ewmaRate
	lastPush atomic.Int64 // unix nanoseconds

	// Limits applied to the open TSDB, to notice runtime changes, and the
	// exemplar buffer's size (see tsdbLimits).
	tsdbConfigMu sync.Mutex
	tsdb         tsdbLimits
	oooWindow    atomic.Int64 // tsdb.oooWindow, read by pushes without the lock

	metadata *metadataStore
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
	l := u.limits()
	if max := l.MaxSeriesPerUser; max > 0 && u.db.Head().NumSeries() >= uint64(max) {
		return &errSeriesLimit{
			reason: reasonPerUserSeriesLimit,
			msg:    fmt.Sprintf("per-user series limit of %d exceeded (-ingester.max-series-per-user); this tenant has %d active series on this ingester", max, u.db.Head().NumSeries()),
		}
	}
	if max := l.MaxSeriesPerMetric; max > 0 {
		name := ls.Get(labels.MetricName)
		u.seriesMu.Lock()
		n := u.seriesInMetric[name]
		u.seriesMu.Unlock()
		if n >= max {
			return &errSeriesLimit{
				reason: reasonPerMetricSeriesLimit,
				msg:    fmt.Sprintf("per-metric series limit of %d exceeded for metric %q (-ingester.max-series-per-metric)", max, name),
			}
		}
	}
	return nil
}

// PostCreation counts a new series, also during WAL replay.
func (u *userTSDB) PostCreation(ls labels.Labels) {
	name := ls.Get(labels.MetricName)
	u.seriesMu.Lock()
	u.seriesInMetric[name]++
	u.seriesMu.Unlock()
	u.m.memSeries.Inc()
	u.m.seriesCreated.WithLabelValues(u.id).Inc()
}

// PostDeletion uncounts series removed by head garbage collection.
func (u *userTSDB) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	u.seriesMu.Lock()
	for _, ls := range deleted {
		name := ls.Get(labels.MetricName)
		if u.seriesInMetric[name] <= 1 {
			delete(u.seriesInMetric, name)
		} else {
			u.seriesInMetric[name]--
		}
	}
	u.seriesMu.Unlock()
	u.m.memSeries.Sub(float64(len(deleted)))
	u.m.seriesRemoved.WithLabelValues(u.id).Add(float64(len(deleted)))
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

// metadataStore keeps the latest metadata of each metric family a tenant
// sent, forgetting families not refreshed within the retain period
// (Prometheus resends metadata every minute by default).
type metadataStore struct {
	gauge interface{ Add(float64) }

	mu      sync.Mutex
	entries map[string]*metadataEntry
}

type metadataEntry struct {
	typ, help, unit string
	lastSeen        time.Time
}

func newMetadataStore(gauge interface{ Add(float64) }) *metadataStore {
	return &metadataStore{gauge: gauge, entries: map[string]*metadataEntry{}}
}

func (s *metadataStore) add(mds []prompb.MetricMetadata, now time.Time) int {
	added := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range mds {
		md := &mds[i]
		if md.MetricFamilyName == "" {
			continue
		}
		// The request's strings point into a buffer reused once Push
		// returns: the store keeps copies, made only when something
		// changed (Prometheus resends the same metadata every minute).
		// An existing entry is updated in place, not assigned, as
		// assigning would also replace the map's key with the request's.
		e, ok := s.entries[md.MetricFamilyName]
		if !ok {
			e = &metadataEntry{}
			s.entries[strings.Clone(md.MetricFamilyName)] = e
			s.gauge.Add(1)
		}
		if e.help != md.Help {
			e.help = strings.Clone(md.Help)
		}
		if e.unit != md.Unit {
			e.unit = strings.Clone(md.Unit)
		}
		e.typ = metricTypeName(md.Type)
		e.lastSeen = now
		added++
	}
	return added
}

func (s *metadataStore) purge(before time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range s.entries {
		if e.lastSeen.Before(before) {
			delete(s.entries, name)
			s.gauge.Add(-1)
		}
	}
}

func (s *metadataStore) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gauge.Add(-float64(len(s.entries)))
	s.entries = map[string]*metadataEntry{}
}

// list returns the metadata of metric (every metric when empty), sorted by
// name, at most limit families (0 or less: no limit).
func (s *metadataStore) list(metric string, limit int) []*client.MetricMetadata {
	s.mu.Lock()
	var out []*client.MetricMetadata
	add := func(name string, e *metadataEntry) {
		out = append(out, &client.MetricMetadata{MetricFamilyName: name, Type: e.typ, Help: e.help, Unit: e.unit})
	}
	if metric != "" {
		if e, ok := s.entries[metric]; ok {
			add(metric, e)
		}
	} else {
		out = make([]*client.MetricMetadata, 0, len(s.entries))
		for name, e := range s.entries {
			add(name, e)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *client.MetricMetadata) int { return strings.Compare(a.MetricFamilyName, b.MetricFamilyName) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// metricTypeNames are the lower-case names of the metadata types.
var metricTypeNames = func() map[prompb.MetricMetadata_MetricType]string {
	m := map[prompb.MetricMetadata_MetricType]string{}
	for v, name := range prompb.MetricMetadata_MetricType_name {
		m[prompb.MetricMetadata_MetricType(v)] = strings.ToLower(name)
	}
	return m
}()

// metricTypeName is the lower-case name of t, as the metadata API shows it.
func metricTypeName(t prompb.MetricMetadata_MetricType) string {
	if name, ok := metricTypeNames[t]; ok {
		return name
	}
	return strings.ToLower(t.String())
}
