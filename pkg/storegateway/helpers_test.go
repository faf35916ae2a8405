package storegateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// genSeries is a series of n float samples every step ms from start, with
// value val(t): blocks of many series are written without holding their
// samples in memory.
type genSeries struct {
	lset        labels.Labels
	start, step int64
	n           int
	val         func(t int64) float64
}

func (s genSeries) Labels() labels.Labels { return s.lset }
func (s genSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return &genIterator{s: s, i: -1}
}

type genIterator struct {
	s genSeries
	i int
}

func (it *genIterator) Next() chunkenc.ValueType {
	if it.i+1 >= it.s.n {
		it.i = it.s.n
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloat
}

func (it *genIterator) Seek(t millis) chunkenc.ValueType {
	for it.i < 0 || (it.i < it.s.n && it.AtT() < t) {
		if it.Next() == chunkenc.ValNone {
			return chunkenc.ValNone
		}
	}
	if it.i >= it.s.n {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

func (it *genIterator) At() (int64, float64) { t := it.AtT(); return t, it.s.val(t) }
func (it *genIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.AtT(), nil
}

func (it *genIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.AtT(), nil
}
func (it *genIterator) AtT() int64  { return it.s.start + int64(it.i)*it.s.step }
func (it *genIterator) AtST() int64 { return 0 }
func (it *genIterator) Err() error  { return nil }

// writeBlock writes series into a new TSDB block and returns its folder.
func writeBlock(t testing.TB, series []storage.Series) string {
	t.Helper()
	// A head range far wider than the samples lets series be appended one
	// after the other whatever their span.
	dir, err := tsdb.CreateBlock(series, t.TempDir(), 1000*time.Hour.Milliseconds(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("creating block: %v", err)
	}
	return dir
}

func blockID(t testing.TB, dir string) ulid.ULID {
	t.Helper()
	id, err := ulid.ParseStrict(filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// uploadBlock uploads a block as the ingesters' shipper does: chunks and
// index first, then meta.json with a "thanos" section listing the files,
// unless withMeta is false (an upload cut short).
func uploadBlock(t testing.TB, bkt objstore.Bucket, tenant, dir string, withMeta bool) ulid.ULID {
	t.Helper()
	edit := func(map[string]any) {}
	if !withMeta {
		edit = nil
	}
	return uploadBlockEdit(t, bkt, tenant, dir, edit)
}

// uploadBlockEdit uploads a block whose meta.json, with its "thanos"
// section, edit changes first; a nil edit uploads no meta.json.
func uploadBlockEdit(t testing.TB, bkt objstore.Bucket, tenant, dir string, edit func(meta map[string]any)) ulid.ULID {
	t.Helper()
	ctx := context.Background()
	id := blockID(t, dir)
	dst := path.Join(tenant, id.String())
	if err := objstore.UploadDir(ctx, log.NewNopLogger(), bkt, filepath.Join(dir, chunksDirname), path.Join(dst, chunksDirname)); err != nil {
		t.Fatal(err)
	}
	if err := objstore.UploadFile(ctx, log.NewNopLogger(), bkt, filepath.Join(dir, indexFilename), path.Join(dst, indexFilename)); err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return id
	}
	var meta map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, metaFilename))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	var files []map[string]any
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(p) == metaFilename {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files = append(files, map[string]any{"rel_path": filepath.ToSlash(rel), "size_bytes": st.Size()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	meta["thanos"] = map[string]any{"version": 1, "labels": map[string]string{"__org_id__": tenant}, "source": "receive", "files": files}
	edit(meta)
	raw, err = json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(ctx, path.Join(dst, metaFilename), bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	return id
}

func markForDeletion(t testing.TB, bkt objstore.Bucket, tenant string, id ulid.ULID, at time.Time) {
	t.Helper()
	raw, err := json.Marshal(deletionMark{ID: id, DeletionTime: at.Unix(), Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(context.Background(), path.Join(tenant, id.String(), deletionMarkFilename), bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
}

// countingBucket counts range and whole-object reads.
// countingBucket counts range and whole-object reads, and fails the reads
// of the objects whose name contains failing.
type countingBucket struct {
	objstore.Bucket
	ranges  atomic.Int64
	gets    atomic.Int64
	failing atomic.Pointer[string]
}

var errInjected = errors.New("injected failure")

func (b *countingBucket) fail(name string) error {
	if f := b.failing.Load(); f != nil && strings.Contains(name, *f) {
		return errInjected
	}
	return nil
}

func (b *countingBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	b.ranges.Add(1)
	if err := b.fail(name); err != nil {
		return nil, err
	}
	return b.Bucket.GetRange(ctx, name, off, length)
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.gets.Add(1)
	if err := b.fail(name); err != nil {
		return nil, err
	}
	return b.Bucket.Get(ctx, name)
}

func newBucket(t testing.TB) *countingBucket {
	t.Helper()
	fs, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &countingBucket{Bucket: fs}
}

func testConfig(t testing.TB) Config {
	return Config{
		SyncDir:                filepath.Join(t.TempDir(), "tsdb-sync"),
		MetaSyncConcurrency:    4,
		BlockSyncConcurrency:   4,
		TenantSyncConcurrency:  2,
		BlockDiscoveryStrategy: DiscoveryConcurrent,
		MaxConcurrent:          10,
		SeriesBatchSize:        10000,
		TokenBucketBytesLimiter: TokenBucketBytesLimiterConfig{
			Mode: TokenBucketDisabled,
		},
	}
}

func newStore(t testing.TB, cfg Config, bkt objstore.BucketReader) (*BucketStore, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	s, err := NewBucketStore(cfg, bkt, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, reg
}

func syncStore(t testing.TB, s *BucketStore) {
	t.Helper()
	if err := s.SyncBlocks(context.Background()); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

type sample struct {
	T int64
	V float64
}

// selectAll runs a Select and returns each series' samples by its labels,
// in the order returned, failing the test if series are not sorted.
func selectAll(t testing.TB, q storage.Querier, hints *storage.SelectHints, ms ...*labels.Matcher) ([]string, map[string][]sample) {
	t.Helper()
	ss := q.Select(context.Background(), true, hints, ms...)
	var names []string
	out := map[string][]sample{}
	var prev labels.Labels
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		if len(names) > 0 && labels.Compare(prev, s.Labels()) >= 0 {
			t.Fatalf("series out of order: %s after %s", s.Labels(), prev)
		}
		prev = s.Labels()
		names = append(names, s.Labels().String())
		it = s.Iterator(it)
		var got []sample
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			got = append(got, sample{ts, v})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[s.Labels().String()] = got
	}
	if err := ss.Err(); err != nil {
		t.Fatalf("select: %v", err)
	}
	return names, out
}

func querier(t testing.TB, s *BucketStore, tenant string, mint, maxt int64) storage.Querier {
	t.Helper()
	q, err := s.Querier(tenant, mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func expected(s genSeries, mint, maxt int64) []sample {
	var out []sample
	for i := range s.n {
		ts := s.start + int64(i)*s.step
		if ts >= mint && ts <= maxt {
			out = append(out, sample{ts, s.val(ts)})
		}
	}
	return out
}
