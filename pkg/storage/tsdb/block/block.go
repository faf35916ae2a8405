// Package block holds the object storage layout of TSDB blocks as Thanos
// and Cortex write it: <tenant>/<ULID>/{chunks/000001,index,meta.json},
// meta.json with Thanos' "thanos" section, and deletion marks both beside
// the block and in the tenant's global markers/ directory.
//
// It is written here rather than imported from Thanos' pkg/block because
// that package does not compile against this module's Prometheus (it
// imports tsdb/errors, which Prometheus v0.316.0 removed).
package block

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"
)

const (
	MetaFilename         = "meta.json"
	IndexFilename        = "index"
	ChunksDirname        = "chunks"
	DeletionMarkFilename = "deletion-mark.json"
	// NoCompactMarkFilename is Thanos' mark of a block the compactor
	// must leave alone.
	NoCompactMarkFilename = "no-compact-mark.json"
	// MarkersDirname is the tenant's directory of global marker copies,
	// which let readers find every deletion mark with one listing instead
	// of one request per block.
	MarkersDirname = "markers"

	ThanosVersion1       = 1
	DeletionMarkVersion1 = 1

	// TenantIDExternalLabel is the external label Cortex gives every block
	// of a tenant.
	TenantIDExternalLabel = "__org_id__"

	// SourceReceive and SourceCompactor are Thanos' meta.json "source"
	// values for blocks shipped by ingesters and written by the compactor.
	SourceReceive   = "receive"
	SourceCompactor = "compactor"
)

// Meta is a block's meta.json: Prometheus' fields and the "thanos" section.
type Meta struct {
	tsdb.BlockMeta
	Thanos ThanosMeta `json:"thanos"`
}

// ThanosMeta is meta.json's "thanos" section in Thanos' field names.
type ThanosMeta struct {
	Version      int               `json:"version,omitempty"`
	Labels       map[string]string `json:"labels"`
	Downsample   Downsample        `json:"downsample"`
	Source       string            `json:"source"`
	SegmentFiles []string          `json:"segment_files,omitempty"`
	Files        []File            `json:"files,omitempty"`
	UploadTime   time.Time         `json:"upload_time,omitzero"`
	// Extensions is what Thanos leaves to the program writing the block;
	// Cortex's partitioning compactor writes its partition_info and
	// time_range there.
	Extensions json.RawMessage `json:"extensions,omitempty"`
}

// Downsample is the block's resolution in milliseconds (0: raw samples).
type Downsample struct {
	Resolution int64 `json:"resolution"`
}

// File is one of the block's files with its size.
type File struct {
	RelPath   string `json:"rel_path"`
	SizeBytes int64  `json:"size_bytes,omitempty"`
}

// DeletionMark is Thanos' deletion-mark.json.
type DeletionMark struct {
	ID           ulid.ULID `json:"id"`
	Version      int       `json:"version"`
	Details      string    `json:"details,omitempty"`
	DeletionTime int64     `json:"deletion_time"` // unix seconds
}

var (
	// ErrMetaNotFound is a block directory without meta.json: a block
	// being uploaded, or one whose upload or deletion stopped half way.
	ErrMetaNotFound = errors.New("block meta.json not found")
	// ErrMetaCorrupted is a meta.json that does not parse or names
	// another block.
	ErrMetaCorrupted = errors.New("block meta.json corrupted")
	// ErrDeletionMarkNotFound is a block without a deletion mark.
	ErrDeletionMarkNotFound = errors.New("block deletion mark not found")
)

// MetaPath, DeletionMarkPath and GlobalDeletionMarkPath are the objects'
// names relative to the tenant's directory.
func MetaPath(id ulid.ULID) string               { return path.Join(id.String(), MetaFilename) }
func DeletionMarkPath(id ulid.ULID) string       { return path.Join(id.String(), DeletionMarkFilename) }
func GlobalDeletionMarkPath(id ulid.ULID) string { return GlobalMarkPath(id, DeletionMarkFilename) }

// GlobalMarkPath returns the global copy's name (relative to the tenant)
// of block id's marker file markFilename (DeletionMarkFilename or
// NoCompactMarkFilename).
func GlobalMarkPath(id ulid.ULID, markFilename string) string {
	return path.Join(MarkersDirname, id.String()+"-"+markFilename)
}

// IsGlobalDeletionMarkPath returns the block ID of a markers/ object name
// (full or base name) that is a deletion mark.
func IsGlobalDeletionMarkPath(name string) (ulid.ULID, bool) {
	base := path.Base(name)
	idStr, ok := strings.CutSuffix(base, "-"+DeletionMarkFilename)
	if !ok {
		return ulid.ULID{}, false
	}
	id, err := ulid.Parse(idStr)
	return id, err == nil
}

