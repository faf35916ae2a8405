// Package purger is Cortex's tenant deletion API for the blocks storage:
// POST /purger/delete_tenant marks the tenant named by X-Scope-OrgID for
// deletion (<tenant>/markers/tenant-deletion-mark.json), and
// GET /purger/delete_tenant_status reports whether its blocks are gone.
//
// It only writes the mark: the compactor deletes the tenant's blocks and
// bucket index, and each ingester its local TSDB, when they find it.
package purger

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// TenantDeletionAPI serves the tenant deletion requests and status.
type TenantDeletionAPI struct {
	bkt    objstore.Bucket
	logger *slog.Logger
	now    func() time.Time
}

// NewTenantDeletionAPI returns the API over the blocks bucket (the whole
// bucket, each tenant under its own prefix).
func NewTenantDeletionAPI(bkt objstore.Bucket, logger *slog.Logger) *TenantDeletionAPI {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &TenantDeletionAPI{bkt: bkt, logger: logger, now: time.Now}
}

// DeleteTenant serves POST /purger/delete_tenant: it writes the tenant's
// deletion mark and answers 200, as Cortex does. Asking again rewrites the
// mark with a new deletion time.
func (a *TenantDeletionAPI) DeleteTenant(w http.ResponseWriter, r *http.Request) {
	id, err := tenant.ID(r.Context())
	if err != nil {
		// As Cortex: 401, like the tenant middleware without X-Scope-OrgID.
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if err := bucketindex.WriteTenantDeletionMark(r.Context(), a.bkt, id, bucketindex.NewTenantDeletionMark(a.now())); err != nil {
		a.logger.Error("writing the tenant deletion mark", "user", id, "err", err)
		http.Error(w, "tenant "+id+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	a.logger.Info("tenant deletion mark in blocks storage created", "user", id)
	w.WriteHeader(http.StatusOK)
}

// DeleteTenantStatusResponse is Cortex's answer to
// GET /purger/delete_tenant_status.
type DeleteTenantStatusResponse struct {
	TenantID string `json:"tenant_id"`
	// BlocksDeleted is true once the tenant has no block in the bucket.
	BlocksDeleted bool `json:"blocks_deleted"`
}

// DeleteTenantStatus serves GET /purger/delete_tenant_status. Like
// Cortex's, it reports only whether the tenant's blocks are gone, whether
// or not a deletion was requested: a tenant with no blocks at all is
// "deleted".
func (a *TenantDeletionAPI) DeleteTenantStatus(w http.ResponseWriter, r *http.Request) {
	id, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	deleted, err := a.blocksDeleted(r.Context(), id)
	if err != nil {
		http.Error(w, "tenant "+id+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(DeleteTenantStatusResponse{TenantID: id, BlocksDeleted: deleted})
}

var errBlockFound = errors.New("block found")

// blocksDeleted reports whether the tenant's directory holds no block
// directory, stopping at the first one found.
func (a *TenantDeletionAPI) blocksDeleted(ctx context.Context, id string) (bool, error) {
	err := objstore.NewPrefixedBucket(a.bkt, id).Iter(ctx, "", func(name string) error {
		if _, ok := block.IsBlockDir(strings.TrimSuffix(name, "/")); ok {
			return errBlockFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errBlockFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}
