package ingester

// The shipper is written here on objstore rather than taken from Thanos'
// pkg/shipper: github.com/thanos-io/thanos v0.42.5 needs Go 1.26.10 (this
// module builds with 1.26.8), and v0.42.0 to v0.42.4 do not compile
// against github.com/prometheus/prometheus v0.316.0 (pkg/block imports
// tsdb/errors, which v0.316.0 removed; pkg/block/metadata reaches
// pkg/extpromql, written for an older promql parser API). Moving
// Prometheus back is not an option, so the block layout, meta.json's
// "thanos" section and the thanos.shipper.json record follow Thanos'
// formats here, byte for byte where readers depend on them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/fileutil"

	"github.com/cortex-tls/cortex/pkg/util/kitlog"
)

const (
	// shippedRecordFile is Thanos' name for the record of a TSDB
	// directory's uploaded blocks, which Cortex keeps in each tenant's
	// TSDB directory.
	shippedRecordFile = "thanos.shipper.json"
	shippedRecordV1   = 1

	blockMetaFile  = "meta.json"
	blockIndexFile = "index"
	blockChunksDir = "chunks"
	thanosMetaV1   = 1
	receiveSource  = "receive"
	tenantIDLabel  = "__org_id__"
)

// shippedRecord is thanos.shipper.json.
type shippedRecord struct {
	Version  int      `json:"version"`
	Uploaded []string `json:"uploaded"`
}

// blockMeta is a block's meta.json: Prometheus' fields and the "thanos"
// section that Thanos' and Cortex's store-gateways and compactors read.
type blockMeta struct {
	tsdb.BlockMeta
	Thanos thanosMeta `json:"thanos"`
}

type thanosMeta struct {
	Version    int               `json:"version,omitempty"`
	Labels     map[string]string `json:"labels"`
	Downsample struct {
		Resolution int64 `json:"resolution"`
	} `json:"downsample"`
	Source       string       `json:"source"`
	SegmentFiles []string     `json:"segment_files,omitempty"`
	Files        []thanosFile `json:"files,omitempty"`
	UploadTime   time.Time    `json:"upload_time,omitzero"`
}

type thanosFile struct {
	RelPath   string `json:"rel_path"`
	SizeBytes int64  `json:"size_bytes,omitempty"`
}

// shipper uploads one tenant's blocks to <tenant>/<block ULID>/ in the
// bucket and records them in the tenant's thanos.shipper.json, so that a
// restart does not upload them again and retention knows what it may
// delete.
type shipper struct {
	tenant string
	dir    string
	bucket objstore.Bucket // prefixed with the tenant
	logger *slog.Logger
	m      *metrics

	// mu makes syncs of the tenant (ship loop, flush, shutdown) take turns.
	mu sync.Mutex
	// shipped is the record's block IDs, read by the TSDB's retention
	// (blocksToDelete) without waiting for a sync in progress.
	shipped atomic.Pointer[map[string]struct{}]

	// root is the whole bucket, where the tenant deletion mark is looked
	// up; deletionMarked is set once it is found (tenant_deletion.go).
	root           objstore.Bucket
	deletionMarked atomic.Bool
}

func newShipper(tenant, dir string, bkt objstore.Bucket, logger *slog.Logger, m *metrics) *shipper {
	s := &shipper{
		tenant: tenant,
		dir:    dir,
		bucket: objstore.NewPrefixedBucket(bkt, tenant),
		root:   bkt,
		logger: logger.With("user", tenant),
		m:      m,
	}
	rec := s.readRecord()
	s.setShipped(rec.Uploaded)
	return s
}

func (s *shipper) recordPath() string { return filepath.Join(s.dir, shippedRecordFile) }

// readRecord reads thanos.shipper.json. A missing or unreadable record is
// an empty one: the blocks it listed are then found in the bucket (their
// meta.json exists) and recorded again without being uploaded.
func (s *shipper) readRecord() shippedRecord {
	b, err := os.ReadFile(s.recordPath())
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.logger.Warn("reading the shipped blocks record; checking the bucket instead", "file", s.recordPath(), "err", err)
		}
		return shippedRecord{Version: shippedRecordV1}
	}
	var rec shippedRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		s.logger.Warn("parsing the shipped blocks record; checking the bucket instead", "file", s.recordPath(), "err", err)
		return shippedRecord{Version: shippedRecordV1}
	}
	return rec
}

// writeRecord replaces thanos.shipper.json atomically, as Thanos does.
func (s *shipper) writeRecord(rec shippedRecord) error {
	b, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		return err
	}
	tmp := s.recordPath() + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fileutil.Replace(tmp, s.recordPath())
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", s.recordPath(), err)
	}
	return nil
}

func (s *shipper) setShipped(ids []string) {
	m := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	s.shipped.Store(&m)
}

func (s *shipper) isShipped(id string) bool {
	m := s.shipped.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[id]
	return ok
}

// localBlocks returns the metas of the tenant's finished blocks, oldest
// first. A directory is a block once its meta.json names it: TSDB writes
// meta.json last and renames the directory into place.
func (s *shipper) localBlocks() ([]blockMeta, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("reading the TSDB directory %s: %w", s.dir, err)
	}
	var metas []blockMeta
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name(), blockMetaFile))
		if err != nil {
			continue // the WAL, chunks_head, a block being written
		}
		var m blockMeta
		if err := json.Unmarshal(b, &m); err != nil || m.ULID.String() != e.Name() {
			continue
		}
		metas = append(metas, m)
	}
	slices.SortFunc(metas, func(a, b blockMeta) int {
		switch {
		case a.MinTime < b.MinTime:
			return -1
		case a.MinTime > b.MinTime:
			return 1
		}
		return 0
	})
	return metas, nil
}

