package ingester

import (
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// tsdbMetrics exposes the metrics of every tenant's TSDB. Each TSDB
// registers into its own registry (registering them all into the process
// registry would collide, and a failed open could not be retried without
// a duplicate-registration panic); this collector sums them across tenants
// under Cortex's names, prometheus_tsdb_* becoming cortex_ingester_tsdb_*,
// so the series count does not grow with the number of tenants.
type tsdbMetrics struct {
	mu   sync.Mutex
	regs map[string]*prometheus.Registry
}

func newTSDBMetrics() *tsdbMetrics {
	return &tsdbMetrics{regs: map[string]*prometheus.Registry{}}
}

func (t *tsdbMetrics) add(tenant string, r *prometheus.Registry) {
	t.mu.Lock()
	t.regs[tenant] = r
	t.mu.Unlock()
}

func (t *tsdbMetrics) remove(tenant string) {
	t.mu.Lock()
	delete(t.regs, tenant)
	t.mu.Unlock()
}

// Describe sends nothing: the set of TSDB metrics is only known by
// gathering, so this is an unchecked collector.
func (t *tsdbMetrics) Describe(chan<- *prometheus.Desc) {}

type aggSeries struct {
	labels  []*dto.LabelPair
	value   float64
	count   uint64
	sum     float64
	buckets map[float64]uint64
}

type aggFamily struct {
	help   string
	typ    dto.MetricType
	series map[string]*aggSeries
	order  []string
}

// Collect gathers every tenant's registry and sends the sums.
func (t *tsdbMetrics) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	regs := make([]*prometheus.Registry, 0, len(t.regs))
	for _, r := range t.regs {
		regs = append(regs, r)
	}
	t.mu.Unlock()

	families := map[string]*aggFamily{}
	var names []string
	for _, r := range regs {
		mfs, err := r.Gather()
		if err != nil {
			continue // a partial gather still has the consistent families
		}
		for _, mf := range mfs {
			name := tsdbMetricName(mf.GetName())
			f := families[name]
			if f == nil {
				f = &aggFamily{help: mf.GetHelp(), typ: mf.GetType(), series: map[string]*aggSeries{}}
				families[name] = f
				names = append(names, name)
			}
			if f.typ != mf.GetType() {
				continue
			}
			for _, m := range mf.GetMetric() {
				key := labelsKey(m.GetLabel())
				s := f.series[key]
				first := s == nil
				if first {
					s = &aggSeries{labels: m.GetLabel()}
					f.series[key] = s
					f.order = append(f.order, key)
				}
				mergeMetric(name, f.typ, s, m, first)
			}
		}
	}
	slices.Sort(names)
	for _, name := range names {
		f := families[name]
		for _, key := range f.order {
			s := f.series[key]
			lnames := make([]string, len(s.labels))
			lvalues := make([]string, len(s.labels))
			for i, l := range s.labels {
				lnames[i], lvalues[i] = l.GetName(), l.GetValue()
			}
			desc := prometheus.NewDesc(name, f.help, lnames, nil)
			var (
				m   prometheus.Metric
				err error
			)
			switch f.typ {
			case dto.MetricType_COUNTER:
				m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, s.value, lvalues...)
			case dto.MetricType_GAUGE:
				m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.value, lvalues...)
			case dto.MetricType_UNTYPED:
				m, err = prometheus.NewConstMetric(desc, prometheus.UntypedValue, s.value, lvalues...)
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				m, err = prometheus.NewConstHistogram(desc, s.count, s.sum, s.buckets, lvalues...)
			case dto.MetricType_SUMMARY:
				// Quantiles do not add up across tenants: count and sum do.
				m, err = prometheus.NewConstSummary(desc, s.count, s.sum, nil, lvalues...)
			default:
				continue
			}
			if err == nil {
				ch <- m
			}
		}
	}
}

func tsdbMetricName(name string) string {
	if rest, ok := strings.CutPrefix(name, "prometheus_tsdb_"); ok {
		return "cortex_ingester_tsdb_" + rest
	}
	return "cortex_ingester_tsdb_" + strings.TrimPrefix(name, "prometheus_")
}

func labelsKey(ls []*dto.LabelPair) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.GetName())
		b.WriteByte(0)
		b.WriteString(l.GetValue())
		b.WriteByte(0)
	}
	return b.String()
}

// mergeMetric adds m into s. Gauges that are timestamps, flags, settings
// or positions are combined with min or max, as a sum of them would mean
// nothing; every other value (counts, sizes, durations) is summed.
func mergeMetric(name string, typ dto.MetricType, s *aggSeries, m *dto.Metric, first bool) {
	switch typ {
	case dto.MetricType_COUNTER:
		s.value += m.GetCounter().GetValue()
	case dto.MetricType_UNTYPED:
		s.value += m.GetUntyped().GetValue()
	case dto.MetricType_GAUGE:
		v := m.GetGauge().GetValue()
		switch {
		case first:
			s.value = v
		case strings.Contains(name, "min_time") || strings.Contains(name, "lowest_timestamp") || strings.HasSuffix(name, "clean_start"):
			s.value = math.Min(s.value, v)
		case strings.Contains(name, "max_time") || strings.Contains(name, "_timestamp") || strings.Contains(name, "retention_limit") ||
			strings.Contains(name, "watermark") || strings.HasSuffix(name, "segment_current"):
			s.value = math.Max(s.value, v)
		default:
			s.value += v
		}
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		h := m.GetHistogram()
		s.count += h.GetSampleCount()
		s.sum += h.GetSampleSum()
		for _, b := range h.GetBucket() {
			if s.buckets == nil {
				s.buckets = map[float64]uint64{}
			}
			if !math.IsInf(b.GetUpperBound(), 1) {
				s.buckets[b.GetUpperBound()] += b.GetCumulativeCount()
			}
		}
	case dto.MetricType_SUMMARY:
		sm := m.GetSummary()
		s.count += sm.GetSampleCount()
		s.sum += sm.GetSampleSum()
	}
}
