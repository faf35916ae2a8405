package bucket

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// uploadTempPrefix starts the name of a file being uploaded into the
// filesystem bucket; listings leave such files out.
const uploadTempPrefix = ".cortex-upload-"

// atomicFilesystem is Thanos' filesystem bucket with uploads that replace
// an object at once, as object stores do. Thanos' writes the object's file
// in place, so a reader racing a rewrite (a querier reading the bucket
// index while the compactor rewrites it) read a half-written object and
// failed with "bucket index corrupted: EOF". Uploads now go to a temporary
// file in the object's directory and are renamed over the object.
type atomicFilesystem struct {
	*filesystem.Bucket
	root string
}

func newAtomicFilesystem(dir string) (*atomicFilesystem, error) {
	b, err := filesystem.NewBucket(dir)
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &atomicFilesystem{Bucket: b, root: root}, nil
}

// Upload writes r to a temporary file beside the object, then renames it
// over the object: a reader sees the old object or the new one, whole.
func (b *atomicFilesystem) Upload(ctx context.Context, name string, r io.Reader, _ ...objstore.ObjectUploadOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file := filepath.Join(b.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(file), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), uploadTempPrefix+"*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, r); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("copy to %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}

// Iter lists the bucket as Thanos' filesystem bucket does, leaving out
// files still being uploaded.
func (b *atomicFilesystem) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	return b.Bucket.Iter(ctx, dir, func(name string) error {
		if isUploadTemp(name) {
			return nil
		}
		return f(name)
	}, opts...)
}

// IterWithAttributes is Iter with the objects' attributes.
func (b *atomicFilesystem) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, opts ...objstore.IterOption) error {
	return b.Bucket.IterWithAttributes(ctx, dir, func(attrs objstore.IterObjectAttributes) error {
		if isUploadTemp(attrs.Name) {
			return nil
		}
		return f(attrs)
	}, opts...)
}

func isUploadTemp(name string) bool {
	return strings.HasPrefix(path.Base(strings.TrimSuffix(name, "/")), uploadTempPrefix)
}
