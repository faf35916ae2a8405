package bucketindex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

// metaFetchConcurrency is how many meta.json and deletion marks an update
// reads at once by default, Cortex's figure: on a cold start a tenant may
// have thousands, and object stores answer each in tens of milliseconds.
const metaFetchConcurrency = 16

// concurrently calls f(0..n-1), workers at a time.
func concurrently(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(n, max(1, workers)) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// Updater builds a tenant's bucket index from the bucket's content.
type Updater struct {
	tenant string
	bkt    objstore.Bucket // prefixed with the tenant
	logger *slog.Logger
	// concurrency is how many objects an update reads at once.
	concurrency int
}

// NewUpdater returns an updater of tenant's index; bkt is the whole
// bucket, not prefixed with the tenant.
func NewUpdater(bkt objstore.Bucket, tenant string, logger *slog.Logger) *Updater {
	return &Updater{
		tenant: tenant,
		bkt:    objstore.NewPrefixedBucket(bkt, tenant),
		logger: logger.With("user", tenant),

		concurrency: metaFetchConcurrency,
	}
}

// WithConcurrency sets how many meta.json files and deletion marks an
// update reads at once (the compactor's -compactor.meta-sync-concurrency).
func (u *Updater) WithConcurrency(n int) *Updater {
	u.concurrency = max(1, n)
	return u
}

// UpdateIndex returns a new index of the tenant's blocks and deletion
// marks. Entries of old (which may be nil) are reused for blocks still in
// the bucket, since a block's meta.json never changes once written; only
// new blocks' metas are read. Partial blocks (no meta.json, or one that
// does not parse) are left out of the index and returned with why.
func (u *Updater) UpdateIndex(ctx context.Context, old *Index) (*Index, map[ulid.ULID]error, error) {
	var oldBlocks Blocks
	if old != nil {
		oldBlocks = old.Blocks
	}
	blocks, discovered, partials, err := u.updateBlocks(ctx, oldBlocks)
	if err != nil {
		return nil, nil, err
	}
	marks, err := u.updateDeletionMarks(ctx, discovered)
	if err != nil {
		return nil, nil, err
	}
	return &Index{
		Version:            IndexVersion1,
		Blocks:             blocks,
		BlockDeletionMarks: marks,
		UpdatedAt:          time.Now().Unix(),
	}, partials, nil
}

// updateBlocks returns the tenant's complete blocks, those of them not in
// old, and the partial blocks.
func (u *Updater) updateBlocks(ctx context.Context, old Blocks) (blocks, discovered Blocks, partials map[ulid.ULID]error, _ error) {
	known := make(map[ulid.ULID]*Block, len(old))
	for _, b := range old {
		known[b.ID] = b
	}
	var ids []ulid.ULID
	err := u.bkt.Iter(ctx, "", func(name string) error {
		if id, ok := block.IsBlockDir(name); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listing the blocks of tenant %q: %w", u.tenant, err)
	}
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })

	var unknown []ulid.ULID
	for _, id := range ids {
		if b, ok := known[id]; ok {
			// meta.json never changes; a block being deleted since is
			// marked for deletion, and its mark is in the index.
			blocks = append(blocks, b)
			continue
		}
		unknown = append(unknown, id)
	}

	read := make([]*Block, len(unknown))
	errs := make([]error, len(unknown))
	concurrently(len(unknown), u.concurrency, func(i int) {
		read[i], errs[i] = u.readBlock(ctx, unknown[i])
	})
	partials = map[ulid.ULID]error{}
	for i, id := range unknown {
		err := errs[i]
		if errors.Is(err, block.ErrMetaNotFound) || errors.Is(err, block.ErrMetaCorrupted) {
			partials[id] = err
			u.logger.Warn("skipped partial block when updating the bucket index", "block", id, "err", err)
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("tenant %q: %w", u.tenant, err)
		}
		blocks = append(blocks, read[i])
		discovered = append(discovered, read[i])
	}
	return blocks, discovered, partials, nil
}

func (u *Updater) readBlock(ctx context.Context, id ulid.ULID) (*Block, error) {
	m, err := block.ReadMeta(ctx, u.bkt, id)
	if err != nil {
		return nil, err
	}
	b := BlockFromMeta(*m)
	attrs, err := u.bkt.Attributes(ctx, block.MetaPath(id))
	if err != nil {
		if u.bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("block %s: %w", id, block.ErrMetaNotFound)
		}
		return nil, fmt.Errorf("reading the attributes of meta.json of block %s: %w", id, err)
	}
	b.UploadedAt = attrs.LastModified.Unix()
	return b, nil
}

// updateDeletionMarks reads the global deletion marks in markers/, and
// for blocks new to the index without one, the mark beside the block: a
// block marked by a tool that writes only the per-block mark (Thanos'
// own) is seen, and its global copy is written so that later updates find
// it in the listing. Known blocks are not checked one by one, which would
// cost a request per block per update; Cortex's compactor writes both
// marks.
func (u *Updater) updateDeletionMarks(ctx context.Context, discovered Blocks) (BlockDeletionMarks, error) {
	var names []string
	err := u.bkt.Iter(ctx, block.MarkersDirname, func(name string) error {
		if _, ok := block.IsGlobalDeletionMarkPath(name); ok {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the deletion marks of tenant %q: %w", u.tenant, err)
	}
	read := make([]*block.DeletionMark, len(names))
	errs := make([]error, len(names))
	concurrently(len(names), u.concurrency, func(i int) {
		read[i], errs[i] = block.ReadDeletionMark(ctx, u.bkt, names[i])
	})
	var marks BlockDeletionMarks
	seen := map[ulid.ULID]struct{}{}
	for i, name := range names {
		id, _ := block.IsGlobalDeletionMarkPath(name)
		m, err := read[i], errs[i]
		if errors.Is(err, block.ErrDeletionMarkNotFound) {
			continue // deleted with its block since the listing
		}
		if err != nil {
			// A corrupted mark still marks its block: it dates from when
			// it was written, so that the deletion delay runs out.
			attrs, aerr := u.bkt.Attributes(ctx, name)
			if aerr != nil {
				return nil, fmt.Errorf("tenant %q: %w (and reading its attributes: %v)", u.tenant, err, aerr)
			}
			u.logger.Warn("unreadable block deletion mark; dating it from its upload", "block", id, "err", err)
			m = &block.DeletionMark{ID: id, DeletionTime: attrs.LastModified.Unix()}
		}
		marks = append(marks, &BlockDeletionMark{ID: id, DeletionTime: m.DeletionTime})
		seen[id] = struct{}{}
	}
	var unseen []ulid.ULID
	for _, b := range discovered {
		if _, ok := seen[b.ID]; !ok {
			unseen = append(unseen, b.ID)
		}
	}
	local := make([]*block.DeletionMark, len(unseen))
	errs = make([]error, len(unseen))
	concurrently(len(unseen), u.concurrency, func(i int) {
		local[i], errs[i] = block.ReadDeletionMark(ctx, u.bkt, block.DeletionMarkPath(unseen[i]))
	})
	for i, id := range unseen {
		m, err := local[i], errs[i]
		if errors.Is(err, block.ErrDeletionMarkNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %w", u.tenant, err)
		}
		if _, err := block.MarkForDeletion(ctx, u.bkt, id, m.Details, time.Unix(m.DeletionTime, 0)); err != nil {
			return nil, fmt.Errorf("tenant %q: %w", u.tenant, err)
		}
		marks = append(marks, &BlockDeletionMark{ID: id, DeletionTime: m.DeletionTime})
	}
	return marks, nil
}
