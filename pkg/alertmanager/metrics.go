package alertmanager

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// tenantMetrics exposes every tenant's Alertmanager metrics (notifications,
// silences, notification log, dispatcher...) on the process's registry,
// with a "user" label naming the tenant, as Cortex does. Each tenant keeps
// its own registry because the libraries register fixed metric names.
type tenantMetrics struct{ am *MultitenantAlertmanager }

// Describe sends nothing: the set of tenants changes, so the collector is
// unchecked.
func (tenantMetrics) Describe(chan<- *prometheus.Desc) {}

func (c tenantMetrics) Collect(ch chan<- prometheus.Metric) {
	c.am.mtx.RLock()
	regs := make(map[string]*prometheus.Registry, len(c.am.tenants))
	for id, t := range c.am.tenants {
		regs[id] = t.reg
	}
	c.am.mtx.RUnlock()
	for id, reg := range regs {
		mfs, err := reg.Gather()
		if err != nil {
			c.am.logger.Warn("gathering a tenant's Alertmanager metrics", "tenant", id, "err", err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if pm := relabel(mf, m, id); pm != nil {
					ch <- pm
				}
			}
		}
	}
}

func relabel(mf *dto.MetricFamily, m *dto.Metric, user string) prometheus.Metric {
	names := []string{"user"}
	values := []string{user}
	for _, l := range m.GetLabel() {
		names = append(names, l.GetName())
		values = append(values, l.GetValue())
	}
	desc := prometheus.NewDesc(mf.GetName(), mf.GetHelp(), names, nil)
	var (
		pm  prometheus.Metric
		err error
	)
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		pm, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
	case dto.MetricType_GAUGE:
		pm, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
	case dto.MetricType_UNTYPED:
		pm, err = prometheus.NewConstMetric(desc, prometheus.UntypedValue, m.GetUntyped().GetValue(), values...)
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		buckets := make(map[float64]uint64, len(h.GetBucket()))
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		pm, err = prometheus.NewConstHistogram(desc, h.GetSampleCount(), h.GetSampleSum(), buckets, values...)
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		q := make(map[float64]float64, len(s.GetQuantile()))
		for _, v := range s.GetQuantile() {
			q[v.GetQuantile()] = v.GetValue()
		}
		pm, err = prometheus.NewConstSummary(desc, s.GetSampleCount(), s.GetSampleSum(), q, values...)
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	return pm
}