// IsGlobalNoCompactMarkPath returns the block ID of a markers/ object name
// (full or base name) that is a no-compact mark.
func IsGlobalNoCompactMarkPath(name string) (ulid.ULID, bool) {
	idStr, ok := strings.CutSuffix(path.Base(name), "-"+NoCompactMarkFilename)
	if !ok {
		return ulid.ULID{}, false
	}
	id, err := ulid.Parse(idStr)
	return id, err == nil
}

// IsBlockDir returns the block ID of a listed directory name such as
// "01H.../".
func IsBlockDir(name string) (ulid.ULID, bool) {
	id, err := ulid.Parse(path.Base(name))
	return id, err == nil
}

// ReadMeta reads the meta.json of block id from a tenant's bucket.
func ReadMeta(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (*Meta, error) {
	r, err := bkt.Get(ctx, MetaPath(id))
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("block %s: %w", id, ErrMetaNotFound)
		}
		return nil, fmt.Errorf("reading meta.json of block %s: %w", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading meta.json of block %s: %w", id, err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("block %s: %w: %v", id, ErrMetaCorrupted, err)
	}
	if m.ULID != id {
		return nil, fmt.Errorf("block %s: %w: it names block %s", id, ErrMetaCorrupted, m.ULID)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("block %s: %w: unknown meta.json version %d", id, ErrMetaCorrupted, m.Version)
	}
	return &m, nil
}

// ReadMetaFile reads a block's meta.json from a local block directory.
func ReadMetaFile(dir string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetaFilename))
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, MetaFilename), err)
	}
	return &m, nil
}

// ReadDeletionMark reads a deletion mark object (either location).
func ReadDeletionMark(ctx context.Context, bkt objstore.BucketReader, name string) (*DeletionMark, error) {
	r, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("%s: %w", name, ErrDeletionMarkNotFound)
		}
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer r.Close()
	var m DeletionMark
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", name, err)
	}
	return &m, nil
}

// MarkForDeletion writes the block's deletion mark in the tenant's
// markers/ and beside the block, as Cortex does, so that both the bucket
// index and the block's own readers see it. A block already marked keeps
// its first mark: the deletion delay runs from when it was first marked.
func MarkForDeletion(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, details string, now time.Time) (marked bool, _ error) {
	// A mark in either place is the block's first: its copy is completed
	// (a crash may have come between the two uploads, or a Thanos tool
	// wrote only the one beside the block) and it keeps its time.
	for _, have := range [][2]string{
		{GlobalDeletionMarkPath(id), DeletionMarkPath(id)},
		{DeletionMarkPath(id), GlobalDeletionMarkPath(id)},
	} {
		m, err := ReadDeletionMark(ctx, bkt, have[0])
		if errors.Is(err, ErrDeletionMarkNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("block %s: %w", id, err)
		}
		exists, err := bkt.Exists(ctx, have[1])
		if err != nil {
			return false, fmt.Errorf("checking %s of block %s: %w", have[1], id, err)
		}
		if !exists {
			if err := uploadJSON(ctx, bkt, have[1], m); err != nil {
				return false, fmt.Errorf("completing the deletion mark of block %s: %w", id, err)
			}
		}
		return false, nil
	}
	m := DeletionMark{ID: id, Version: DeletionMarkVersion1, Details: details, DeletionTime: now.Unix()}
	// The global copy goes first, as Cortex writes it: the bucket index
	// reads only the global copies of known blocks, so a failure between
	// the two uploads still leaves the block marked there.
	if err := uploadJSON(ctx, bkt, GlobalDeletionMarkPath(id), &m); err != nil {
		return false, fmt.Errorf("marking block %s for deletion: %w", id, err)
	}
	if err := uploadJSON(ctx, bkt, DeletionMarkPath(id), &m); err != nil {
		return false, fmt.Errorf("writing the deletion mark beside block %s: %w", id, err)
	}
	return true, nil
}

func uploadJSON(ctx context.Context, bkt objstore.Bucket, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return bkt.Upload(ctx, name, bytes.NewReader(b))
}