// sync uploads the tenant's blocks missing from the bucket, oldest first,
// and rewrites the record. A block that fails to upload is left for the
// next sync; the others still go. Blocks compacted locally (level > 1)
// are not uploaded: their sources were, and the compactor merges them in
// the bucket.
func (s *shipper) sync(ctx context.Context) (uploaded int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.markedForDeletion(ctx) {
		return 0, nil
	}

	failed := true
	defer func() {
		if failed {
			s.m.shipperDirSyncFailures.Inc()
		} else {
			s.m.shipperDirSyncs.Inc()
		}
	}()

	rec := s.readRecord()
	had := make(map[string]struct{}, len(rec.Uploaded))
	for _, id := range rec.Uploaded {
		had[id] = struct{}{}
	}
	metas, err := s.localBlocks()
	if err != nil {
		return 0, err
	}
	var shipped []string
	var uploadErrs []error
	for _, m := range metas {
		id := m.ULID.String()
		if _, ok := had[id]; ok {
			shipped = append(shipped, id)
			continue
		}
		if m.Stats.NumSamples == 0 || m.Compaction.Level > 1 {
			continue
		}
		// Uploaded before a restart that came ahead of the record's write.
		exists, err := s.bucket.Exists(ctx, path.Join(id, blockMetaFile))
		if err != nil {
			// The bucket is unreachable: the remaining blocks wait for
			// the next sync, the record keeps what it had.
			return uploaded, fmt.Errorf("checking block %s of tenant %q in the bucket: %w", id, s.tenant, err)
		}
		if !exists {
			if err := s.upload(ctx, m); err != nil {
				s.m.shipperUploadFailures.Inc()
				uploadErrs = append(uploadErrs, fmt.Errorf("uploading block %s of tenant %q: %w", id, s.tenant, err))
				s.logger.Warn("uploading block failed; retried on the next sync", "block", id, "err", err)
				continue
			}
			uploaded++
			s.m.shipperUploads.Inc()
			s.logger.Info("uploaded block", "block", id, "min_time", m.MinTime, "max_time", m.MaxTime)
		}
		shipped = append(shipped, id)
	}
	if err := s.writeRecord(shippedRecord{Version: shippedRecordV1, Uploaded: shipped}); err != nil {
		// The uploaded blocks are in the bucket: the next sync finds
		// them there and records them.
		uploadErrs = append(uploadErrs, err)
	}
	// Retention sees a block as shipped only once it is in the bucket.
	s.setShipped(shipped)
	failed = false
	return uploaded, errors.Join(uploadErrs...)
}

// upload writes a block as Thanos' block.Upload does: chunks, index, then
// meta.json with the "thanos" section, so that a reader never sees a
// block without its meta.
func (s *shipper) upload(ctx context.Context, m blockMeta) error {
	id := m.ULID.String()
	bdir := filepath.Join(s.dir, id)
	kl := kitlog.New(s.logger)

	files, segments, err := blockFiles(bdir)
	if err != nil {
		return err
	}
	if err := objstore.UploadDir(ctx, kl, s.bucket, filepath.Join(bdir, blockChunksDir), path.Join(id, blockChunksDir)); err != nil {
		return fmt.Errorf("uploading chunks: %w", err)
	}
	if err := objstore.UploadFile(ctx, kl, s.bucket, filepath.Join(bdir, blockIndexFile), path.Join(id, blockIndexFile)); err != nil {
		return fmt.Errorf("uploading index: %w", err)
	}
	m.Thanos = thanosMeta{
		Version:      thanosMetaV1,
		Labels:       map[string]string{tenantIDLabel: s.tenant},
		Source:       receiveSource,
		SegmentFiles: segments,
		Files:        files,
		UploadTime:   time.Now().UTC(),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(&m); err != nil {
		return fmt.Errorf("encoding meta.json: %w", err)
	}
	if err := s.bucket.Upload(ctx, path.Join(id, blockMetaFile), &buf); err != nil {
		return fmt.Errorf("uploading meta.json: %w", err)
	}
	return nil
}

// blockFiles lists a block's files with their sizes, sorted by path, and
// its chunk segment names, as Thanos' meta.json carries them.
func blockFiles(bdir string) (files []thanosFile, segments []string, _ error) {
	entries, err := os.ReadDir(filepath.Join(bdir, blockChunksDir))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", filepath.Join(bdir, blockChunksDir), err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			return nil, nil, err
		}
		files = append(files, thanosFile{RelPath: path.Join(blockChunksDir, e.Name()), SizeBytes: fi.Size()})
		segments = append(segments, e.Name())
	}
	fi, err := os.Stat(filepath.Join(bdir, blockIndexFile))
	if err != nil {
		return nil, nil, err
	}
	files = append(files, thanosFile{RelPath: blockIndexFile, SizeBytes: fi.Size()}, thanosFile{RelPath: blockMetaFile})
	slices.SortFunc(files, func(a, b thanosFile) int {
		switch {
		case a.RelPath < b.RelPath:
			return -1
		case a.RelPath > b.RelPath:
			return 1
		}
		return 0
	})
	return files, segments, nil
}
