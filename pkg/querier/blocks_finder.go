package querier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/storegateway"
)

// BlocksFinder finds the blocks of a tenant that a query of [mint, maxt]
// must read from the store-gateways.
type BlocksFinder interface {
	// GetBlocks returns the tenant's blocks holding samples in [mint,
	// maxt] that are still served, and the deletion marks among them.
	GetBlocks(ctx context.Context, tenant string, mint, maxt int64) (bucketindex.Blocks, map[ulid.ULID]*bucketindex.BlockDeletionMark, error)
}

// blocksFinder keeps each queried tenant's list of blocks: its bucket
// index (-blocks-storage.bucket-store.bucket-index.enabled, one read) or,
// without, a scan of the bucket (a listing and each new block's
// meta.json). A tenant's list is read on its first query and again once
// older than -blocks-storage.bucket-store.sync-interval (a failed read
// after -bucket-index.update-on-error-interval, the last good list serving
// meanwhile); it is forgotten after -bucket-index.idle-timeout without
// queries, so the memory held follows the tenants queried.
type blocksFinder struct {
	bkt    objstore.Bucket
	cfg    storegateway.Config
	logger *slog.Logger
	now    func() time.Time

	mu        sync.Mutex
	tenants   map[string]*tenantBlocks
	lastSweep time.Time
}

// tenantBlocks is one tenant's list; its mutex makes concurrent queries of
// a tenant wait for one read rather than each reading.
type tenantBlocks struct {
	mu       sync.Mutex
	idx      *bucketindex.Index
	err      error
	readAt   time.Time
	lastUsed time.Time
}

// NewBlocksFinder returns the finder over the blocks bucket, with the
// bucket store settings the store-gateways share.
func NewBlocksFinder(bkt objstore.Bucket, cfg storegateway.Config, logger *slog.Logger) BlocksFinder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &blocksFinder{bkt: bkt, cfg: cfg, logger: logger, now: time.Now, tenants: map[string]*tenantBlocks{}}
}

func (f *blocksFinder) GetBlocks(ctx context.Context, tenant string, mint, maxt int64) (bucketindex.Blocks, map[ulid.ULID]*bucketindex.BlockDeletionMark, error) {
	idx, err := f.index(ctx, tenant)
	if err != nil {
		return nil, nil, err
	}
	if f.cfg.BucketIndex.Enabled && f.cfg.BucketIndex.MaxStalePeriod > 0 && idx.UpdatedAt > 0 {
		if age := f.now().Sub(idx.GetUpdatedAt()); age > f.cfg.BucketIndex.MaxStalePeriod {
			return nil, nil, fmt.Errorf("tenant %s: the bucket index was last updated %v ago, more than -blocks-storage.bucket-store.bucket-index.max-stale-period=%v: is the compactor running?", tenant, age.Truncate(time.Second), f.cfg.BucketIndex.MaxStalePeriod)
		}
	}
	marks := map[ulid.ULID]*bucketindex.BlockDeletionMark{}
	for _, m := range idx.BlockDeletionMarks {
		marks[m.ID] = m
	}
	var blocks bucketindex.Blocks
	found := map[ulid.ULID]*bucketindex.BlockDeletionMark{}
	for _, b := range idx.Blocks {
		if !b.Within(mint, maxt) {
			continue
		}
		m := marks[b.ID]
		// Store-gateways stop serving a block that long after its mark.
		if m != nil && f.now().Sub(m.GetDeletionTime()) >= f.cfg.IgnoreDeletionMarksDelay {
			continue
		}
		blocks = append(blocks, b)
		if m != nil {
			found[b.ID] = m
		}
	}
	return blocks, found, nil
}

// index returns the tenant's current list, reading it when due.
func (f *blocksFinder) index(ctx context.Context, tenant string) (*bucketindex.Index, error) {
	now := f.now()
	f.mu.Lock()
	f.sweep(now)
	tb := f.tenants[tenant]
	if tb == nil {
		tb = &tenantBlocks{}
		f.tenants[tenant] = tb
	}
	tb.lastUsed = now
	f.mu.Unlock()

	tb.mu.Lock()
	defer tb.mu.Unlock()
	due := tb.readAt.IsZero() ||
		(tb.err == nil && now.Sub(tb.readAt) >= f.cfg.SyncInterval) ||
		(tb.err != nil && now.Sub(tb.readAt) >= f.cfg.BucketIndex.UpdateOnErrorInterval)
	if due {
		idx, err := f.read(ctx, tenant, tb.idx)
		if err != nil && ctx.Err() != nil {
			return nil, err // the query was cancelled: nothing learnt
		}
		tb.readAt, tb.err = now, err
		if err == nil {
			tb.idx = idx
		} else if tb.idx != nil {
			f.logger.Warn("reading the tenant's blocks failed; using the last list read", "user", tenant, "read_at", tb.readAt, "err", err)
		}
	}
	if tb.idx == nil {
		return nil, tb.err
	}
	return tb.idx, nil
}

// read reads the tenant's bucket index, or scans the bucket without one.
func (f *blocksFinder) read(ctx context.Context, tenant string, old *bucketindex.Index) (*bucketindex.Index, error) {
	if !f.cfg.BucketIndex.Enabled {
		idx, _, err := bucketindex.NewUpdater(f.bkt, tenant, f.logger).UpdateIndex(ctx, old)
		if err != nil {
			return nil, fmt.Errorf("scanning the bucket for the blocks of tenant %s: %w", tenant, err)
		}
		idx.UpdatedAt = 0 // a scan is current: no staleness to check
		return idx, nil
	}
	idx, err := bucketindex.ReadIndex(ctx, f.bkt, tenant)
	if errors.Is(err, bucketindex.ErrIndexNotFound) {
		// No index: the compactor has found no block of the tenant yet.
		return &bucketindex.Index{Version: bucketindex.IndexVersion1}, nil
	}
	return idx, err
}

// sweep forgets the tenants not queried for the idle timeout, at most once
// per minute.
func (f *blocksFinder) sweep(now time.Time) {
	if now.Sub(f.lastSweep) < time.Minute {
		return
	}
	f.lastSweep = now
	idle := f.cfg.BucketIndex.IdleTimeout
	if idle <= 0 {
		idle = time.Hour
	}
	for tenant, tb := range f.tenants {
		if now.Sub(tb.lastUsed) > idle {
			delete(f.tenants, tenant)
		}
	}
}
