package storegateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/util/matcherscache"
	"github.com/cortex-tls/cortex/pkg/util/tenantfilter"
)

// Names of the objects of a block in the bucket, as the ingesters' shipper
// and Thanos write them.
const (
	metaFilename         = "meta.json"
	indexFilename        = "index"
	chunksDirname        = "chunks"
	deletionMarkFilename = "deletion-mark.json"
	// markersDirname is Cortex's reserved top-level folder of global
	// markers; it is not a tenant.
	markersDirname = "__markers__"
)

// BucketStore serves the blocks of every tenant of one bucket. It is safe
// for concurrent use: queries run while SyncBlocks loads and drops blocks,
// and a dropped block is closed only once the queriers using it are closed.
type BucketStore struct {
	cfg    Config
	bkt    objstore.BucketReader
	logger *slog.Logger
	m      *metrics
	limits *limits
	// matchers is the matchers cache of the gRPC calls; nil: none.
	matchers *matcherscache.Cache
	lazy     *lazyLoading
	// lazyPostings is nil without
	// -blocks-storage.bucket-store.lazy-expanded-postings-enabled.
	lazyPostings *lazyPostingsConfig
	// stopIdle stops the unloading of idle blocks; nil: not running.
	stopIdle func()

	// filter, when set, says which blocks this store-gateway serves: its
	// share of them on the sharding ring.
	filter BlockFilter
	// tenants says which tenants it serves
	// (-store-gateway.enabled-tenants, -store-gateway.disabled-tenants).
	tenants *tenantfilter.Allowed
	// users lists the tenants (WithUsersScanner); nil: a bucket listing.
	users users.Scanner

	// syncMu makes syncs take turns; mu guards blocks.
	syncMu sync.Mutex
	mu     sync.RWMutex
	blocks map[string]map[ulid.ULID]*block // tenant -> block ID -> block
}

// NewBucketStore returns a bucket store over bkt keeping its local files in
// cfg.SyncDir, reading through the caches cfg sets up. It loads nothing
// until SyncBlocks is called.
func NewBucketStore(cfg Config, bkt objstore.BucketReader, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*BucketStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ChunkFetchConcurrency <= 0 {
		cfg.ChunkFetchConcurrency = defaultChunkFetchConcurrency
	}
	if err := os.MkdirAll(cfg.SyncDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating -blocks-storage.bucket-store.sync-dir %q: %w", cfg.SyncDir, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sb, err := newStoreBucket(cfg, bkt, opts, logger, reg)
	if err != nil {
		return nil, err
	}
	mc, err := matcherscache.New(cfg.MatchersCacheMaxItems, "cortex_storegateway", reg)
	if err != nil {
		return nil, err
	}
	s := &BucketStore{
		lazy:     newLazyLoading(reg),
		matchers: mc,
		cfg:      cfg,
		bkt:      sb,
		logger:   logger,
		m:        newMetrics(reg),
		limits:   newLimits(cfg, logger, reg),
		tenants:  sb.opts.tenants,
		users:    sb.opts.users,
		blocks:   map[string]map[ulid.ULID]*block{},
	}
	if cfg.LazyExpandedPostingsEnabled {
		s.lazyPostings = &lazyPostingsConfig{ratio: cfg.LazyExpandedPostingGroupMaxKeySeriesRatio, m: newLazyPostingsMetrics(reg)}
	}
	if cfg.IndexHeaderLazyLoadingEnabled && cfg.IndexHeaderLazyLoadingIdleTimeout > 0 {
		s.startIdleUnloading()
	}
	return s, nil
}

// BlockFilter reports whether a store-gateway serves a tenant's block;
// loaded says whether it does already.
type BlockFilter func(tenant string, id ulid.ULID, loaded bool) bool

// SetBlockFilter restricts the blocks served to those f accepts. It must
// be called before the first sync.
func (s *BucketStore) SetBlockFilter(f BlockFilter) { s.filter = f }

// deletionMark is Thanos' deletion-mark.json.
type deletionMark struct {
	ID           ulid.ULID `json:"id"`
	DeletionTime int64     `json:"deletion_time"`
	Version      int       `json:"version"`
}

// remoteBlock is what a sync learnt about one block in the bucket.
type remoteBlock struct {
	id   ulid.ULID
	meta []byte // the bucket's meta.json, nil if the block is not to be served
	// minT and maxT are the block's time range, [minT, maxT) in
	// milliseconds, known when meta is or the block is current.
	minT, maxT int64
	// unknown means the bucket could not be read for this block: a loaded
	// copy is kept rather than dropped because of a transient error.
	unknown bool
	// current is a block to serve that is loaded already, so its meta.json
	// was not read again.
	current bool
}

// SyncBlocks brings the loaded blocks in line with the bucket: it loads the
// blocks that are complete (meta.json uploaded) and not marked for deletion,
// and drops, locally too, those that are gone or marked. Blocks that cannot
// be read are reported in the error and retried at the next sync; the
// others are synced regardless.
func (s *BucketStore) SyncBlocks(ctx context.Context) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.m.syncs.Inc()

	tenants, err := s.listTenants(ctx)
	if err != nil {
		s.m.syncFailures.Inc()
		return fmt.Errorf("listing tenants in the bucket: %w", err)
	}
	tenantErrs := make([]error, len(tenants))
	forEach(len(tenants), s.cfg.TenantSyncConcurrency, func(i int) {
		tenantErrs[i] = s.syncTenant(ctx, tenants[i])
	})
	var errs []error
	for _, err := range tenantErrs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	// A tenant whose folder is gone from the bucket has no blocks left.
	s.mu.RLock()
	var gone []string
	for tenant := range s.blocks {
		if !slices.Contains(tenants, tenant) {
			gone = append(gone, tenant)
		}
	}
	s.mu.RUnlock()
	for _, tenant := range gone {
		s.dropBlocks(tenant, nil)
	}
	s.removeStaleLocalBlocks()

	s.mu.RLock()
	s.m.tenants.Set(float64(len(s.blocks)))
	s.mu.RUnlock()
	if len(errs) > 0 {
		s.m.syncFailures.Inc()
		return errors.Join(errs...)
	}
	s.m.lastSync.SetToCurrentTime()
	return nil
}

