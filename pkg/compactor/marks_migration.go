package compactor

import (
	"context"

	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
)

// WithCachingBuckets has the compaction read the bucket through
// compaction and the cleanup through cleanup, the metadata caching
// wrappers of -compactor.caching-bucket-enabled and
// -compactor.cleaner-caching-bucket-enabled; nil leaves that part on the
// bucket itself. Both write straight to the bucket.
func WithCachingBuckets(compaction, cleanup objstore.Bucket) Option {
	return func(c *Compactor) {
		if compaction != nil {
			c.compactionBkt = compaction
		}
		if cleanup != nil {
			c.bkt = cleanup
		}
	}
}

// migrateBlockMarks copies, with -compactor.block-deletion-marks-migration-enabled,
// the marks in the tenant's block folders to the global markers location
// at the tenant's first cleanup by this compactor, as Cortex's cleaner does
// at its first run. The bucket index update reads the global marks, and
// the per-block marks only of blocks it has not indexed yet: a block an
// older tool marked after it was indexed is seen through this copy. Best
// effort, as Cortex's: a failure is logged, and the copy is tried again at
// the next cleanup.
func (c *Compactor) migrateBlockMarks(ctx context.Context, tenant string) {
	if !c.cfg.BlockDeletionMarksMigrationEnabled {
		return
	}
	if _, done := c.marksMigrated.Load(tenant); done {
		return
	}
	copied, err := bucketindex.MigrateBlockMarksToGlobalLocation(ctx, c.bkt, tenant)
	if err != nil {
		c.logger.Warn("failed to migrate block deletion marks to the global markers location", "user", tenant, "copied", copied, "err", err)
		return
	}
	c.marksMigrated.Store(tenant, struct{}{})
	c.logger.Info("migrated block deletion marks to the global markers location", "user", tenant, "copied", copied)
}
