package ingester

import (
	"time"
)

// Results of an idle TSDB check, cortex_ingester_idle_tsdb_checks_total's
// result label as Cortex names them.
const (
	idleCheckShippingDisabled = "shipping_disabled"
	idleCheckNotIdle          = "not_idle"
	idleCheckNotCompacted     = "not_compacted"
	idleCheckNotShipped       = "not_shipped"
	idleCheckCloseFailed      = "close_failed"
	idleCheckClosed           = "idle_closed"
)

var idleCheckResults = []string{idleCheckShippingDisabled, idleCheckNotIdle, idleCheckNotCompacted, idleCheckNotShipped, idleCheckCloseFailed, idleCheckClosed}

// closeIdleTSDBs closes and deletes, as Cortex's
// -blocks-storage.tsdb.close-idle-tsdb-timeout does, the local TSDB of
// every tenant that received no samples for the timeout, whose head is
// empty (compacted) and whose blocks are all in the bucket: the bucket
// then holds all its data, and the ingester no longer spends memory or
// disk on it. A later push opens a new TSDB. It runs in the loop that
// compacts heads, before them, so the head a compaction just emptied is
// closed once its blocks are shipped.
func (i *Ingester) closeIdleTSDBs() {
	timeout := i.cfg.TSDB.CloseIdleTSDBTimeout
	if timeout <= 0 {
		return
	}
	var idle []*userTSDB
	for _, u := range i.allTSDBs() {
		result := i.idleCheck(u, timeout)
		if result == "" {
			idle = append(idle, u)
			continue
		}
		i.metrics.idleTSDBChecks.WithLabelValues(result).Inc()
	}
	if len(idle) == 0 {
		return
	}
	i.closeMu.Lock()
	defer i.closeMu.Unlock()
	if i.closed {
		return
	}
	for _, u := range idle {
		// Pushes hold closeMu for reading: with it held here, check
		// again for one that came in since.
		if result := i.idleCheck(u, timeout); result != "" {
			i.metrics.idleTSDBChecks.WithLabelValues(result).Inc()
			continue
		}
		dir := u.db.Dir()
		if err := i.deleteTenantTSDB(u); err != nil {
			i.metrics.idleTSDBChecks.WithLabelValues(idleCheckCloseFailed).Inc()
			i.logger.Error("closing an idle TSDB", "user", u.id, "err", err)
			continue
		}
		i.metrics.idleTSDBChecks.WithLabelValues(idleCheckClosed).Inc()
		i.logger.Info("closed and deleted an idle TSDB, all of whose blocks are shipped", "user", u.id, "dir", dir)
	}
}

// idleCheck returns why u's TSDB must stay open, or "" if it may close.
func (i *Ingester) idleCheck(u *userTSDB, timeout time.Duration) string {
	if u.shipper == nil {
		// Without shipping, the local blocks are the only copy.
		return idleCheckShippingDisabled
	}
	if time.Since(time.Unix(0, u.lastPush.Load())) <= timeout {
		return idleCheckNotIdle
	}
	if u.db.Head().NumSeries() > 0 {
		return idleCheckNotCompacted
	}
	for _, b := range u.db.Blocks() {
		if !u.shipper.isShipped(b.Meta().ULID.String()) {
			return idleCheckNotShipped
		}
	}
	return ""
}
