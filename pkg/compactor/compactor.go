package compactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"

	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/util/tenantfilter"
)

// compactSubdir is the compactor's own directory under -compactor.data-dir:
// it removes only what is under it, since the data directory may be
// shared with other components.
const compactSubdir = "compact"

// Compactor compacts, cleans up and indexes every tenant's blocks.
type Compactor struct {
	services.Service

	cfg    Config
	bkt    objstore.Bucket
	logger *slog.Logger
	m      *metrics
	// tsdbMetrics are shared by the per-job LeveledCompactors, which are
	// not registered: an ingester in the same process registers the
	// prometheus_tsdb_* names for its own TSDBs.
	tsdbMetrics *tsdb.CompactorMetrics
	chunkPool   chunkenc.Pool
	// compactionBkt is what a compaction plans and reads through: the
	// bucket, or its caching wrapper (WithCachingBuckets). bkt is the
	// cleanup's.
	compactionBkt objstore.Bucket
	// marksMigrated are the tenants whose block marks were copied to the
	// global markers location
	// (-compactor.block-deletion-marks-migration-enabled).
	marksMigrated sync.Map

	// retention is each tenant's -compactor.blocks-retention-period (0:
	// keep); nil keeps every tenant's blocks.
	retention func(tenant string) time.Duration
	// ring shards the tenants over the compactors; nil: this compactor
	// owns every tenant.
	ring *shardring.Member
	// shardSize is each tenant's -compactor.tenant-shard-size, for the
	// shuffle-sharding strategy; nil: the whole ring.
	shardSize func(tenant string) float64
	// allowed are the tenants of -compactor.enabled-tenants and
	// -disabled-tenants.
	allowed *tenantfilter.Allowed
	// verify checks a downloaded source block's index: verifyIndex.
	verify func(ctx context.Context, dir string, minT, maxT int64) (indexHealth, error)
	// userIndex writes the bucket's user index
	// (-blocks-storage.users-scanner.strategy=user_index); nil: none.
	userIndex *users.IndexUpdater
	// userIndexInterval is how often the user index is written.
	userIndexInterval time.Duration
	// partitionLimits are each tenant's partition limits, for the
	// partitioning strategy; nil: none.
	partitionLimits func(tenant string) (indexSizeBytes, seriesCount int64)
	// ingestionRF is the ingesters' replication factor (at least 1).
	ingestionRF int

	mu sync.Mutex
	// indexes are the tenants' last bucket indexes, so that an update
	// reads only the meta.json of blocks it has not seen.
	indexes map[string]*bucketindex.Index
	// metas are the meta.json of the tenants' blocks the partitioning
	// strategy last planned on.
	metas map[string]map[ulid.ULID]*block.Meta
}

// Option sets an optional part of a compactor.
type Option func(*Compactor)

// WithRetention applies each tenant's retention period, as retention
// answers it (the -compactor.blocks-retention-period limit and its
// per-tenant overrides); 0 keeps the tenant's blocks.
func WithRetention(retention func(tenant string) time.Duration) Option {
	return func(c *Compactor) { c.retention = retention }
}

// WithUserIndex has the compactor write the bucket's user index when it
// starts and every interval (-blocks-storage.users-scanner.user-index.update-interval),
// for the users scanners: with sharding, only the compactor owning the
// index's name in the ring does.
func WithUserIndex(u *users.IndexUpdater, interval time.Duration) Option {
	return func(c *Compactor) { c.userIndex, c.userIndexInterval = u, interval }
}

// New returns a compactor of the tenants' blocks in bkt (the whole bucket,
// each tenant under its own prefix).
func New(cfg Config, bkt objstore.Bucket, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Compactor{
		cfg:         cfg,
		bkt:         bkt,
		logger:      logger,
		m:           newMetrics(reg, cfg.CompactionStrategy == CompactionStrategyPartitioning),
		tsdbMetrics: tsdb.NewCompactorMetrics(nil),
		chunkPool:   chunkenc.NewPool(),
		indexes:     map[string]*bucketindex.Index{},
		metas:       map[string]map[ulid.ULID]*block.Meta{},
		allowed:     tenantfilter.New(cfg.EnabledTenants, cfg.DisabledTenants),
		verify:      verifyIndex,
	}
	c.compactionBkt = bkt
	for _, o := range opts {
		o(c)
	}
	if cfg.ShardingEnabled && c.ring == nil {
		return nil, errors.New("compactor: -compactor.sharding-enabled=true but no ring given")
	}
	if c.ingestionRF < 1 {
		c.ingestionRF = 1
	}
	c.Service = services.NewBasicService(c.starting, c.running, c.stopping)
	return c, nil
}

