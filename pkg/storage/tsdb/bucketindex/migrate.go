package bucketindex

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

// MigrateBlockMarksToGlobalLocation copies the deletion and no-compact
// marks found in each of a tenant's block folders to the global markers
// location (markers/<block>-<mark>), where the bucket index update reads
// them, as Cortex's MigrateBlockDeletionMarksToGlobalLocation does for
// buckets written before Cortex 1.7 or by Thanos' tools. bkt is the whole
// bucket. It goes on past failures and returns how many marks it copied
// and every failure.
func MigrateBlockMarksToGlobalLocation(ctx context.Context, bkt objstore.Bucket, tenant string) (int, error) {
	tbkt := objstore.NewPrefixedBucket(bkt, tenant)
	var ids []string
	err := tbkt.Iter(ctx, "", func(name string) error {
		if id, ok := block.IsBlockDir(name); ok {
			ids = append(ids, id.String())
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("tenant %q: listing the blocks: %w", tenant, err)
	}
	copied := 0
	var errs []error
	for _, id := range ids {
		for _, mark := range []string{block.DeletionMarkFilename, block.NoCompactMarkFilename} {
			global, _ := globalMarkPath(path.Join(id, mark))
			if err := copyObject(ctx, tbkt, path.Join(id, mark), global); err != nil {
				if !tbkt.IsObjNotFoundErr(err) {
					errs = append(errs, fmt.Errorf("tenant %q: copying %s of block %s to %s: %w", tenant, mark, id, global, err))
				}
				continue
			}
			copied++
		}
	}
	return copied, errors.Join(errs...)
}

func copyObject(ctx context.Context, bkt objstore.Bucket, from, to string) error {
	r, err := bkt.Get(ctx, from)
	if err != nil {
		return err
	}
	defer r.Close() //nolint:errcheck // read-only: the upload's error is the one that matters
	return bkt.Upload(ctx, to, r)
}
