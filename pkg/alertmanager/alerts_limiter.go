package alertmanager

import (
	"fmt"
	"sync"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// alertsLimiter bounds the alerts a tenant's Alertmanager holds by
// -alertmanager.max-alerts-count and -alertmanager.max-alerts-size-bytes.
// It is the alert store's callback: an alert it refuses is not stored, is
// logged by the store and counted in
// alertmanager_alerts_insert_limited_total. An update of an alert already
// held is always counted in, so a resolved alert can still be delivered.
type alertsLimiter struct {
	mem.AlertStoreCallback // the silencer's, called as well
	limits                 func() *validation.Limits
	limited                prometheus.Counter

	mtx   sync.Mutex
	sizes map[model.Fingerprint]int
	total int
}

func newAlertsLimiter(next mem.AlertStoreCallback, limits func() *validation.Limits, reg prometheus.Registerer) *alertsLimiter {
	l := &alertsLimiter{
		AlertStoreCallback: next,
		limits:             limits,
		limited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "alertmanager_alerts_insert_limited_total",
			Help: "Alerts not stored because of the tenant's -alertmanager.max-alerts-count or -alertmanager.max-alerts-size-bytes.",
		}),
		sizes: map[model.Fingerprint]int{},
	}
	if reg != nil {
		reg.MustRegister(l.limited)
	}
	return l
}

// alertSize counts an alert's labels, annotations and generator URL.
func alertSize(a model.Alert) int {
	n := len(a.GeneratorURL)
	for k, v := range a.Labels {
		n += len(k) + len(v)
	}
	for k, v := range a.Annotations {
		n += len(k) + len(v)
	}
	return n
}

func (l *alertsLimiter) PreStore(a *alert.Alert, existing bool) error {
	if err := l.AlertStoreCallback.PreStore(a, existing); err != nil {
		return err
	}
	lim := l.limits()
	countLimit, sizeLimit := lim.AlertmanagerMaxAlertsCount, lim.AlertmanagerMaxAlertsSizeBytes
	if existing || (countLimit <= 0 && sizeLimit <= 0) {
		return nil
	}
	l.mtx.Lock()
	defer l.mtx.Unlock()
	if countLimit > 0 && len(l.sizes) >= countLimit {
		l.limited.Inc()
		return fmt.Errorf("too many alerts: limit %d (-alertmanager.max-alerts-count), alert name: %s", countLimit, a.Name())
	}
	if size := alertSize(a.Alert); sizeLimit > 0 && l.total+size > sizeLimit {
		l.limited.Inc()
		return fmt.Errorf("alerts too big: total size limit %d bytes (-alertmanager.max-alerts-size-bytes), alert name: %s", sizeLimit, a.Name())
	}
	return nil
}

func (l *alertsLimiter) PostStore(a *alert.Alert, existing bool) {
	l.AlertStoreCallback.PostStore(a, existing)
	fp := a.Fingerprint()
	size := alertSize(a.Alert)
	l.mtx.Lock()
	l.total += size - l.sizes[fp]
	l.sizes[fp] = size
	l.mtx.Unlock()
}

func (l *alertsLimiter) PostDelete(a *alert.Alert) {
	l.AlertStoreCallback.PostDelete(a)
	fp := a.Fingerprint()
	l.mtx.Lock()
	l.total -= l.sizes[fp]
	delete(l.sizes, fp)
	l.mtx.Unlock()
}

// aggregationGroupLimits is dispatch.Limits for
// -alertmanager.max-dispatcher-aggregation-groups.
type aggregationGroupLimits func() *validation.Limits

func (f aggregationGroupLimits) MaxNumberOfAggregationGroups() int {
	return f().AlertmanagerMaxDispatcherAggregationGroups
}