func (c *Compactor) workDir() string { return filepath.Join(c.cfg.DataDir, compactSubdir) }

// starting removes what a compaction interrupted by a crash left behind.
func (c *Compactor) starting(ctx context.Context) error {
	if err := os.RemoveAll(c.workDir()); err != nil {
		return fmt.Errorf("cleaning the compactor's directory %s under -compactor.data-dir: %w", c.workDir(), err)
	}
	if err := os.MkdirAll(c.workDir(), 0o750); err != nil {
		return fmt.Errorf("creating the compactor's directory %s under -compactor.data-dir: %w", c.workDir(), err)
	}
	return c.joinRing(ctx)
}

// running compacts every -compactor.compaction-interval and cleans up
// every -compactor.cleanup-interval, starting with both. They take turns
// rather than run together, so that a cleanup never deletes or marks a
// block a compaction is reading, and retention never races compaction.
func (c *Compactor) running(ctx context.Context) error {
	c.runCleanup(ctx)
	c.updateUserIndex(ctx)
	c.runCompaction(ctx)
	compactTicker := time.NewTicker(c.cfg.CompactionInterval)
	defer compactTicker.Stop()
	cleanupTicker := time.NewTicker(c.cfg.CleanupInterval)
	defer cleanupTicker.Stop()
	var userIndex <-chan time.Time
	if c.userIndex != nil && c.userIndexInterval > 0 {
		t := time.NewTicker(c.userIndexInterval)
		defer t.Stop()
		userIndex = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-compactTicker.C:
			c.runCompaction(ctx)
		case <-cleanupTicker.C:
			c.runCleanup(ctx)
		case <-userIndex:
			c.updateUserIndex(ctx)
		}
	}
}

func (c *Compactor) runCompaction(ctx context.Context) {
	if err := c.Compact(ctx); err != nil && ctx.Err() == nil {
		c.logger.Error("compaction run failed", "err", err)
	}
}

func (c *Compactor) runCleanup(ctx context.Context) {
	if err := c.Cleanup(ctx); err != nil && ctx.Err() == nil {
		c.logger.Error("blocks cleanup failed", "err", err)
	}
}

