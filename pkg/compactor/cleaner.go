package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
)

// Cleanup runs one cleanup pass over every tenant this compactor owns: it
// deletes the blocks marked for deletion longer than
// -compactor.deletion-delay ago and the partial blocks left by an
// interrupted deletion, marks the blocks past
// -compactor.blocks-retention-period, and writes the tenant's bucket index;
// of a tenant marked for deletion, it deletes everything.
func (c *Compactor) Cleanup(ctx context.Context) error {
	c.m.cleanupStarted.Inc()
	tenants, err := c.tenants(ctx)
	if err == nil {
		tenants = c.ownedTenants(tenants)
		err = forEachTenant(ctx, tenants, c.cfg.CleanupConcurrency, func(ctx context.Context, tenant string) error {
			return c.withCleanerVisit(ctx, tenant, func() error {
				mark, err := bucketindex.ReadTenantDeletionMark(ctx, c.bkt, tenant)
				if err != nil {
					return fmt.Errorf("tenant %q: %w", tenant, err)
				}
				if mark != nil {
					return c.cleanupDeletedTenant(ctx, tenant, mark)
				}
				return c.cleanupTenant(ctx, tenant)
			})
		})
	}
	if err != nil {
		c.m.cleanupFailed.Inc()
		return err
	}
	c.forgetTenantsExcept(tenants)
	c.m.cleanupCompleted.Inc()
	c.m.cleanupLastSuccessfulRun.SetToCurrentTime()
	return nil
}

