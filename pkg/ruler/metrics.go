package ruler

import (
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// metrics are the ruler's own metrics, Cortex's names.
type metrics struct {
	queries          *prometheus.CounterVec
	queriesFailed    *prometheus.CounterVec
	querySeconds     *prometheus.CounterVec
	writes           *prometheus.CounterVec
	writesFailed     *prometheus.CounterVec
	syncs            *prometheus.CounterVec
	configUpdates    *prometheus.CounterVec
	lastReloadOK     *prometheus.GaugeVec
	lastReloadTime   *prometheus.GaugeVec
	managersTotal    prometheus.Gauge
	groupsSkipped    *prometheus.CounterVec
	storeSyncFailure prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ruler_queries_total",
			Help: "Number of queries the ruler's rules ran.",
		}, []string{"user"}),
		querySeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ruler_query_seconds_total",
			Help: "Total amount of wall clock time spent processing queries by the ruler.",
		}, []string{"user"}),
		queriesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ruler_queries_failed_total",
			Help: "Number of the ruler's rule queries that failed.",
		}, []string{"user"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ruler_write_requests_total",
			Help: "Number of write requests of rule results (recording rules, ALERTS, ALERTS_FOR_STATE) to the distributor.",
		}, []string{"user"}),
		writesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ruler_write_requests_failed_total",
			Help: "Number of write requests of rule results the distributor refused or failed.",
		}, []string{"user"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ruler_sync_rules_total",
			Help: "Number of times the ruler read the rule store, by reason.",
		}, []string{"reason"}),
		configUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ruler_config_updates_total",
			Help: "Number of times a tenant's rule groups changed.",
		}, []string{"user"}),
		lastReloadOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_ruler_config_last_reload_successful",
			Help: "Whether the last load of the tenant's rule groups succeeded.",
		}, []string{"user"}),
		lastReloadTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_ruler_config_last_reload_successful_seconds",
			Help: "Unix time of the last successful load of the tenant's rule groups.",
		}, []string{"user"}),
		managersTotal: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_ruler_managers_total",
			Help: "Number of tenants whose rules this ruler evaluates.",
		}),
		groupsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ruler_rule_groups_invalid_total",
			Help: "Number of times a stored rule group was left out because it is invalid.",
		}, []string{"user"}),
		storeSyncFailure: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ruler_sync_rules_failed_total",
			Help: "Number of rule store reads that failed.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.queries, m.queriesFailed, m.querySeconds, m.writes, m.writesFailed, m.syncs, m.configUpdates,
			m.lastReloadOK, m.lastReloadTime, m.managersTotal, m.groupsSkipped, m.storeSyncFailure)
	}
	return m
}

// deleteUser drops the tenant's series.
func (m *metrics) deleteUser(user string) {
	for _, v := range []*prometheus.CounterVec{m.queries, m.queriesFailed, m.querySeconds, m.writes, m.writesFailed, m.configUpdates, m.groupsSkipped} {
		v.DeleteLabelValues(user)
	}
	m.lastReloadOK.DeleteLabelValues(user)
	m.lastReloadTime.DeleteLabelValues(user)
}

// userRegistries exposes the metrics of each tenant's Prometheus rule
// manager, notifier and Alertmanager discovery, which register with
// Prometheus' own names on a registry of the tenant's, as Cortex does:
// prefixed cortex_ and labelled user=<tenant>
// (cortex_prometheus_rule_evaluations_total{user,rule_group},
// cortex_prometheus_notifications_sent_total{user,alertmanager}, ...). A
// tenant's series go when its registry is removed.
type userRegistries struct {
	mu   sync.Mutex
	regs map[string]*prometheus.Registry
	// noGroupLabel is -ruler.disable-rule-group-label: the counters and
	// gauges labelled rule_group are summed over a tenant's groups.
	noGroupLabel bool
}

