package ingester

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
)

// Tenant deletion (POST /purger/delete_tenant) as in Cortex: at each ship
// interval the shipper checks whether its tenant is marked for deletion in
// the bucket (an existence check, until found); once it is, the tenant's
// blocks are no longer shipped, and the next head compaction tick closes
// the tenant's TSDB and deletes its directory (WAL, head chunks, blocks,
// shipped record). Samples pushed afterwards open a new TSDB, which is
// deleted the same way while the mark exists.

// markedForDeletion reports whether the shipper's tenant is marked for
// deletion. A failed check ships as usual: the next sync checks again.
func (s *shipper) markedForDeletion(ctx context.Context) bool {
	if s.deletionMarked.Load() {
		return true
	}
	marked, err := bucketindex.TenantDeletionMarkExists(ctx, s.root, s.tenant)
	if err != nil {
		s.logger.Warn("checking the tenant deletion mark failed; shipping as usual", "err", err)
		return false
	}
	if marked {
		s.deletionMarked.Store(true)
		s.logger.Info("tenant marked for deletion: its blocks are no longer shipped, and its local TSDB is deleted")
	}
	return marked
}

// deleteMarkedTenants closes and deletes the local TSDB of every tenant
// whose shipper found the tenant deletion mark. It runs in the loop that
// compacts heads, so no compaction of the tenant runs meanwhile, and it
// holds closeMu so no push, query or flush uses the TSDB while it closes.
func (i *Ingester) deleteMarkedTenants() {
	var marked []*userTSDB
	for _, u := range i.allTSDBs() {
		if u.shipper != nil && u.shipper.deletionMarked.Load() {
			marked = append(marked, u)
		}
	}
	if len(marked) == 0 {
		return
	}
	i.closeMu.Lock()
	defer i.closeMu.Unlock()
	if i.closed {
		return
	}
	for _, u := range marked {
		if err := i.deleteTenantTSDB(u); err != nil {
			i.logger.Error("deleting the local TSDB of a tenant marked for deletion", "user", u.id, "err", err)
			continue
		}
		i.logger.Info("deleted the local TSDB of a tenant marked for deletion", "user", u.id, "dir", u.db.Dir())
	}
}

// deleteTenantTSDB forgets, closes and deletes one tenant's TSDB; the
// caller holds closeMu for writing.
func (i *Ingester) deleteTenantTSDB(u *userTSDB) error {
	// A ship in progress finishes first; later ones stop at the mark.
	u.shipper.mu.Lock()
	defer u.shipper.mu.Unlock()
	i.mu.Lock()
	if i.tsdbs[u.id] == u {
		delete(i.tsdbs, u.id)
	}
	i.mu.Unlock()
	i.forget(u.id, u)
	dir := u.db.Dir()
	var errs []error
	if err := u.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing the TSDB of tenant %q: %w", u.id, err))
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("deleting the TSDB directory %s of tenant %q: %w", dir, u.id, err))
	}
	return errors.Join(errs...)
}
