package ingester

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
)

// initialExemplarBuffer is the exemplar buffer a tenant starts with. The
// TSDB allocates its circular exemplar buffer whole, so opening every
// tenant's at -ingester.max-exemplars (100,000 by default, about 5.6 MB)
// would cost each tenant that much before it sends one exemplar.
const initialExemplarBuffer = 1024

// tsdbLimits applies the per-tenant settings that live inside the TSDB:
// the out-of-order window and the size of the exemplar buffer. The buffer
// grows, doubling, before it could overwrite an exemplar, until it reaches
// the tenant's -ingester.max-exemplars.
//
// Every field is guarded by u.tsdbConfigMu.
type tsdbLimits struct {
	oooWindow      int64 // milliseconds, as applied to the TSDB
	maxExemplars   int64 // the limit the buffer grows to
	exemplarBuffer int64 // the buffer's size now
	exemplarsSeen  int64 // exemplars appended since the TSDB opened, replayed ones included
}

// exemplarBufferFor is the buffer size that holds twice seen exemplars, in
// doublings of the initial size, within the limit: growing before the
// buffer is full means no exemplar is overwritten while there is room.
func exemplarBufferFor(seen, limit int64) int64 {
	size := int64(initialExemplarBuffer)
	for size < 2*seen && size < limit {
		size *= 2
	}
	return min(size, limit)
}

// applyTSDBLimits gives the TSDB the out-of-order window and exemplar
// limit, sizing the exemplar buffer for the exemplars seen. It reports
// whether anything changed.
func (u *userTSDB) applyTSDBLimits(oooWindow, maxExemplars int64) (bool, error) {
	u.tsdbConfigMu.Lock()
	defer u.tsdbConfigMu.Unlock()
	return u.applyTSDBLimitsLocked(oooWindow, maxExemplars)
}

func (u *userTSDB) applyTSDBLimitsLocked(oooWindow, maxExemplars int64) (bool, error) {
	buffer := exemplarBufferFor(u.tsdb.exemplarsSeen, maxExemplars)
	if oooWindow == u.tsdb.oooWindow && maxExemplars == u.tsdb.maxExemplars && buffer == u.tsdb.exemplarBuffer {
		return false, nil
	}
	err := u.db.ApplyConfig(&config.Config{StorageConfig: config.StorageConfig{
		TSDBConfig:      &config.TSDBConfig{OutOfOrderTimeWindow: oooWindow},
		ExemplarsConfig: &config.ExemplarsConfig{MaxExemplars: buffer},
	}})
	if err != nil {
		return false, err
	}
	u.tsdb.oooWindow, u.tsdb.maxExemplars, u.tsdb.exemplarBuffer = oooWindow, maxExemplars, buffer
	u.oooWindow.Store(oooWindow)
	return true, nil
}

// reserveExemplars makes room for n more exemplars before they are
// appended: a push larger than half the buffer grows it first, so the push
// itself cannot overwrite older exemplars. Growing is rare (a few
// doublings in a tenant's life) and copies the buffer once.
func (u *userTSDB) reserveExemplars(n int) error {
	if n == 0 {
		return nil
	}
	u.tsdbConfigMu.Lock()
	defer u.tsdbConfigMu.Unlock()
	u.tsdb.exemplarsSeen += int64(n)
	if exemplarBufferFor(u.tsdb.exemplarsSeen, u.tsdb.maxExemplars) == u.tsdb.exemplarBuffer {
		return nil
	}
	_, err := u.applyTSDBLimitsLocked(u.tsdb.oooWindow, u.tsdb.maxExemplars)
	return err
}

// exemplarsInStorage reads how many exemplars a TSDB holds from its own
// metrics: after a WAL replay, the buffer is sized for those.
func exemplarsInStorage(reg prometheus.Gatherer) int64 {
	families, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, f := range families {
		if f.GetName() == "prometheus_tsdb_exemplar_exemplars_in_storage" && len(f.GetMetric()) > 0 {
			return int64(f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return 0
}
