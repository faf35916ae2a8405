package bucketindex

import (
	"bytes"
	"context"
	"io"
	"path"

	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

// globalMarkersBucket keeps the tenant's global copy (markers/) of every
// block marker written or deleted beside a block, as Cortex's does, so
// that code written against Thanos' per-block markers keeps the bucket
// index's view right.
type globalMarkersBucket struct {
	objstore.Bucket
}

// BucketWithGlobalMarkers wraps b (the whole bucket or a tenant's) so that
// uploading or deleting <prefix>/<ULID>/deletion-mark.json or
// no-compact-mark.json does the same to <prefix>/markers/<ULID>-<name>.
func BucketWithGlobalMarkers(b objstore.Bucket) objstore.Bucket {
	return &globalMarkersBucket{Bucket: b}
}

// Upload writes a marker's global copy first, as Cortex does: the bucket
// index reads the global copies.
func (b *globalMarkersBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	global, ok := globalMarkPath(name)
	if !ok {
		return b.Bucket.Upload(ctx, name, r, opts...)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := b.Bucket.Upload(ctx, global, bytes.NewReader(body), opts...); err != nil {
		return err
	}
	return b.Bucket.Upload(ctx, name, bytes.NewReader(body), opts...)
}

// Delete removes a marker's global copy with it.
func (b *globalMarkersBucket) Delete(ctx context.Context, name string) error {
	if err := b.Bucket.Delete(ctx, name); err != nil {
		return err
	}
	if global, ok := globalMarkPath(name); ok {
		if err := b.Bucket.Delete(ctx, global); err != nil && !b.IsObjNotFoundErr(err) {
			return err
		}
	}
	return nil
}

// WithExpectedErrs keeps the wrapping over an instrumented bucket.
func (b *globalMarkersBucket) WithExpectedErrs(fn objstore.IsOpFailureExpectedFunc) objstore.Bucket {
	if ib, ok := b.Bucket.(objstore.InstrumentedBucket); ok {
		return &globalMarkersBucket{Bucket: ib.WithExpectedErrs(fn)}
	}
	return b
}

// ReaderWithExpectedErrs passes reads to an instrumented bucket: reads
// need no wrapping.
func (b *globalMarkersBucket) ReaderWithExpectedErrs(fn objstore.IsOpFailureExpectedFunc) objstore.BucketReader {
	if ib, ok := b.Bucket.(objstore.InstrumentedBucketReader); ok {
		return ib.ReaderWithExpectedErrs(fn)
	}
	return b
}

// globalMarkPath returns the global copy's name of a per-block marker.
func globalMarkPath(name string) (string, bool) {
	base := path.Base(name)
	if base != block.DeletionMarkFilename && base != block.NoCompactMarkFilename {
		return "", false
	}
	blockDir := path.Dir(name)
	id, ok := block.IsBlockDir(blockDir)
	if !ok {
		return "", false
	}
	return path.Join(path.Dir(blockDir), block.GlobalMarkPath(id, base)), true
}
