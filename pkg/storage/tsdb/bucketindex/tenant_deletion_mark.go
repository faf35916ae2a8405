package bucketindex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

const (
	// TenantDeletionMarkFilename is Cortex's mark of a tenant whose data
	// is to be deleted.
	TenantDeletionMarkFilename = "tenant-deletion-mark.json"
	// GlobalMarkersDir is the bucket's top-level directory where newer
	// Cortex versions write the tenant deletion mark; it is no tenant.
	GlobalMarkersDir = "__markers__"
)

// TenantDeletionMark is Cortex's tenant-deletion-mark.json.
type TenantDeletionMark struct {
	// DeletionTime is when the deletion was requested, in unix seconds.
	DeletionTime int64 `json:"deletion_time"`
	// FinishedTime is when the compactor last deleted the tenant's
	// blocks, in unix seconds; 0 until it did.
	FinishedTime int64 `json:"finished_time,omitempty"`
}

// NewTenantDeletionMark returns a mark of a deletion requested at t.
func NewTenantDeletionMark(t time.Time) *TenantDeletionMark {
	return &TenantDeletionMark{DeletionTime: t.Unix()}
}

// TenantDeletionMarkPath is the mark's name in the whole bucket:
// <tenant>/markers/tenant-deletion-mark.json, where Cortex writes it.
func TenantDeletionMarkPath(tenant string) string {
	return path.Join(tenant, block.MarkersDirname, TenantDeletionMarkFilename)
}

// globalTenantDeletionMarkPath is the copy newer Cortex versions write,
// __markers__/<tenant>/tenant-deletion-mark.json: read, never written, so
// a bucket a newer Cortex marked is honoured.
func globalTenantDeletionMarkPath(tenant string) string {
	return path.Join(GlobalMarkersDir, tenant, TenantDeletionMarkFilename)
}

// WriteTenantDeletionMark writes (or rewrites) a tenant's deletion mark in
// the whole bucket.
func WriteTenantDeletionMark(ctx context.Context, bkt objstore.Bucket, tenant string, m *TenantDeletionMark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding the deletion mark of tenant %q: %w", tenant, err)
	}
	if err := bkt.Upload(ctx, TenantDeletionMarkPath(tenant), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("writing %s: %w", TenantDeletionMarkPath(tenant), err)
	}
	return nil
}

// ReadTenantDeletionMark returns a tenant's deletion mark, nil (and no
// error) when the tenant has none.
func ReadTenantDeletionMark(ctx context.Context, bkt objstore.BucketReader, tenant string) (*TenantDeletionMark, error) {
	for _, name := range []string{TenantDeletionMarkPath(tenant), globalTenantDeletionMarkPath(tenant)} {
		m, err := readTenantDeletionMark(ctx, bkt, name)
		if m != nil || err != nil {
			return m, err
		}
	}
	return nil, nil
}

func readTenantDeletionMark(ctx context.Context, bkt objstore.BucketReader, name string) (*TenantDeletionMark, error) {
	r, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer r.Close()
	var m TenantDeletionMark
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	return &m, nil
}

// TenantDeletionMarkExists reports whether the tenant is marked for
// deletion: one existence check when it is marked where Cortex writes it.
func TenantDeletionMarkExists(ctx context.Context, bkt objstore.BucketReader, tenant string) (bool, error) {
	for _, name := range []string{TenantDeletionMarkPath(tenant), globalTenantDeletionMarkPath(tenant)} {
		ok, err := bkt.Exists(ctx, name)
		if err != nil {
			return false, fmt.Errorf("checking %s: %w", name, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// DeleteTenantDeletionMark removes a tenant's deletion mark, both copies;
// missing ones are no error.
func DeleteTenantDeletionMark(ctx context.Context, bkt objstore.Bucket, tenant string) error {
	var errs []error
	for _, name := range []string{TenantDeletionMarkPath(tenant), globalTenantDeletionMarkPath(tenant)} {
		if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
