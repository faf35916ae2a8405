package bucketindex

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/thanos-io/objstore"
)

var (
	// ErrIndexNotFound is a tenant without a bucket index.
	ErrIndexNotFound = errors.New("bucket index not found")
	// ErrIndexCorrupted is a bucket index that does not decode.
	ErrIndexCorrupted = errors.New("bucket index corrupted")
)

// indexPath is the index's name in the whole (not tenant-prefixed) bucket.
func indexPath(tenant string) string { return path.Join(tenant, IndexCompressedFilename) }

// ReadIndex reads a tenant's bucket index from the bucket (not prefixed
// with the tenant).
func ReadIndex(ctx context.Context, bkt objstore.BucketReader, tenant string) (*Index, error) {
	r, err := bkt.Get(ctx, indexPath(tenant))
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("tenant %q: %w", tenant, ErrIndexNotFound)
		}
		return nil, fmt.Errorf("reading the bucket index of tenant %q: %w", tenant, err)
	}
	defer r.Close()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w: %v", tenant, ErrIndexCorrupted, err)
	}
	defer gz.Close()
	b, err := io.ReadAll(gz)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w: %v", tenant, ErrIndexCorrupted, err)
	}
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("tenant %q: %w: %v", tenant, ErrIndexCorrupted, err)
	}
	if idx.Version != IndexVersion1 {
		return nil, fmt.Errorf("tenant %q: %w: unknown version %d", tenant, ErrIndexCorrupted, idx.Version)
	}
	return &idx, nil
}

// WriteIndex writes a tenant's bucket index, gzipped, to the bucket (not
// prefixed with the tenant).
func WriteIndex(ctx context.Context, bkt objstore.Bucket, tenant string, idx *Index) error {
	b, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encoding the bucket index of tenant %q: %w", tenant, err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Name = IndexFilename
	if _, err := gz.Write(b); err != nil {
		return fmt.Errorf("compressing the bucket index of tenant %q: %w", tenant, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("compressing the bucket index of tenant %q: %w", tenant, err)
	}
	if err := bkt.Upload(ctx, indexPath(tenant), &buf); err != nil {
		return fmt.Errorf("writing the bucket index of tenant %q: %w", tenant, err)
	}
	return nil
}

// DeleteIndex removes a tenant's bucket index; a missing one is no error.
func DeleteIndex(ctx context.Context, bkt objstore.Bucket, tenant string) error {
	if err := bkt.Delete(ctx, indexPath(tenant)); err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("deleting the bucket index of tenant %q: %w", tenant, err)
	}
	return nil
}