// forgetTenantsExcept drops the cached indexes and per-tenant metrics of
// tenants no longer in the bucket.
func (c *Compactor) forgetTenantsExcept(tenants []string) {
	keep := make(map[string]struct{}, len(tenants))
	for _, t := range tenants {
		keep[t] = struct{}{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for t := range c.indexes {
		if _, ok := keep[t]; !ok {
			delete(c.indexes, t)
			c.m.forgetTenant(t)
		}
	}
	for t := range c.metas {
		if _, ok := keep[t]; !ok {
			delete(c.metas, t)
		}
	}
}

// withCleanerVisit runs a tenant's cleanup under the tenant's cleaner
// visit marker, as Cortex's cleaner: a cleanup is skipped while another
// compactor's marker for the tenant is fresh (younger than
// -compactor.cleaner-visit-marker-timeout and not finished), which keeps
// two compactors from cleaning one tenant at once while the ring moves
// the tenant between them. The marker is refreshed every
// -compactor.cleaner-visit-marker-file-update-interval and removed when
// the cleanup ends.
func (c *Compactor) withCleanerVisit(ctx context.Context, tenant string, cleanup func() error) error {
	tbkt := objstore.NewPrefixedBucket(c.bkt, tenant)
	marker := &CleanerVisitMarker{}
	var existing CleanerVisitMarker
	err := readVisitMarker(ctx, tbkt, marker.filePath(), &existing)
	switch {
	case errors.Is(err, errVisitMarkerNotFound):
	case err != nil:
		return fmt.Errorf("tenant %q: reading the cleaner visit marker: %w", tenant, err)
	case existing.visited(c.cfg.CleanerVisitMarkerTimeout, time.Now()):
		c.logger.Info("skipping the cleanup of a tenant another compactor is cleaning up", "user", tenant, "compactor_id", existing.CompactorID)
		return nil
	}
	hb := startVisitHeartbeat(ctx, tbkt, c.logger.With("user", tenant), c.instanceID(), marker, c.cfg.CleanerVisitMarkerFileUpdateInterval, true)
	err = cleanup()
	hb.finish(err)
	return err
}

func (c *Compactor) cleanupTenant(ctx context.Context, tenant string) error {
	c.migrateBlockMarks(ctx, tenant)
	tbkt := objstore.NewPrefixedBucket(c.bkt, tenant)
	if c.cfg.CompactionStrategy == CompactionStrategyPartitioning {
		c.cleanPartitionedGroups(ctx, tenant, tbkt)
	}
	old := c.index(tenant)
	if old == nil {
		// After a restart, start from the index in the bucket rather than
		// reading every block's meta.json again.
		idx, err := bucketindex.ReadIndex(ctx, c.bkt, tenant)
		switch {
		case err == nil:
			old = idx
		case errors.Is(err, bucketindex.ErrIndexNotFound):
		case errors.Is(err, bucketindex.ErrIndexCorrupted):
			c.logger.Warn("bucket index corrupted; rebuilding it", "user", tenant, "err", err)
		default:
			return err
		}
	}
	idx, partials, err := bucketindex.NewUpdater(c.bkt, tenant, c.logger).WithConcurrency(c.cfg.MetaSyncConcurrency).UpdateIndex(ctx, old)
	if err != nil {
		return err
	}

	now := time.Now()
	marks := make(map[ulid.ULID]*bucketindex.BlockDeletionMark, len(idx.BlockDeletionMarks))
	for _, m := range idx.BlockDeletionMarks {
		marks[m.ID] = m
	}

	// Retention marks before deletions run, so that with no deletion
	// delay the blocks past retention go in the same cleanup.
	var errs []error
	var retention time.Duration
	if c.retention != nil {
		retention = c.retention(tenant)
	}
	if retention > 0 {
		threshold := now.Add(-retention).UnixMilli()
		for _, b := range idx.Blocks {
			if _, ok := marks[b.ID]; ok || b.MaxTime >= threshold {
				continue
			}
			marked, err := block.MarkForDeletion(ctx, tbkt, b.ID, "block past the retention period", now)
			if err != nil {
				errs = append(errs, fmt.Errorf("tenant %q: applying -compactor.blocks-retention-period: %w", tenant, err))
				continue
			}
			if marked {
				c.m.blocksMarkedForDeletion.WithLabelValues(reasonRetention).Inc()
				c.logger.Info("marked block past the retention period for deletion", "user", tenant, "block", b.ID, "max_time", time.UnixMilli(b.MaxTime).UTC())
			}
			m := &bucketindex.BlockDeletionMark{ID: b.ID, DeletionTime: now.Unix()}
			marks[b.ID] = m
			idx.BlockDeletionMarks = append(idx.BlockDeletionMarks, m)
		}
	}

	// Blocks whose deletion delay has passed go; queriers had the delay to
	// stop reading them, having seen their marks in the index. With no
	// delay (-compactor.deletion-delay=0) marked blocks go at once.
	// A copy: RemoveBlock shifts the index's slice under the loop.
	for _, m := range slices.Clone(idx.BlockDeletionMarks) {
		if c.cfg.DeletionDelay > 0 && now.Sub(m.GetDeletionTime()) <= c.cfg.DeletionDelay {
			continue
		}
		if err := block.Delete(ctx, tbkt, m.ID); err != nil {
			c.m.blockCleanupFailures.Inc()
			errs = append(errs, fmt.Errorf("tenant %q: %w", tenant, err))
			continue
		}
		c.m.blocksCleaned.Inc()
		idx.RemoveBlock(m.ID)
		delete(marks, m.ID)
		delete(partials, m.ID)
		c.logger.Info("deleted block marked for deletion", "user", tenant, "block", m.ID)
	}

	// A partial block with a deletion mark is one whose deletion stopped
	// half way (meta.json goes first): it is finished now. Partial blocks
	// without a mark may be uploads in progress and are left alone.
	for id := range partials {
		if _, ok := marks[id]; !ok {
			continue
		}
		if err := block.Delete(ctx, tbkt, id); err != nil {
			c.m.blockCleanupFailures.Inc()
			errs = append(errs, fmt.Errorf("tenant %q: deleting partial block: %w", tenant, err))
			continue
		}
		c.m.blocksCleaned.Inc()
		delete(marks, id)
		delete(partials, id)
		c.logger.Info("deleted partial block marked for deletion", "user", tenant, "block", id)
	}

	// The index lists marks of indexed blocks only: a mark whose block is
	// partial belongs to no block a reader could query.
	inIndex := make(map[ulid.ULID]struct{}, len(idx.Blocks))
	for _, b := range idx.Blocks {
		inIndex[b.ID] = struct{}{}
	}
	kept := idx.BlockDeletionMarks[:0]
	for _, m := range idx.BlockDeletionMarks {
		if _, ok := inIndex[m.ID]; ok {
			kept = append(kept, m)
		}
	}
	idx.BlockDeletionMarks = kept
	idx.UpdatedAt = time.Now().Unix()

	if err := bucketindex.WriteIndex(ctx, c.bkt, tenant, idx); err != nil {
		return errors.Join(append(errs, err)...)
	}
	c.setIndex(tenant, idx)
	c.m.bucketBlocks.WithLabelValues(tenant).Set(float64(len(idx.Blocks)))
	c.m.bucketBlocksMarked.WithLabelValues(tenant).Set(float64(len(idx.BlockDeletionMarks)))
	c.m.bucketBlocksPartials.WithLabelValues(tenant).Set(float64(len(partials)))
	c.m.bucketIndexLastUpdate.WithLabelValues(tenant).SetToCurrentTime()
	return errors.Join(errs...)
}

// updateUserIndex writes the bucket's user index when this compactor is
// its writer. A failure is logged: readers fall back to listing the
// bucket once the index is older than their
// -blocks-storage.users-scanner.user-index.max-stale-period.
func (c *Compactor) updateUserIndex(ctx context.Context) {
	if c.userIndex == nil {
		return
	}
	if c.ring != nil {
		owned, err := c.owns(c.ring.Ring(), users.IndexFilename)
		if err != nil {
			c.logger.Warn("finding the user index's compactor in the ring; not updating it", "err", err)
			return
		}
		if !owned {
			return
		}
	}
	if err := c.userIndex.UpdateIndex(ctx); err != nil && ctx.Err() == nil {
		c.logger.Error("updating the user index", "err", err)
	}
}

// cleanPartitionedGroups finishes the tenant's partitioned groups, as
// Cortex's cleaner: once every partition of a plan is completed, its
// source blocks are marked for deletion; at the next cleanup (or at once
// when none was left to mark), the plan and its visit markers go. A plan
// that can never complete (a source block gone, marked for deletion or
// no-compact, with no partition in progress) goes the same way without
// marking its blocks. Visit markers of an older plan of the same ID go.
func (c *Compactor) cleanPartitionedGroups(ctx context.Context, tenant string, tbkt objstore.Bucket) {
	logger := c.logger.With("user", tenant)
	groups, err := listPartitionedGroups(ctx, tbkt, logger, true)
	if err != nil {
		logger.Warn("listing partitioned groups", "err", err)
		return
	}
	var remaining, inProgress int
	var oldest int64
	defer func() {
		// As Cortex: partitions to compact and in progress, and the age
		// of the oldest plan still there.
		c.m.remainingPlannedCompactions.WithLabelValues(tenant).Set(float64(remaining))
		c.m.inProgressCompactions.WithLabelValues(tenant).Set(float64(inProgress))
		offset := int64(0)
		if oldest > 0 {
			offset = time.Now().Unix() - oldest
		}
		c.m.oldestPartitionOffset.WithLabelValues(tenant).Set(float64(offset))
	}()
	for file, info := range groups {
		glog := logger.With("partitioned_group_id", info.PartitionedGroupID)
		st := info.status(ctx, tbkt, c.cfg.CompactionVisitMarkerTimeout, glog)
		remaining += st.pendingPartitions
		inProgress += st.inProgressPartitions
		if oldest == 0 || info.CreationTime < oldest {
			oldest = info.CreationTime
		}
		deleted := false
		if st.canDelete {
			marked := 0
			if st.isCompleted {
				var err error
				if marked, err = c.markGroupBlocksForDeletion(ctx, tbkt, info, glog); err != nil {
					glog.Warn("marking a completed partitioned group's blocks for deletion", "err", err)
					continue
				}
			}
			if marked == 0 {
				if err := tbkt.Delete(ctx, file); err != nil && !tbkt.IsObjNotFoundErr(err) {
					glog.Warn("deleting a partitioned group info file", "file", file, "err", err)
				} else {
					deleted = true
					glog.Info("deleted partitioned group info", "file", file)
				}
			}
		}
		if deleted {
			if err := deletePrefix(ctx, tbkt, partitionVisitMarkerDir(info.PartitionedGroupID)); err != nil {
				glog.Warn("deleting a partitioned group's visit markers", "err", err)
			}
			continue
		}
		for _, name := range st.markersToDelete {
			if err := tbkt.Delete(ctx, name); err != nil && !tbkt.IsObjNotFoundErr(err) {
				glog.Warn("deleting a visit marker of an older plan", "marker", name, "err", err)
			}
		}
	}
}

// markGroupBlocksForDeletion marks the source blocks of a completed plan
// for deletion, those still there and unmarked; it returns how many it
// marked.
func (c *Compactor) markGroupBlocksForDeletion(ctx context.Context, tbkt objstore.Bucket, info *PartitionedGroupInfo, logger *slog.Logger) (int, error) {
	now := time.Now()
	marked := 0
	for _, id := range info.allBlocks() {
		if !blockObjectExists(ctx, tbkt, logger, block.MetaPath(id), true) ||
			blockObjectExists(ctx, tbkt, logger, block.DeletionMarkPath(id), false) ||
			blockObjectExists(ctx, tbkt, logger, path.Join(id.String(), block.NoCompactMarkFilename), false) {
			continue
		}
		ok, err := block.MarkForDeletion(ctx, tbkt, id, "source of a completed partitioned group", now)
		if err != nil {
			return marked, err
		}
		if ok {
			marked++
			c.m.blocksMarkedForDeletion.WithLabelValues(reasonCompaction).Inc()
		}
	}
	if marked > 0 {
		logger.Info("marked a completed partitioned group's source blocks for deletion", "blocks", marked)
	}
	return marked, nil
}

// deletePrefix deletes every object under dir.
func deletePrefix(ctx context.Context, bkt objstore.Bucket, dir string) error {
	var names []string
	if err := bkt.Iter(ctx, dir, func(name string) error {
		names = append(names, name)
		return nil
	}, objstore.WithRecursiveIter()); err != nil {
		return err
	}
	for _, name := range names {
		if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
			return err
		}
	}
	return nil
}
