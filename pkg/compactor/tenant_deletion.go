package compactor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
)

// cleanupDeletedTenant deletes the blocks and bucket index of a tenant
// marked for deletion (POST /purger/delete_tenant), as Cortex's cleaner:
// at once, without -compactor.deletion-delay, since nobody may read the
// tenant any more. The mark records when the last block went
// (finished_time); -compactor.tenant-cleanup-delay after that, what is left
// of the tenant (its markers, the deletion mark last) goes too, which
// leaves nothing of it in the bucket. Blocks an ingester ships before it
// notices the mark are deleted by the next cleanup, which starts the
// delay again.
func (c *Compactor) cleanupDeletedTenant(ctx context.Context, tenant string, mark *bucketindex.TenantDeletionMark) error {
	// The index first, so that readers stop finding the blocks before
	// they go.
	if err := bucketindex.DeleteIndex(ctx, c.bkt, tenant); err != nil {
		return err
	}
	c.forgetTenant(tenant)

	tbkt := objstore.NewPrefixedBucket(c.bkt, tenant)
	var ids []ulid.ULID
	err := tbkt.Iter(ctx, "", func(name string) error {
		if id, ok := block.IsBlockDir(name); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tenant %q: listing its blocks for deletion: %w", tenant, err)
	}
	var errs []error
	deleted := 0
	for _, id := range ids {
		if err := block.Delete(ctx, tbkt, id); err != nil {
			c.m.blockCleanupFailures.Inc()
			errs = append(errs, fmt.Errorf("tenant %q marked for deletion: %w", tenant, err))
			continue
		}
		deleted++
		c.m.blocksCleaned.Inc()
	}
	if deleted > 0 {
		c.logger.Info("deleted blocks of a tenant marked for deletion", "user", tenant, "blocks", deleted)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	now := time.Now()
	if deleted > 0 || mark.FinishedTime == 0 {
		mark.FinishedTime = now.Unix()
		if err := bucketindex.WriteTenantDeletionMark(ctx, c.bkt, tenant, mark); err != nil {
			return fmt.Errorf("tenant %q: recording the end of its blocks' deletion: %w", tenant, err)
		}
		return nil
	}
	if now.Sub(time.Unix(mark.FinishedTime, 0)) < c.cfg.TenantCleanupDelay {
		return nil
	}

	// Final cleanup: whatever is left under the tenant (markers, debug
	// files), the deletion mark last, so that an interrupted cleanup is
	// picked up again.
	var rest []string
	err = tbkt.Iter(ctx, "", func(name string) error {
		rest = append(rest, name)
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("tenant %q: listing its remaining files: %w", tenant, err)
	}
	markPath := bucketindex.TenantDeletionMarkPath(tenant)
	for _, name := range rest {
		if tenant+"/"+name == markPath {
			continue
		}
		if err := tbkt.Delete(ctx, name); err != nil && !tbkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("tenant %q: deleting %s: %w", tenant, name, err)
		}
	}
	if err := bucketindex.DeleteTenantDeletionMark(ctx, c.bkt, tenant); err != nil {
		return fmt.Errorf("tenant %q: %w", tenant, err)
	}
	c.logger.Info("deleted what remained of a tenant marked for deletion", "user", tenant, "files", len(rest))
	return nil
}

// forgetTenant drops a tenant's cached index and per-tenant metrics.
func (c *Compactor) forgetTenant(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.indexes, tenant)
	delete(c.metas, tenant)
	c.m.forgetTenant(tenant)
}
