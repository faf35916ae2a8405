package ingester

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/grafana/dskit/concurrency"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

func (i *Ingester) closeAll() error {
	i.closeMu.Lock()
	defer i.closeMu.Unlock()
	i.closed = true
	i.mu.Lock()
	defer i.mu.Unlock()
	var errs []error
	for id, u := range i.tsdbs {
		if err := u.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing TSDB of tenant %q: %w", id, err))
		}
		i.forget(id, u)
		delete(i.tsdbs, id)
	}
	return errors.Join(errs...)
}

// forget removes a tenant's contribution to the process-wide metrics.
func (i *Ingester) forget(id string, u *userTSDB) {
	i.tsdbMetrics.remove(id)
	i.metrics.memUsers.Dec()
	u.seriesMu.Lock()
	n := 0
	for _, c := range u.seriesInMetric {
		n += c
	}
	u.seriesMu.Unlock()
	i.metrics.memSeries.Sub(float64(n))
	i.instance.seriesAdded(-n)
	i.metrics.seriesCreated.DeleteLabelValues(id)
	i.metrics.seriesRemoved.DeleteLabelValues(id)
	i.metrics.activeSeries.DeleteLabelValues(id)
	i.metrics.activeHistogramSeries.DeleteLabelValues(id)
	i.queried.forget(id)
	u.metadata.clear()
}