func newUserRegistries(noGroupLabel bool) *userRegistries {
	return &userRegistries{regs: map[string]*prometheus.Registry{}, noGroupLabel: noGroupLabel}
}

func (u *userRegistries) add(user string, reg *prometheus.Registry) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.regs[user] = reg
}

func (u *userRegistries) remove(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.regs, user)
}

// Describe sends nothing: the metrics are only known once gathered, so the
// collector is unchecked.
func (u *userRegistries) Describe(chan<- *prometheus.Desc) {}

// Collect gathers every tenant's registry.
func (u *userRegistries) Collect(ch chan<- prometheus.Metric) {
	u.mu.Lock()
	regs := maps.Clone(u.regs)
	u.mu.Unlock()
	for _, user := range slices.Sorted(maps.Keys(regs)) {
		families, err := regs[user].Gather()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(prometheus.NewDesc("cortex_ruler_user_metrics_error", "Gathering a tenant's rule metrics failed.", nil, nil), err)
			continue
		}
		for _, mf := range families {
			if u.noGroupLabel {
				mf = withoutLabel(mf, ruleGroupLabel)
			}
			for _, m := range mf.GetMetric() {
				ch <- relabelled(mf, m, user)
			}
		}
	}
}

// userMetric is one gathered metric with the cortex_ prefix and the user
// label added.
type userMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func relabelled(mf *dto.MetricFamily, m *dto.Metric, user string) prometheus.Metric {
	out := proto.Clone(m).(*dto.Metric)
	out.Label = append(out.Label, &dto.LabelPair{Name: proto.String("user"), Value: proto.String(user)})
	sort.Slice(out.Label, func(i, j int) bool { return out.Label[i].GetName() < out.Label[j].GetName() })
	names := make([]string, len(out.Label))
	for i, l := range out.Label {
		names[i] = l.GetName()
	}
	return userMetric{desc: prometheus.NewDesc("cortex_"+mf.GetName(), mf.GetHelp(), names, nil), m: out}
}

func (u userMetric) Desc() *prometheus.Desc { return u.desc }

func (u userMetric) Write(out *dto.Metric) error {
	proto.Reset(out)
	proto.Merge(out, u.m)
	return nil
}

// ruleGroupLabel is the label Prometheus' rule manager puts on its
// per-group metrics.
const ruleGroupLabel = "rule_group"

// withoutLabel returns mf with the label name removed from its counters and
// gauges, the values of series it then no longer tells apart summed (as
// Cortex's ruler does with -ruler.disable-rule-group-label). Families of
// other types, and those without the label, are returned as they are.
func withoutLabel(mf *dto.MetricFamily, name string) *dto.MetricFamily {
	if t := mf.GetType(); t != dto.MetricType_COUNTER && t != dto.MetricType_GAUGE {
		return mf
	}
	has := false
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				has = true
			}
		}
	}
	if !has {
		return mf
	}
	out := &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type}
	index := map[string]*dto.Metric{}
	for _, m := range mf.GetMetric() {
		var key []byte
		kept := make([]*dto.LabelPair, 0, len(m.GetLabel()))
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				continue
			}
			kept = append(kept, l)
			key = append(append(append(key, l.GetName()...), 0), append([]byte(l.GetValue()), 0)...)
		}
		value := m.GetCounter().GetValue()
		if mf.GetType() == dto.MetricType_GAUGE {
			value = m.GetGauge().GetValue()
		}
		sum, ok := index[string(key)]
		if !ok {
			sum = &dto.Metric{Label: kept}
			if mf.GetType() == dto.MetricType_GAUGE {
				sum.Gauge = &dto.Gauge{Value: proto.Float64(0)}
			} else {
				sum.Counter = &dto.Counter{Value: proto.Float64(0)}
			}
			index[string(key)] = sum
			out.Metric = append(out.Metric, sum)
		}
		if sum.Gauge != nil {
			*sum.Gauge.Value += value
		} else {
			*sum.Counter.Value += value
		}
	}
	return out
}
