package ingester

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// activeSeries tracks when each of a tenant's series last had a sample
// appended, for cortex_ingester_active_series and
// cortex_ingester_active_native_histogram_series (Cortex's
// -ingester.active-series-metrics-*). A push marks its series by their
// head reference, which the TSDB hands out densely from 1: the marks live
// in pages of atomic words indexed by reference, so marking takes no lock
// and no allocation on the write path (Cortex hashes each series' labels
// into a striped map instead). A page whose series all went idle is freed.
type activeSeries struct {
	base time.Time // a mark is the seconds since base, plus one

	mu    sync.Mutex                          // held to grow or free pages
	pages atomic.Pointer[[]*activeSeriesPage] // by reference >> activePageBits
}

const (
	activePageBits = 12
	activePageSize = 1 << activePageBits
	// activeHistogramBit marks a native histogram series.
	activeHistogramBit = 1 << 31
)

type activeSeriesPage [activePageSize]atomic.Uint32

func newActiveSeries(now time.Time) *activeSeries {
	a := &activeSeries{base: now}
	a.pages.Store(&[]*activeSeriesPage{})
	return a
}

// mark records that series ref had a sample appended at now.
func (a *activeSeries) mark(ref storage.SeriesRef, histogram bool, now time.Time) {
	v := uint32(now.Sub(a.base)/time.Second) + 1
	if histogram {
		v |= activeHistogramBit
	}
	a.page(ref)[uint64(ref)%activePageSize].Store(v)
}

// page returns the page of ref, allocating it if needed.
func (a *activeSeries) page(ref storage.SeriesRef) *activeSeriesPage {
	i := int(uint64(ref) >> activePageBits)
	if pages := *a.pages.Load(); i < len(pages) && pages[i] != nil {
		return pages[i]
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	pages := *a.pages.Load()
	if i < len(pages) && pages[i] != nil {
		return pages[i]
	}
	grown := make([]*activeSeriesPage, max(len(pages), i+1))
	copy(grown, pages)
	grown[i] = new(activeSeriesPage)
	a.pages.Store(&grown)
	return grown[i]
}

// forget drops the marks of series the head removed.
func (a *activeSeries) forget(refs map[chunks.HeadSeriesRef]labels.Labels) {
	pages := *a.pages.Load()
	for ref := range refs {
		if i := int(uint64(ref) >> activePageBits); i < len(pages) && pages[i] != nil {
			pages[i][uint64(ref)%activePageSize].Store(0)
		}
	}
}

// purge drops the marks older than idle and returns how many series, and
// native histogram series, had a sample within it. A page left with no
// mark is freed; a push marking it at that moment may be lost, and its
// series counted as idle until its next push.
func (a *activeSeries) purge(now time.Time, idle time.Duration) (active, histograms int) {
	oldest := int64(now.Add(-idle).Sub(a.base)/time.Second) + 1
	pages := *a.pages.Load()
	var empty []int
	for pi, p := range pages {
		if p == nil {
			continue
		}
		n := 0
		for i := range p {
			v := p[i].Load()
			if v == 0 {
				continue
			}
			if int64(v&^activeHistogramBit) < oldest {
				p[i].CompareAndSwap(v, 0)
				continue
			}
			n++
			if v&activeHistogramBit != 0 {
				histograms++
			}
		}
		active += n
		if n == 0 {
			empty = append(empty, pi)
		}
	}
	if len(empty) > 0 {
		a.mu.Lock()
		grown := slices.Clone(*a.pages.Load())
		for _, pi := range empty {
			grown[pi] = nil
		}
		a.pages.Store(&grown)
		a.mu.Unlock()
	}
	return active, histograms
}

// updateActiveSeries purges each tenant's idle series and sets the active
// series metrics.
func (i *Ingester) updateActiveSeries(now time.Time) {
	for _, u := range i.allTSDBs() {
		if u.active == nil {
			continue
		}
		active, histograms := u.active.purge(now, i.cfg.ActiveSeriesMetricsIdleTimeout)
		i.metrics.activeSeries.WithLabelValues(u.id).Set(float64(active))
		i.metrics.activeHistogramSeries.WithLabelValues(u.id).Set(float64(histograms))
	}
}