// Delete removes a block from a tenant's bucket as Thanos does: meta.json
// first, so that readers see a partial block rather than a block with
// missing files, then every other file, then the deletion mark, and
// finally its global copy. A deletion that stops half way leaves a
// partial block with its deletion mark, which the next cleanup finishes.
func Delete(ctx context.Context, bkt objstore.Bucket, id ulid.ULID) error {
	if err := deleteIfExists(ctx, bkt, MetaPath(id)); err != nil {
		return fmt.Errorf("deleting meta.json of block %s: %w", id, err)
	}
	var names []string
	err := bkt.Iter(ctx, id.String(), func(name string) error {
		if name != DeletionMarkPath(id) {
			names = append(names, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("listing block %s: %w", id, err)
	}
	for _, name := range names {
		if err := deleteIfExists(ctx, bkt, name); err != nil {
			return fmt.Errorf("deleting %s of block %s: %w", name, id, err)
		}
	}
	if err := deleteIfExists(ctx, bkt, DeletionMarkPath(id)); err != nil {
		return fmt.Errorf("deleting the deletion mark of block %s: %w", id, err)
	}
	if err := deleteIfExists(ctx, bkt, GlobalDeletionMarkPath(id)); err != nil {
		return fmt.Errorf("deleting the global deletion mark of block %s: %w", id, err)
	}
	return nil
}

func deleteIfExists(ctx context.Context, bkt objstore.Bucket, name string) error {
	if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
		return err
	}
	return nil
}

// LocalFiles lists a local block's files with their sizes, sorted by path,
// and its chunk segment names, as Thanos' meta.json carries them.
func LocalFiles(dir string) (files []File, segments []string, _ error) {
	entries, err := os.ReadDir(filepath.Join(dir, ChunksDirname))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, ChunksDirname), err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			return nil, nil, err
		}
		files = append(files, File{RelPath: path.Join(ChunksDirname, e.Name()), SizeBytes: fi.Size()})
		segments = append(segments, e.Name())
	}
	fi, err := os.Stat(filepath.Join(dir, IndexFilename))
	if err != nil {
		return nil, nil, err
	}
	files = append(files, File{RelPath: IndexFilename, SizeBytes: fi.Size()}, File{RelPath: MetaFilename})
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.RelPath, b.RelPath) })
	return files, segments, nil
}

// Upload writes a local block to a tenant's bucket with the given Thanos
// section: chunks, index, then meta.json, so that a reader never sees a
// block without all its files.
func Upload(ctx context.Context, bkt objstore.Bucket, dir string, thanos ThanosMeta) error {
	return UploadConcurrently(ctx, bkt, dir, thanos, 1)
}

// UploadConcurrently is Upload with up to concurrency chunk segments and
// the index uploading at once; meta.json still goes last.
func UploadConcurrently(ctx context.Context, bkt objstore.Bucket, dir string, thanos ThanosMeta, concurrency int) error {
	m, err := ReadMetaFile(dir)
	if err != nil {
		return err
	}
	id := m.ULID.String()
	files, segments, err := LocalFiles(dir)
	if err != nil {
		return err
	}
	chunkDir := filepath.Join(dir, ChunksDirname)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, concurrency))
	for _, seg := range segments {
		g.Go(func() error {
			if err := uploadLocal(gctx, bkt, filepath.Join(chunkDir, seg), path.Join(id, ChunksDirname, seg)); err != nil {
				return fmt.Errorf("uploading chunks of block %s: %w", id, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := uploadLocal(gctx, bkt, filepath.Join(dir, IndexFilename), path.Join(id, IndexFilename)); err != nil {
			return fmt.Errorf("uploading the index of block %s: %w", id, err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	thanos.Version = ThanosVersion1
	thanos.SegmentFiles = segments
	thanos.Files = files
	thanos.UploadTime = time.Now().UTC()
	m.Thanos = thanos
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("encoding meta.json of block %s: %w", id, err)
	}
	if err := bkt.Upload(ctx, path.Join(id, MetaFilename), &buf); err != nil {
		return fmt.Errorf("uploading meta.json of block %s: %w", id, err)
	}
	return nil
}

func uploadLocal(ctx context.Context, bkt objstore.Bucket, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return bkt.Upload(ctx, dst, f)
}

// Download copies a block's chunks, index and meta.json into dir.
func Download(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID, dir string) error {
	return DownloadConcurrently(ctx, bkt, id, dir, 1)
}

// DownloadConcurrently is Download with up to concurrency files
// downloading at once.
func DownloadConcurrently(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID, dir string, concurrency int) error {
	if err := os.MkdirAll(filepath.Join(dir, ChunksDirname), 0o750); err != nil {
		return err
	}
	var names []string
	err := bkt.Iter(ctx, path.Join(id.String(), ChunksDirname), func(name string) error {
		names = append(names, name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing chunks of block %s: %w", id, err)
	}
	names = append(names, path.Join(id.String(), IndexFilename), MetaPath(id))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, concurrency))
	for _, name := range names {
		g.Go(func() error {
			rel := strings.TrimPrefix(name, id.String()+"/")
			if err := downloadFile(gctx, bkt, name, filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
				return fmt.Errorf("downloading %s of block %s: %w", rel, id, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func downloadFile(ctx context.Context, bkt objstore.BucketReader, src, dst string) error {
	r, err := bkt.Get(ctx, src)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