// tenants lists the tenants with a directory in the bucket that
// -compactor.enabled-tenants and -disabled-tenants allow.
func (c *Compactor) tenants(ctx context.Context) ([]string, error) {
	var tenants []string
	err := c.bkt.Iter(ctx, "", func(name string) error {
		if t, ok := strings.CutSuffix(name, "/"); ok && t != "" && t != "." && t != ".." && t != bucketindex.GlobalMarkersDir && c.allowed.IsAllowed(t) {
			tenants = append(tenants, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the tenants in the bucket: %w", err)
	}
	slices.Sort(tenants)
	return tenants, nil
}

// forEachTenant runs f on the tenants, concurrency at a time, and joins
// their errors.
func forEachTenant(ctx context.Context, tenants []string, concurrency int, f func(context.Context, string) error) error {
	ch := make(chan string)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range min(concurrency, len(tenants)) {
		wg.Go(func() {
			for t := range ch {
				if err := f(ctx, t); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, t := range tenants {
		select {
		case ch <- t:
		case <-ctx.Done():
		}
	}
	close(ch)
	wg.Wait()
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// Compact runs one compaction pass: for every tenant, compacts blocks until
// the planner finds nothing more to do.
func (c *Compactor) Compact(ctx context.Context) error {
	c.m.runsStarted.Inc()
	err := c.compact(ctx)
	// Progress gauges describe the run in progress, as Cortex's: zero
	// while idle.
	c.m.tenantsDiscovered.Set(0)
	c.m.tenantsSkipped.Set(0)
	c.m.tenantsSucceeded.Set(0)
	c.m.tenantsFailed.Set(0)
	if err != nil {
		c.m.runsFailed.Inc()
		return err
	}
	c.m.runsCompleted.Inc()
	c.m.lastSuccessfulRun.SetToCurrentTime()
	return nil
}

func (c *Compactor) compact(ctx context.Context) error {
	tenants, err := c.tenants(ctx)
	if err != nil {
		return err
	}
	c.m.tenantsDiscovered.Set(float64(len(tenants)))
	owned := c.ownedTenants(tenants)
	if c.cfg.CompactionStrategy == CompactionStrategyPartitioning {
		owned = c.shardTenants(tenants)
	}
	c.m.tenantsSkipped.Set(float64(len(tenants) - len(owned)))
	return forEachTenant(ctx, owned, c.cfg.CompactionConcurrency, func(ctx context.Context, tenant string) error {
		// A tenant marked for deletion is not compacted: the cleanup
		// deletes its blocks.
		marked, err := bucketindex.TenantDeletionMarkExists(ctx, c.compactionBkt, tenant)
		if err != nil {
			c.m.tenantsFailed.Inc()
			return fmt.Errorf("tenant %q: %w", tenant, err)
		}
		if marked {
			c.m.tenantsSkipped.Inc()
			c.logger.Debug("skipping the compaction of a tenant marked for deletion", "user", tenant)
			return nil
		}
		err = c.compactTenantWithRetries(ctx, tenant)
		if err != nil {
			c.m.tenantsFailed.Inc()
			return err
		}
		c.m.tenantsSucceeded.Inc()
		return nil
	})
}

// compactTenantWithRetries makes up to -compactor.compaction-retries
// attempts at a tenant's compaction (at least one), backing off between
// them as Cortex does: most failures are the bucket's, and pass.
func (c *Compactor) compactTenantWithRetries(ctx context.Context, tenant string) error {
	attempts := max(1, c.cfg.CompactionRetries)
	b := backoff.New(ctx, backoff.Config{MinBackoff: 10 * time.Second, MaxBackoff: time.Minute})
	compact := c.compactTenant
	if c.cfg.CompactionStrategy == CompactionStrategyPartitioning {
		compact = c.compactTenantPartitioned
	}
	for attempt := 1; ; attempt++ {
		err := compact(ctx, tenant)
		if err == nil || attempt >= attempts || ctx.Err() != nil {
			return err
		}
		c.logger.Warn("compacting a tenant's blocks failed; retrying", "user", tenant, "attempt", attempt, "err", err)
		b.Wait()
	}
}

func (c *Compactor) compactTenant(ctx context.Context, tenant string) error {
	updater := bucketindex.NewUpdater(c.compactionBkt, tenant, c.logger).WithConcurrency(c.cfg.BlockSyncConcurrency)
	tbkt := objstore.NewPrefixedBucket(c.compactionBkt, tenant)
	defer func() {
		// Only the tenant's now empty work directory: jobs remove their own.
		_ = os.Remove(filepath.Join(c.workDir(), tenant))
	}()
	noCompact, err := noCompactMarked(ctx, tbkt)
	if err != nil {
		return fmt.Errorf("tenant %q: %w", tenant, err)
	}
	for ctx.Err() == nil {
		candidates, err := c.candidates(ctx, tenant, updater, noCompact)
		if err != nil {
			return err
		}
		job := plan(c.cfg.BlockRanges.ToMilliseconds(), candidates)
		if job == nil {
			return nil
		}
		if err := c.compactJob(ctx, tenant, tbkt, job, jobOptions{}); err != nil {
			var ooo outOfOrderChunksError
			if errors.As(err, &ooo) && c.cfg.SkipBlocksWithOutOfOrderChunksEnabled {
				if merr := c.markNoCompact(ctx, tbkt, ooo.id, noCompactReasonOutOfOrderChunks, "OutofOrderChunk: marking block with out-of-order series/chunks to as no compact to unblock compaction"); merr != nil {
					return errors.Join(err, merr)
				}
				c.logger.Warn("marked a block with out-of-order chunks no-compact", "user", tenant, "block", ooo.id, "err", err)
				noCompact[ooo.id] = struct{}{}
				continue
			}
			c.m.compactionFailures.Inc()
			return err
		}
	}
	return ctx.Err()
}

// candidates updates the tenant's bucket index and returns the blocks the
// compactor may merge: its active blocks not marked no-compact, and none
// newer than -compactor.consistency-delay.
func (c *Compactor) candidates(ctx context.Context, tenant string, updater *bucketindex.Updater, noCompact map[ulid.ULID]struct{}) ([]*bucketindex.Block, error) {
	idx, _, err := updater.UpdateIndex(ctx, c.index(tenant))
	if err != nil {
		return nil, err
	}
	c.setIndex(tenant, idx)
	fresh := ulid.Timestamp(time.Now().Add(-c.cfg.ConsistencyDelay))
	return slices.DeleteFunc(idx.ActiveBlocks(), func(b *bucketindex.Block) bool {
		_, skip := noCompact[b.ID]
		return skip || (c.cfg.ConsistencyDelay > 0 && b.ID.Time() > fresh)
	}), nil
}

// noCompactMarked returns the tenant's blocks with a no-compact mark
// (markers/<ULID>-no-compact-mark.json, Thanos' and Cortex's way for an
// operator or tool to keep a block out of compaction).
func noCompactMarked(ctx context.Context, tbkt objstore.Bucket) (map[ulid.ULID]struct{}, error) {
	ids := map[ulid.ULID]struct{}{}
	err := tbkt.Iter(ctx, block.MarkersDirname, func(name string) error {
		if id, ok := block.IsGlobalNoCompactMarkPath(name); ok {
			ids[id] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing no-compact marks: %w", err)
	}
	return ids, nil
}

// jobOptions are what the partitioning strategy changes in a compaction.
type jobOptions struct {
	// populator writes the merged block; nil: Prometheus' default, every
	// series.
	populator tsdb.BlockPopulator
	// extensions go to the result's meta.json thanos.extensions.
	extensions json.RawMessage
	// keepSources leaves the source blocks unmarked: the cleaner marks
	// them once every partition of their plan is compacted.
	keepSources bool
	// logAttrs are added to the compaction's log line.
	logAttrs []any
}

// compactJob downloads a group of a tenant's blocks, merges them with
// Prometheus' compactor, uploads the result and marks the group for
// deletion. The result is uploaded before the sources are marked, so that
// a failure in between leaves the samples twice (merged again by the next
// compaction) rather than nowhere.
func (c *Compactor) compactJob(ctx context.Context, tenant string, tbkt objstore.Bucket, job bucketindex.Blocks, opts jobOptions) error {
	ids := job.GetULIDs()
	jobDir := filepath.Join(c.workDir(), tenant, ids[0].String())
	if err := os.RemoveAll(jobDir); err != nil {
		return fmt.Errorf("tenant %q: clearing %s: %w", tenant, jobDir, err)
	}
	defer func() {
		if err := os.RemoveAll(jobDir); err != nil {
			c.logger.Warn("removing a compaction's directory", "user", tenant, "dir", jobDir, "err", err)
		}
	}()

	start := time.Now()
	dirs := make([]string, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.BlocksFetchConcurrency)
	for i, id := range ids {
		dirs[i] = filepath.Join(jobDir, id.String())
		g.Go(func() error {
			if err := block.DownloadConcurrently(gctx, tbkt, id, dirs[i], c.cfg.BlockFilesConcurrency); err != nil {
				return err
			}
			return c.checkBlock(gctx, id, dirs[i], job[i].MinTime, job[i].MaxTime)
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("tenant %q: %w", tenant, err)
	}
	downloaded := time.Since(start)

	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, quietLogger(c.logger), c.cfg.BlockRanges.ToMilliseconds(), c.chunkPool,
		tsdb.LeveledCompactorOptions{EnableOverlappingCompaction: true, Metrics: c.tsdbMetrics})
	if err != nil {
		return fmt.Errorf("tenant %q: creating the TSDB compactor: %w", tenant, err)
	}
	outDir := filepath.Join(jobDir, "out")
	if err := os.MkdirAll(outDir, 0o750); err != nil {
		return fmt.Errorf("tenant %q: %w", tenant, err)
	}
	populator := opts.populator
	if populator == nil {
		populator = tsdb.DefaultBlockPopulator{}
	}
	newIDs, err := comp.CompactWithBlockPopulator(outDir, dirs, nil, populator)
	if err != nil {
		return fmt.Errorf("tenant %q: compacting blocks %s: %w", tenant, idList(ids), err)
	}
	compacted := time.Since(start) - downloaded

	var samples uint64
	for _, id := range newIDs {
		dir := filepath.Join(outDir, id.String())
		m, err := block.ReadMetaFile(dir)
		if err != nil {
			return fmt.Errorf("tenant %q: reading the meta of compacted block %s: %w", tenant, id, err)
		}
		samples += m.Stats.NumSamples
		thanos := block.ThanosMeta{
			Labels:     map[string]string{block.TenantIDExternalLabel: tenant},
			Source:     block.SourceCompactor,
			Extensions: opts.extensions,
		}
		if err := block.UploadConcurrently(ctx, tbkt, dir, thanos, c.cfg.BlockFilesConcurrency); err != nil {
			// What was uploaded is the compactor's own and unread (no
			// meta.json): removed now rather than left as a partial
			// block that nothing would ever delete.
			if derr := block.Delete(ctx, tbkt, id); derr != nil {
				c.logger.Warn("removing a compacted block whose upload failed", "user", tenant, "block", id, "err", derr)
			}
			return fmt.Errorf("tenant %q: %w", tenant, err)
		}
	}
	now := time.Now()
	for _, id := range ids {
		if opts.keepSources {
			break
		}
		marked, err := block.MarkForDeletion(ctx, tbkt, id, "source of compacted block", now)
		if err != nil {
			return fmt.Errorf("tenant %q: %w", tenant, err)
		}
		if marked {
			c.m.blocksMarkedForDeletion.WithLabelValues(reasonCompaction).Inc()
		}
		if c.cfg.DeletionDelay == 0 {
			// Deleted straight away, as Cortex does with no delay. The
			// mark came first, so that a deletion cut short is finished
			// by the cleanup.
			if err := block.Delete(ctx, tbkt, id); err != nil {
				c.m.blockCleanupFailures.Inc()
				return fmt.Errorf("tenant %q: deleting compacted source block with -compactor.deletion-delay=0: %w", tenant, err)
			}
			c.m.blocksCleaned.Inc()
		}
	}
	c.m.compactions.Inc()
	c.m.compactedSamples.Add(float64(samples))
	if overlaps(job) {
		c.m.verticalCompactions.Inc()
	}
	c.logger.Info("compacted blocks", append([]any{"user", tenant, "sources", idList(ids), "result", idList(newIDs),
		"samples", samples, "download_duration", downloaded, "compaction_duration", compacted}, opts.logAttrs...)...)
	return nil
}

// overlaps reports whether any two of the blocks overlap in time.
func overlaps(bs bucketindex.Blocks) bool {
	for i, a := range bs {
		for _, b := range bs[i+1:] {
			if a.MinTime < b.MaxTime && b.MinTime < a.MaxTime {
				return true
			}
		}
	}
	return false
}

func idList(ids []ulid.ULID) string {
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	return strings.Join(strs, ",")
}

func (c *Compactor) index(tenant string) *bucketindex.Index {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.indexes[tenant]
}

func (c *Compactor) setIndex(tenant string, idx *bucketindex.Index) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.indexes[tenant] = idx
}

// quietLogger quiets the TSDB compactor's per-compaction info lines,
// which the compactor logs itself with the tenant.
func quietLogger(l *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{Handler: l.Handler(), min: slog.LevelWarn})
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFilter{Handler: f.Handler.WithAttrs(attrs), min: f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{Handler: f.Handler.WithGroup(name), min: f.min}
}