// validTenant rejects bucket folder names that cannot be a tenant or would
// escape the sync directory as a local path.
func validTenant(name string) bool {
	return name != "" && name != "." && name != ".." && name != markersDirname &&
		!strings.ContainsAny(name, `/\`)
}

func (s *BucketStore) listTenants(ctx context.Context) ([]string, error) {
	var tenants []string
	if sc := s.users; sc != nil {
		active, deleting, _, err := sc.ScanUsers(ctx)
		for _, t := range slices.Concat(active, deleting) {
			if validTenant(t) && s.tenants.IsAllowed(t) && !slices.Contains(tenants, t) {
				tenants = append(tenants, t)
			}
		}
		slices.Sort(tenants)
		return tenants, err
	}
	err := s.bkt.Iter(ctx, "", func(name string) error {
		// Folders end with the delimiter; anything else at the top level
		// is not a tenant.
		if t, ok := strings.CutSuffix(name, objstore.DirDelim); ok && validTenant(t) && s.tenants.IsAllowed(t) {
			tenants = append(tenants, t)
		}
		return nil
	})
	slices.Sort(tenants)
	return tenants, err
}

// syncTenant loads the tenant's new blocks and drops those it should no
// longer serve.
func (s *BucketStore) syncTenant(ctx context.Context, tenant string) error {
	s.mu.RLock()
	loaded := make(map[ulid.ULID]bool, len(s.blocks[tenant]))
	for id := range s.blocks[tenant] {
		loaded[id] = true
	}
	s.mu.RUnlock()

	var (
		remote []remoteBlock
		err    error
	)
	if s.cfg.BucketIndex.Enabled {
		remote, err = s.remoteBlocksFromIndex(ctx, tenant, loaded)
	} else {
		remote, err = s.remoteBlocksFromListing(ctx, tenant, loaded)
	}
	if remote == nil && err != nil {
		// Without the list, nothing can be judged gone: keep what is loaded.
		return err
	}

	wanted := map[ulid.ULID]bool{} // ID -> to be loaded (false: keep if loaded)
	var toLoad []remoteBlock
	for _, rb := range remote {
		switch {
		case rb.unknown:
			wanted[rb.id] = false
		case (rb.current || rb.meta != nil) && !s.inSyncedTimeRange(rb.minT, rb.maxT):
			// Left out (and dropped if loaded) by
			// -blocks-storage.bucket-store.ignore-blocks-within or -before.
		case rb.current:
			wanted[rb.id] = false
		case rb.meta != nil:
			wanted[rb.id] = true
			if !loaded[rb.id] {
				toLoad = append(toLoad, rb)
			}
		}
	}
	s.dropBlocks(tenant, wanted)

	loadErrs := make([]error, len(toLoad))
	forEach(len(toLoad), s.cfg.BlockSyncConcurrency, func(i int) {
		loadErrs[i] = s.loadBlock(tenant, toLoad[i])
	})
	return errors.Join(append([]error{err}, loadErrs...)...)
}

// inSyncedTimeRange reports whether a block of [minT, maxT) is to be
// served: not one whose samples start within
// -blocks-storage.bucket-store.ignore-blocks-within of now (queriers read
// those from the ingesters), nor one whose samples all end longer ago than
// -blocks-storage.bucket-store.ignore-blocks-before, as Cortex's filters.
func (s *BucketStore) inSyncedTimeRange(minT, maxT int64) bool {
	now := time.Now()
	if s.cfg.IgnoreBlocksWithin > 0 && minT > now.Add(-s.cfg.IgnoreBlocksWithin).UnixMilli() {
		return false
	}
	if s.cfg.IgnoreBlocksBefore > 0 && maxT < now.Add(-s.cfg.IgnoreBlocksBefore).UnixMilli() {
		return false
	}
	return true
}

// owns reports whether this store-gateway is to serve the block: always
// without sharding.
func (s *BucketStore) owns(tenant string, id ulid.ULID, loaded bool) bool {
	return s.filter == nil || s.filter(tenant, id, loaded)
}

// remoteBlocksFromListing lists the tenant's blocks in the bucket and reads
// each one's deletion mark and meta.json. The error, if any, comes with
// the blocks that could be judged (nil blocks: none could).
//
// With -blocks-storage.bucket-store.block-discovery-strategy=recursive, one
// recursive listing of the tenant's objects also tells which blocks have a
// meta.json and a deletion mark: only the files listed are read.
func (s *BucketStore) remoteBlocksFromListing(ctx context.Context, tenant string, loaded map[ulid.ULID]bool) ([]remoteBlock, error) {
	var (
		ids       []ulid.ULID
		recursive = s.cfg.BlockDiscoveryStrategy == DiscoveryRecursive
		files     = map[ulid.ULID]*listedFiles{}
		opts      []objstore.IterOption
	)
	if recursive {
		opts = append(opts, objstore.WithRecursiveIter())
	}
	err := s.bkt.Iter(ctx, tenant+objstore.DirDelim, func(name string) error {
		rel := strings.TrimPrefix(name, tenant+objstore.DirDelim)
		if recursive {
			dir, file, ok := strings.Cut(rel, objstore.DirDelim)
			id, err := ulid.ParseStrict(dir)
			if !ok || err != nil {
				return nil
			}
			lf := files[id]
			if lf == nil {
				if !s.owns(tenant, id, loaded[id]) {
					return nil
				}
				lf = &listedFiles{}
				files[id] = lf
				ids = append(ids, id)
			}
			switch file {
			case metaFilename:
				lf.meta = true
			case deletionMarkFilename:
				lf.mark = true
			}
			return nil
		}
		base, ok := strings.CutSuffix(rel, objstore.DirDelim)
		if !ok {
			return nil // a file beside the blocks, such as the bucket index
		}
		if id, err := ulid.ParseStrict(base); err == nil && s.owns(tenant, id, loaded[id]) {
			ids = append(ids, id)
		}
		return nil
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: listing blocks in the bucket: %w", tenant, err)
	}
	remote := make([]remoteBlock, len(ids))
	errs := make([]error, len(ids))
	forEach(len(ids), s.cfg.MetaSyncConcurrency, func(i int) {
		remote[i], errs[i] = s.readRemoteBlock(ctx, tenant, ids[i], files[ids[i]])
	})
	return remote, errors.Join(errs...)
}

// listedFiles says which of a block's files a recursive listing found.
type listedFiles struct{ meta, mark bool }

// remoteBlocksFromIndex takes the tenant's blocks and deletion marks from
// its bucket index, reading meta.json only for blocks not loaded yet. A
// tenant without an index has no blocks to serve (the compactor writes the
// index of every tenant with blocks, and deletes it with the tenant).
func (s *BucketStore) remoteBlocksFromIndex(ctx context.Context, tenant string, loaded map[ulid.ULID]bool) ([]remoteBlock, error) {
	idx, err := bucketindex.ReadIndex(ctx, s.bkt, tenant)
	if errors.Is(err, bucketindex.ErrIndexNotFound) {
		return []remoteBlock{}, nil
	}
	if err != nil {
		return nil, err
	}
	marks := map[ulid.ULID]*bucketindex.BlockDeletionMark{}
	for _, m := range idx.BlockDeletionMarks {
		marks[m.ID] = m
	}
	var fetch []ulid.ULID
	remote := []remoteBlock{}
	for _, b := range idx.Blocks {
		if m := marks[b.ID]; m != nil && time.Since(m.GetDeletionTime()) >= s.cfg.IgnoreDeletionMarksDelay {
			continue
		}
		if !s.owns(tenant, b.ID, loaded[b.ID]) {
			continue
		}
		if loaded[b.ID] {
			remote = append(remote, remoteBlock{id: b.ID, current: true, minT: b.MinTime, maxT: b.MaxTime})
			continue
		}
		if !s.inSyncedTimeRange(b.MinTime, b.MaxTime) {
			continue // not worth reading its meta.json
		}
		fetch = append(fetch, b.ID)
	}
	fetched := make([]remoteBlock, len(fetch))
	errs := make([]error, len(fetch))
	forEach(len(fetch), s.cfg.MetaSyncConcurrency, func(i int) {
		fetched[i], errs[i] = s.readMeta(ctx, tenant, fetch[i])
	})
	return append(remote, fetched...), errors.Join(errs...)
}

// readRemoteBlock reads a block's deletion mark and meta.json. A block
// without meta.json is still being uploaded (the shipper writes it last) or
// was left half uploaded: it is skipped, like a block marked for deletion
// longer ago than -blocks-storage.bucket-store.ignore-deletion-marks-delay.
// listed, when not nil, says which of the block's files exist: the others
// are not read.
func (s *BucketStore) readRemoteBlock(ctx context.Context, tenant string, id ulid.ULID, listed *listedFiles) (remoteBlock, error) {
	rb := remoteBlock{id: id}
	if listed != nil && !listed.meta {
		return rb, nil // partial upload
	}
	markName := path.Join(tenant, id.String(), deletionMarkFilename)
	var (
		mark []byte
		err  error
	)
	if listed != nil && !listed.mark {
		err = errNotListed
	} else {
		mark, err = readObject(ctx, s.bkt, markName)
	}
	switch {
	case errors.Is(err, errNotListed):
	case err == nil:
		var dm deletionMark
		if jerr := json.Unmarshal(mark, &dm); jerr != nil {
			// A mark is only ever written by a compactor deciding to delete
			// the block: even unreadable, it means the block is going.
			s.logger.Warn("unreadable deletion mark; not serving the block", "user", tenant, "block", id.String(), "file", markName, "err", jerr)
			return rb, nil
		}
		if time.Since(time.Unix(dm.DeletionTime, 0)) >= s.cfg.IgnoreDeletionMarksDelay {
			return rb, nil
		}
	case !s.bkt.IsObjNotFoundErr(err):
		rb.unknown = true
		return rb, fmt.Errorf("tenant %s block %s: reading %s: %w", tenant, id, markName, err)
	}

	return s.readMeta(ctx, tenant, id)
}

// errNotListed stands for the read of a file a recursive listing did not
// find.
var errNotListed = errors.New("not listed")

// readMeta reads a block's meta.json; a block without one was left half
// uploaded (the index names only complete blocks, so it is being deleted).
func (s *BucketStore) readMeta(ctx context.Context, tenant string, id ulid.ULID) (remoteBlock, error) {
	rb := remoteBlock{id: id}
	metaName := path.Join(tenant, id.String(), metaFilename)
	meta, err := readObject(ctx, s.bkt, metaName)
	switch {
	case err == nil:
		var bm struct {
			MinTime int64 `json:"minTime"`
			MaxTime int64 `json:"maxTime"`
		}
		if err := json.Unmarshal(meta, &bm); err != nil {
			rb.unknown = true
			return rb, fmt.Errorf("tenant %s block %s: parsing %s: %w", tenant, id, metaName, err)
		}
		rb.meta, rb.minT, rb.maxT = meta, bm.MinTime, bm.MaxTime
		return rb, nil
	case s.bkt.IsObjNotFoundErr(err):
		return rb, nil // partial upload
	default:
		rb.unknown = true
		return rb, fmt.Errorf("tenant %s block %s: reading %s: %w", tenant, id, metaName, err)
	}
}

func readObject(ctx context.Context, bkt objstore.BucketReader, name string) ([]byte, error) {
	r, err := bkt.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close() //nolint:errcheck // read-only: the read's error is the one that matters
	return io.ReadAll(r)
}

// localDir is where a block's index and meta.json are kept.
func (s *BucketStore) localDir(tenant string, id ulid.ULID) string {
	return filepath.Join(s.cfg.SyncDir, tenant, id.String())
}

// loadBlock downloads the block's index (unless a complete copy from an
// earlier run is there) and opens it.
func (s *BucketStore) loadBlock(tenant string, rb remoteBlock) (err error) {
	s.m.blockLoads.Inc()
	defer func() {
		if err != nil {
			s.m.blockLoadFailures.Inc()
		}
	}()
	// The download is not tied to the caller's context: a sync cut short
	// would otherwise leave half files behind for the next one to clean up.
	ctx := context.Background()
	dir := s.localDir(tenant, rb.id)
	var tm thanosFiles
	if err := json.Unmarshal(rb.meta, &tm); err != nil {
		return fmt.Errorf("tenant %s block %s: parsing %s: %w", tenant, rb.id, metaFilename, err)
	}

	b, err := s.openLocal(tenant, rb, dir, tm)
	if err != nil {
		s.logger.Info("downloading block index", "user", tenant, "block", rb.id.String(), "reason", err.Error())
		if err := s.download(ctx, tenant, rb, dir); err != nil {
			_ = os.RemoveAll(dir)
			return err
		}
		if b, err = s.openLocal(tenant, rb, dir, tm); err != nil {
			_ = os.RemoveAll(dir)
			return err
		}
	}
	s.mu.Lock()
	if s.blocks[tenant] == nil {
		s.blocks[tenant] = map[ulid.ULID]*block{}
	}
	s.blocks[tenant][rb.id] = b
	s.mu.Unlock()
	s.m.blocksLoaded.Inc()
	s.logger.Debug("loaded block", "user", tenant, "block", rb.id.String(), "index_bytes", b.indexSize)
	return nil
}

// openLocal opens the local copy of a block, which is valid only if its
// meta.json (written last) is the bucket's.
func (s *BucketStore) openLocal(tenant string, rb remoteBlock, dir string, tm thanosFiles) (*block, error) {
	local, err := os.ReadFile(filepath.Join(dir, metaFilename))
	if err != nil {
		return nil, fmt.Errorf("tenant %s block %s: no local %s: %w", tenant, rb.id, metaFilename, err)
	}
	if !bytes.Equal(local, rb.meta) {
		return nil, fmt.Errorf("tenant %s block %s: local %s differs from the bucket's", tenant, rb.id, metaFilename)
	}
	st, err := os.Stat(filepath.Join(dir, indexFilename))
	if err != nil {
		return nil, fmt.Errorf("tenant %s block %s: %w", tenant, rb.id, err)
	}
	var tb *tsdb.Block
	// With lazy loading the index is opened by the first query.
	if !s.cfg.IndexHeaderLazyLoadingEnabled {
		if tb, err = tsdb.OpenBlock(nil, dir, nil, nil); err != nil {
			return nil, fmt.Errorf("tenant %s block %s: opening local index %s: %w", tenant, rb.id, filepath.Join(dir, indexFilename), err)
		}
	}
	b := newBlock(tenant, rb.id, dir, tb, s.bkt, tm, st.Size(), s.m, s.cfg.ChunkFetchConcurrency)
	b.lazy = s.lazy
	b.lazyPostings = s.lazyPostings
	return b, nil
}

// download writes the block's index, an empty chunks folder (the TSDB's
// block reader wants one; chunks are read from the bucket) and, last, its
// meta.json, so that a copy with meta.json is complete.
func (s *BucketStore) download(ctx context.Context, tenant string, rb remoteBlock, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("tenant %s block %s: removing old local copy %s: %w", tenant, rb.id, dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, chunksDirname), 0o750); err != nil {
		return fmt.Errorf("tenant %s block %s: %w", tenant, rb.id, err)
	}
	indexName := path.Join(tenant, rb.id.String(), indexFilename)
	r, err := s.bkt.Get(ctx, indexName)
	if err != nil {
		return fmt.Errorf("tenant %s block %s: reading %s: %w", tenant, rb.id, indexName, err)
	}
	defer r.Close() //nolint:errcheck // read-only: the copy's error is the one that matters
	if err := writeFile(filepath.Join(dir, indexFilename), r); err != nil {
		return fmt.Errorf("tenant %s block %s: downloading %s: %w", tenant, rb.id, indexName, err)
	}
	if err := writeFile(filepath.Join(dir, metaFilename), bytes.NewReader(rb.meta)); err != nil {
		return fmt.Errorf("tenant %s block %s: writing local %s: %w", tenant, rb.id, metaFilename, err)
	}
	return nil
}

// writeFile writes r to a temporary file renamed to name once complete.
func writeFile(name string, r io.Reader) error {
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// dropBlocks unloads and deletes locally the tenant's loaded blocks that
// are not in keep (all of them if keep is nil).
func (s *BucketStore) dropBlocks(tenant string, keep map[ulid.ULID]bool) {
	s.mu.Lock()
	var drop []*block
	for id, b := range s.blocks[tenant] {
		if _, ok := keep[id]; !ok {
			drop = append(drop, b)
			delete(s.blocks[tenant], id)
		}
	}
	if len(s.blocks[tenant]) == 0 {
		delete(s.blocks, tenant)
	}
	s.mu.Unlock()

	for _, b := range drop {
		s.m.blocksLoaded.Dec()
		// Close waits for the queriers still reading the block's index.
		err := b.close()
		if err == nil {
			err = os.RemoveAll(s.localDir(tenant, b.id))
		}
		if err != nil {
			s.m.blockDropFailures.Inc()
			s.logger.Warn("dropping block", "user", tenant, "block", b.id.String(), "dir", s.localDir(tenant, b.id), "err", err)
			continue
		}
		s.m.blockDrops.Inc()
		s.logger.Debug("dropped block", "user", tenant, "block", b.id.String())
	}
}

// removeStaleLocalBlocks deletes the block folders under the sync directory
// that no loaded block owns: copies left by an earlier run of blocks since
// gone. Only folders named like a block ID are ours to delete.
func (s *BucketStore) removeStaleLocalBlocks() {
	tenantDirs, err := os.ReadDir(s.cfg.SyncDir)
	if err != nil {
		s.logger.Warn("listing the sync directory", "dir", s.cfg.SyncDir, "err", err)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, td := range tenantDirs {
		if !td.IsDir() || !validTenant(td.Name()) {
			continue
		}
		tenant := td.Name()
		entries, err := os.ReadDir(filepath.Join(s.cfg.SyncDir, tenant))
		if err != nil {
			continue
		}
		for _, e := range entries {
			id, err := ulid.ParseStrict(e.Name())
			if err != nil || !e.IsDir() {
				continue
			}
			if _, ok := s.blocks[tenant][id]; ok {
				continue
			}
			if err := os.RemoveAll(s.localDir(tenant, id)); err != nil {
				s.logger.Warn("removing stale local block", "user", tenant, "block", id.String(), "err", err)
			}
		}
		// Removes the tenant's folder only if nothing is left in it.
		_ = os.Remove(filepath.Join(s.cfg.SyncDir, tenant))
	}
}

// Close closes every loaded block, keeping the local copies for the next
// start, and stops the caches built for the store.
func (s *BucketStore) Close() error {
	if sb, ok := s.bkt.(*storeBucket); ok {
		sb.stopCaches()
	}
	if s.stopIdle != nil {
		s.stopIdle()
		s.stopIdle = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for tenant, blocks := range s.blocks {
		for id, b := range blocks {
			if err := b.close(); err != nil {
				errs = append(errs, fmt.Errorf("tenant %s block %s: closing: %w", tenant, id, err))
			}
			s.m.blocksLoaded.Dec()
		}
	}
	s.blocks = map[string]map[ulid.ULID]*block{}
	return errors.Join(errs...)
}

// Blocks returns the IDs of the tenant's loaded blocks, sorted.
func (s *BucketStore) Blocks(tenant string) []ulid.ULID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]ulid.ULID, 0, len(s.blocks[tenant]))
	for id := range s.blocks[tenant] {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	return ids
}

// Querier returns a querier over the tenant's loaded blocks that overlap
// [mint, maxt] (milliseconds, inclusive). Series found in several blocks,
// such as the copies uploaded by each ingester of a replication set, are
// merged and their identical samples kept once. The querier holds the
// blocks open until it is closed.
func (s *BucketStore) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	q, _, err := s.SelectedQuerier(tenant, mint, maxt, nil)
	return q, err
}

// SelectedQuerier is Querier over only the given blocks (all loaded blocks
// if blocks is nil). It also returns which of the given blocks this store
// holds, overlapping the range or not: those it answered for.
func (s *BucketStore) SelectedQuerier(tenant string, mint, maxt int64, blocks []ulid.ULID) (storage.Querier, []ulid.ULID, error) {
	bqs, held, err := s.selectBlockQueriers(tenant, mint, maxt, blocks)
	if err != nil {
		return nil, nil, err
	}
	switch len(bqs) {
	case 0:
		return storage.NoopQuerier(), held, nil
	case 1:
		return bqs[0], held, nil
	}
	qs := make([]storage.Querier, len(bqs))
	for i, q := range bqs {
		qs[i] = q
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), held, nil
}

// selectBlockQueriers opens a querier on each of the tenant's loaded
// blocks that overlap [mint, maxt] and are among the given blocks (all if
// nil), in block ID order, returning also which of the given blocks are
// loaded.
func (s *BucketStore) selectBlockQueriers(tenant string, mint, maxt int64, only []ulid.ULID) ([]*blockQuerier, []ulid.ULID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var (
		qs   []*blockQuerier
		held []ulid.ULID
	)
	open := func(b *block) error {
		// A block's MaxTime is exclusive.
		if b.minT > maxt || b.maxT <= mint {
			return nil
		}
		q, err := newBlockQuerier(b, mint, maxt, s.limits, s.cfg.SeriesBatchSize)
		if err != nil {
			return err
		}
		qs = append(qs, q)
		return nil
	}
	var err error
	if only == nil {
		for _, b := range s.blocks[tenant] {
			if err = open(b); err != nil {
				break
			}
		}
	} else {
		for _, id := range only {
			b, ok := s.blocks[tenant][id]
			if !ok || slices.Contains(held, id) {
				continue
			}
			held = append(held, id)
			if err = open(b); err != nil {
				break
			}
		}
	}
	if err != nil {
		for _, q := range qs {
			_ = q.Close()
		}
		return nil, nil, err
	}
	// A stable order keeps merges and errors reproducible.
	slices.SortFunc(qs, func(a, b *blockQuerier) int { return a.b.id.Compare(b.b.id) })
	s.m.blocksQueried.Observe(float64(len(qs)))
	return qs, held, nil
}

// forEach runs f(0..n-1) on at most concurrency goroutines.
func forEach(n, concurrency int, f func(i int)) {
	if concurrency > n {
		concurrency = n
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range concurrency {
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