// openExistingTSDBs opens the TSDB of every tenant directory under the data
// directory, replaying its WAL. Only directories named as a valid tenant
// and holding a WAL are touched; anything else is left alone.
func (i *Ingester) openExistingTSDBs(ctx context.Context) error {
	entries, err := os.ReadDir(i.cfg.TSDB.Dir)
	if err != nil {
		return fmt.Errorf("reading -blocks-storage.tsdb.dir %q: %w", i.cfg.TSDB.Dir, err)
	}
	var ids []string
	for _, e := range entries {
		if !e.IsDir() || dskittenant.ValidTenantID(e.Name()) != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(i.cfg.TSDB.Dir, e.Name(), "wal")); err != nil || !fi.IsDir() {
			i.logger.Debug("skipping directory without a TSDB write-ahead log", "dir", filepath.Join(i.cfg.TSDB.Dir, e.Name()))
			continue
		}
		ids = append(ids, e.Name())
	}
	if len(ids) == 0 {
		return nil
	}
	start := time.Now()
	err = concurrency.ForEachUser(ctx, ids, i.cfg.TSDB.MaxTSDBOpeningConcurrencyOnStartup, func(_ context.Context, id string) error {
		u, err := i.openTSDB(id)
		if err != nil {
			return err
		}
		i.mu.Lock()
		i.tsdbs[id] = u
		i.mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	i.logger.Info("opened existing TSDBs", "tenants", len(ids), "duration", time.Since(start))
	return nil
}

// openTSDB opens (creating if needed) a tenant's TSDB and replays its WAL.
func (i *Ingester) openTSDB(id string) (*userTSDB, error) {
	// The tenant ID becomes a path component: the ID's validation (no
	// slash, not "." or "..") is what keeps it inside the data directory.
	if err := dskittenant.ValidTenantID(id); err != nil {
		return nil, fmt.Errorf("tenant %q: %w", id, err)
	}
	dir := filepath.Join(i.cfg.TSDB.Dir, id)
	l := i.limits.For(id)
	u := newUserTSDB(id, func() *validation.Limits { return i.limits.For(id) }, i.metrics, i.cfg.RateUpdatePeriod)
	u.instance = i.instance
	u.limiter = i.limiter

	ranges := i.cfg.TSDB.BlockRanges.toMilliseconds()
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = i.cfg.TSDB.Retention.Milliseconds()
	opts.MinBlockDuration = ranges[0]
	opts.MaxBlockDuration = ranges[len(ranges)-1]
	opts.WALSegmentSize = i.cfg.TSDB.WALSegmentSizeBytes
	opts.WALCompression = i.cfg.TSDB.walCompression()
	opts.HeadChunksWriteBufferSize = i.cfg.TSDB.HeadChunksWriteBufferSize
	opts.HeadChunksWriteQueueSize = i.cfg.TSDB.HeadChunksWriteQueueSize
	opts.StripeSize = i.cfg.TSDB.StripeSize
	opts.OutOfOrderTimeWindow = l.OutOfOrderWindow().Milliseconds()
	opts.OutOfOrderCapMax = i.cfg.TSDB.OutOfOrderCapMax
	// Exemplar storage is always on so a runtime change of
	// -ingester.max-exemplars can resize it (0 stores none). A new tenant's
	// buffer starts small and grows as exemplars arrive; a tenant with a
	// write-ahead log replays into a full-size buffer, sized down after.
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = min(int64(l.MaxExemplars), initialExemplarBuffer)
	if _, err := os.Stat(filepath.Join(dir, "wal")); err == nil {
		opts.MaxExemplars = int64(l.MaxExemplars)
	}
	opts.EnableMemorySnapshotOnShutdown = i.cfg.TSDB.MemorySnapshotOnShutdown
	// Start timestamps of remote write 2.0 samples become zero samples.
	opts.EnableSTAsZeroSample = true
	opts.SeriesLifecycleCallback = u
	if u.postings = i.postingsCache.NewCache(id); u.postings != nil {
		opts.BlockQuerierFunc = u.postings.BlockQuerierFunc()
		opts.BlockChunkQuerierFunc = u.postings.BlockChunkQuerierFunc()
	}
	if i.shipping() {
		// Read before the TSDB opens: its first reload asks which blocks
		// are shipped.
		u.shipper = newShipper(id, dir, i.bucket, i.logger, i.metrics)
		u.retention = i.cfg.TSDB.Retention
		opts.BlocksToDelete = u.blocksToDelete
		// Blocks are compacted in the bucket by the compactor. Merging
		// them here as well would make blocks (level > 1) that are not
		// shipped, whose sources might not have been shipped yet either.
		opts.BlockCompactionExcludeFunc = func(*tsdb.BlockMeta) bool { return true }
	}

	reg := prometheus.NewRegistry()
	start := time.Now()
	db, err := tsdb.Open(dir, i.logger.With("user", id), reg, opts, nil)
	if err != nil {
		// Undo what the replay counted before failing.
		u.seriesMu.Lock()
		n := 0
		for _, c := range u.seriesInMetric {
			n += c
		}
		u.seriesMu.Unlock()
		i.metrics.memSeries.Sub(float64(n))
		i.instance.seriesAdded(-n)
		return nil, fmt.Errorf("opening the TSDB of tenant %q in %s: %w", id, dir, err)
	}
	// Head compaction runs on -blocks-storage.tsdb.head-compaction-interval,
	// bounded across tenants by -blocks-storage.tsdb.head-compaction-concurrency.
	db.DisableCompactions()
	u.db = db
	u.retentionDB.Store(db)
	u.tsdb = tsdbLimits{oooWindow: opts.OutOfOrderTimeWindow, maxExemplars: int64(l.MaxExemplars), exemplarBuffer: opts.MaxExemplars, exemplarsSeen: exemplarsInStorage(reg)}
	u.oooWindow.Store(opts.OutOfOrderTimeWindow)
	if _, err := u.applyTSDBLimits(opts.OutOfOrderTimeWindow, int64(l.MaxExemplars)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sizing the exemplar buffer of tenant %q: %w", id, err)
	}
	u.limitsActive.Store(true)
	if i.cfg.ActiveSeriesMetricsEnabled {
		u.active = newActiveSeries(time.Now())
	}
	u.queried = i.queried.newTenant()
	i.tsdbMetrics.add(id, reg)
	i.metrics.memUsers.Inc()
	i.logger.Debug("opened TSDB", "user", id, "dir", dir, "series", db.Head().NumSeries(), "duration", time.Since(start))
	return u, nil
}

func (i *Ingester) getTSDB(id string) *userTSDB {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.tsdbs[id]
}

func (i *Ingester) getOrCreateTSDB(id string) (*userTSDB, error) {
	if u := i.getTSDB(id); u != nil {
		return u, nil
	}
	i.createMu.Lock()
	defer i.createMu.Unlock()
	if u := i.getTSDB(id); u != nil {
		return u, nil
	}
	i.mu.RLock()
	open := len(i.tsdbs)
	i.mu.RUnlock()
	if err := i.instance.admitTenant(open); err != nil {
		return nil, err
	}
	u, err := i.openTSDB(id)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	i.tsdbs[id] = u
	i.mu.Unlock()
	return u, nil
}

func (i *Ingester) allTSDBs() []*userTSDB {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]*userTSDB, 0, len(i.tsdbs))
	for _, u := range i.tsdbs {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *userTSDB) int { return strings.Compare(a.id, b.id) })
	return out
}

// applyTSDBConfigs applies runtime changes of the per-tenant limits that
// live inside the TSDB: the out-of-order window and the exemplar buffer.
func (i *Ingester) applyTSDBConfigs() {
	for _, u := range i.allTSDBs() {
		l := i.limits.For(u.id)
		ooo, maxEx := l.OutOfOrderWindow().Milliseconds(), int64(l.MaxExemplars)
		changed, err := u.applyTSDBLimits(ooo, maxEx)
		if err != nil {
			i.logger.Error("applying new limits to TSDB", "user", u.id, "err", err)
			continue
		}
		if changed {
			i.logger.Info("applied new limits to TSDB", "user", u.id, "out_of_order_time_window", time.Duration(ooo)*time.Millisecond, "max_exemplars", maxEx)
		}
	}
}
