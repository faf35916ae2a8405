package ingester

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// testBucket is a filesystem bucket whose uploads fail while down is set,
// as object storage that is unreachable, and which counts the uploads it
// accepted.
type testBucket struct {
	objstore.Bucket
	root    string
	down    atomic.Bool
	uploads atomic.Int64
}

func newTestBucket(t *testing.T, root string) *testBucket {
	t.Helper()
	fs, err := filesystem.NewBucket(root)
	if err != nil {
		t.Fatal(err)
	}
	return &testBucket{Bucket: fs, root: root}
}

func (b *testBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if b.down.Load() {
		return errors.New("object storage unreachable (test)")
	}
	b.uploads.Add(1)
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// shipConfig cuts 1m blocks and ships them as soon as they are cut.
func shipConfig(t *testing.T, dir string) Config {
	cfg := testConfig(t, dir, newKV(t))
	cfg.TSDB.BlockRanges = DurationList{time.Minute}
	cfg.TSDB.HeadCompactionInterval = 50 * time.Millisecond
	cfg.TSDB.ShipInterval = 50 * time.Millisecond
	return cfg
}

// sampleKey is one sample of one series.
type sampleKey struct {
	series string
	ts     int64
}

// pushRange pushes one sample every step in [from, to] to two series of
// tenant and returns the samples as bucketSamples keys them.
func pushRange(h *harness, tenant string, from, to, step int64) map[sampleKey]int {
	want := map[sampleKey]int{}
	// One request: the head accepts only about half a block range behind
	// its newest sample, and one request is appended as one.
	var req []prompb.TimeSeries
	for _, s := range []string{"1", "2"} {
		ts := prompb.TimeSeries{Labels: series("m", "s", s)}
		for t := from; t <= to; t += step {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t, Value: float64(t)})
			want[sampleKey{labels.FromStrings("__name__", "m", "s", s).String(), t}] = 1
		}
		req = append(req, ts)
	}
	h.mustPush(tenant, req...)
	return want
}

func samplesBefore(all map[sampleKey]int, before int64) map[sampleKey]int {
	out := map[sampleKey]int{}
	for k, v := range all {
		if k.ts < before {
			out[k] = v
		}
	}
	return out
}

// bucketSamples opens every block of tenant in the filesystem bucket with
// Prometheus' TSDB and counts each sample it holds.
func bucketSamples(t *testing.T, root, tenant string) map[sampleKey]int {
	t.Helper()
	got := map[sampleKey]int{}
	for _, id := range bucketBlocks(t, root, tenant) {
		b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), filepath.Join(root, tenant, id), nil, nil)
		if err != nil {
			t.Fatalf("opening uploaded block %s: %v", id, err)
		}
		q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		for ss.Next() {
			s := ss.At()
			it := s.Iterator(nil)
			for it.Next() != chunkenc.ValNone {
				ts, _ := it.At()
				got[sampleKey{s.Labels().String(), ts}]++
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := ss.Err(); err != nil {
			t.Fatal(err)
		}
		_ = q.Close()
		_ = b.Close()
	}
	return got
}

// bucketBlocks lists the tenant's blocks in the bucket that readers see:
// those with a meta.json.
func bucketBlocks(t *testing.T, root, tenant string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, tenant))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, tenant, e.Name(), "meta.json")); err == nil {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	return ids
}

// shippedRecord reads the tenant's thanos.shipper.json.
func readShipped(t *testing.T, dir, tenant string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, tenant, "thanos.shipper.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Version  int      `json:"version"`
		Uploaded []string `json:"uploaded"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("thanos.shipper.json: %v", err)
	}
	if rec.Version != 1 {
		t.Errorf("thanos.shipper.json version %d, want 1", rec.Version)
	}
	slices.Sort(rec.Uploaded)
	return rec.Uploaded
}

func localBlocks(u *userTSDB) []string {
	var ids []string
	for _, b := range u.db.Blocks() {
		ids = append(ids, b.Meta().ULID.String())
	}
	slices.Sort(ids)
	return ids
}

func sameCounts(t *testing.T, what string, got, want map[sampleKey]int) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d distinct samples, want %d", what, len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: sample %s@%d found %d times, want %d", what, k.series, k.ts, got[k], n)
			return
		}
	}
}

func TestShipsBlocksToBucket(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	cfg := shipConfig(t, dir)
	limits := newTestLimits(t, nil)
	bkt := newTestBucket(t, root)
	h := startHarness(t, cfg, limits, WithBucket(bkt))

	// Ten minutes in the head: compaction cuts 1m blocks until it spans
	// at most 1.5 block ranges, leaving [base-1m, base] in memory.
	start := base - 10*60*1000
	pushed := pushRange(h, "tenant-a", start, base, 15*1000)
	u := h.ing.getTSDB("tenant-a")
	testkit.Eventually(t, 20*time.Second, "nine 1m blocks cut and shipped", func() bool {
		return len(localBlocks(u)) == 9 && slices.Equal(readShipped(t, dir, "tenant-a"), localBlocks(u))
	})

	ids := localBlocks(u)
	if got := bucketBlocks(t, root, "tenant-a"); !slices.Equal(got, ids) {
		t.Fatalf("blocks in the bucket %v, want the local ones %v", got, ids)
	}
	for _, id := range ids {
		bdir := filepath.Join(root, "tenant-a", id)
		for _, f := range []string{"index", "chunks/000001", "meta.json"} {
			if _, err := os.Stat(filepath.Join(bdir, f)); err != nil {
				t.Errorf("block %s in the bucket: %v", id, err)
			}
		}
		b, err := os.ReadFile(filepath.Join(bdir, "meta.json"))
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			ULID    string `json:"ulid"`
			MinTime int64  `json:"minTime"`
			MaxTime int64  `json:"maxTime"`
			Version int    `json:"version"`
			Thanos  struct {
				Version    int               `json:"version"`
				Labels     map[string]string `json:"labels"`
				Source     string            `json:"source"`
				Downsample *struct {
					Resolution int64 `json:"resolution"`
				} `json:"downsample"`
				Files []struct {
					RelPath   string `json:"rel_path"`
					SizeBytes int64  `json:"size_bytes"`
				} `json:"files"`
			} `json:"thanos"`
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			t.Fatalf("meta.json of %s: %v", id, err)
		}
		th := meta.Thanos
		if meta.ULID != id || meta.Version != 1 || meta.MaxTime-meta.MinTime != 60*1000 {
			t.Errorf("meta.json of %s: ulid %s version %d range [%d, %d)", id, meta.ULID, meta.Version, meta.MinTime, meta.MaxTime)
		}
		if len(th.Labels) != 1 || th.Labels["__org_id__"] != "tenant-a" || th.Source != "receive" || th.Version != 1 || th.Downsample == nil {
			t.Errorf("meta.json of %s: thanos section %s", id, b)
		}
		var files []string
		for _, f := range th.Files {
			files = append(files, f.RelPath)
			if f.RelPath != "meta.json" && f.SizeBytes <= 0 {
				t.Errorf("meta.json of %s: %s without its size", id, f.RelPath)
			}
		}
		if !slices.Equal(files, []string{"chunks/000001", "index", "meta.json"}) {
			t.Errorf("meta.json of %s lists files %v", id, files)
		}
	}
	sameCounts(t, "samples in the bucket", bucketSamples(t, root, "tenant-a"), samplesBefore(pushed, base-60*1000))

	if v := testutil.ToFloat64(h.ing.metrics.shipperUploads); v != 9 {
		t.Errorf("cortex_ingester_shipper_uploads_total = %v, want 9", v)
	}
	if v := testutil.ToFloat64(h.ing.metrics.shipperUploadFailures) + testutil.ToFloat64(h.ing.metrics.shipperDirSyncFailures); v != 0 {
		t.Errorf("shipper failures counted: %v", v)
	}
	for _, name := range []string{"cortex_ingester_shipper_dir_syncs_total", "cortex_ingester_shipper_dir_sync_failures_total", "cortex_ingester_shipper_uploads_total", "cortex_ingester_shipper_upload_failures_total"} {
		if n, err := testutil.GatherAndCount(h.reg, name); err != nil || n != 1 {
			t.Errorf("%s: %d series exported (%v), want 1", name, n, err)
		}
	}

	// A restart on the same directory uploads nothing again: the record
	// says what is shipped.
	h.stop()
	uploads := bkt.uploads.Load()
	h2 := startHarness(t, cfg, limits, WithBucket(bkt))
	testkit.Eventually(t, 10*time.Second, "a ship cycle after the restart", func() bool {
		return testutil.ToFloat64(h2.ing.metrics.shipperDirSyncs) >= 2
	})
	if n := bkt.uploads.Load() - uploads; n != 0 {
		t.Errorf("%d objects uploaded again after a restart", n)
	}
	// Without the record, the blocks are found in the bucket and recorded
	// again, still without uploading them.
	if err := os.Remove(filepath.Join(dir, "tenant-a", "thanos.shipper.json")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the record rewritten from the bucket", func() bool {
		return slices.Equal(readShipped(t, dir, "tenant-a"), ids)
	})
	if n := bkt.uploads.Load() - uploads; n != 0 {
		t.Errorf("%d objects uploaded again after the record was lost", n)
	}
}

func TestRetentionKeepsUnshippedBlocks(t *testing.T) {
	// Driven by hand: no tick of compaction or shipping during the test.
	cfgFor := func(t *testing.T) Config {
		cfg := shipConfig(t, t.TempDir())
		cfg.TSDB.HeadCompactionInterval = 15 * time.Minute
		cfg.TSDB.ShipInterval = time.Hour
		cfg.TSDB.Retention = time.Minute
		return cfg
	}
	ctx := context.Background()

	t.Run("without a bucket, retention deletes", func(t *testing.T) {
		h := startHarness(t, cfgFor(t), newTestLimits(t, nil))
		pushRange(h, "t", base-30*60*1000, base-20*60*1000, 15*1000)
		h.ing.compactHeads(ctx)
		if n := len(localBlocks(h.ing.getTSDB("t"))); n >= 9 {
			t.Errorf("%d blocks kept past a 1m retention", n)
		}
	})

	t.Run("with a bucket, unshipped blocks stay", func(t *testing.T) {
		cfg := cfgFor(t)
		root := t.TempDir()
		bkt := newTestBucket(t, root)
		bkt.down.Store(true)
		h := startHarness(t, cfg, newTestLimits(t, nil), WithBucket(bkt))
		u := func() *userTSDB { return h.ing.getTSDB("t") }

		pushRange(h, "t", base-30*60*1000, base-20*60*1000, 15*1000)
		h.ing.compactHeads(ctx)
		old := localBlocks(u())
		if len(old) != 9 {
			t.Fatalf("%d blocks cut, want 9", len(old))
		}
		if err := h.ing.shipBlocks(ctx, nil); err == nil {
			t.Fatal("shipping to an unreachable bucket succeeded")
		}
		if v := testutil.ToFloat64(h.ing.metrics.shipperUploadFailures); v != 9 {
			t.Errorf("cortex_ingester_shipper_upload_failures_total = %v, want 9", v)
		}
		// More blocks are cut, and their reload applies retention: the
		// old blocks are past it, but not shipped.
		pushRange(h, "t", base-15*60*1000, base-10*60*1000, 15*1000)
		h.ing.compactHeads(ctx)
		if got := localBlocks(u()); len(got) <= len(old) || !isSubset(old, got) {
			t.Fatalf("blocks %v after retention, want the unshipped %v kept", got, old)
		}
		for _, id := range old {
			if _, err := os.Stat(filepath.Join(cfg.TSDB.Dir, "t", id, "meta.json")); err != nil {
				t.Errorf("unshipped block deleted: %v", err)
			}
		}

		// Once shipped, the next reload deletes them.
		bkt.down.Store(false)
		if err := h.ing.shipBlocks(ctx, nil); err != nil {
			t.Fatal(err)
		}
		shipped := localBlocks(u())
		if got := bucketBlocks(t, root, "t"); !slices.Equal(got, shipped) {
			t.Fatalf("bucket holds %v, want %v", got, shipped)
		}
		pushRange(h, "t", base-5*60*1000, base, 15*1000)
		h.ing.compactHeads(ctx)
		left := localBlocks(u())
		for _, id := range shipped {
			if slices.Contains(left, id) {
				t.Errorf("shipped block %s past retention kept", id)
			}
		}
		if len(left) == 0 {
			t.Error("the blocks cut last, not shipped yet, were deleted")
		}
	})
}

func isSubset(small, big []string) bool {
	for _, s := range small {
		if !slices.Contains(big, s) {
			return false
		}
	}
	return true
}

func TestShippingSurvivesBucketOutage(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	cfg := shipConfig(t, dir)
	bkt := newTestBucket(t, root)
	bkt.down.Store(true)
	h := startHarness(t, cfg, newTestLimits(t, nil), WithBucket(bkt))

	// Writes are accepted while the bucket is down: the WAL and local
	// blocks hold them.
	pushed := map[sampleKey]int{}
	for from := base - 12*60*1000; from < base; from += 4 * 60 * 1000 {
		for k, v := range pushRange(h, "tenant-b", from, from+4*60*1000-10*1000, 10*1000) {
			pushed[k] = v
		}
	}
	u := h.ing.getTSDB("tenant-b")
	testkit.Eventually(t, 20*time.Second, "blocks cut and their uploads failing", func() bool {
		return len(localBlocks(u)) >= 10 && testutil.ToFloat64(h.ing.metrics.shipperUploadFailures) >= 10
	})
	if got := bucketBlocks(t, root, "tenant-b"); len(got) != 0 {
		t.Fatalf("blocks %v in an unreachable bucket", got)
	}
	if got := readShipped(t, dir, "tenant-b"); len(got) != 0 {
		t.Fatalf("blocks %v recorded as shipped while the bucket is down", got)
	}

	// Back up: the next ship interval uploads them.
	bkt.down.Store(false)
	testkit.Eventually(t, 20*time.Second, "every local block shipped", func() bool {
		ids := localBlocks(u)
		return len(ids) >= 10 && slices.Equal(readShipped(t, dir, "tenant-b"), ids)
	})

	// Flushing ships what the head still holds: then every pushed sample
	// is in the bucket, once.
	srv := httptest.NewServer(h.ing.FlushHandler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/ingester/flush", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /ingester/flush: %s", resp.Status)
	}
	sameCounts(t, "samples in the bucket", bucketSamples(t, root, "tenant-b"), pushed)
}

func TestFlushHandler(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	cfg := testConfig(t, dir, newKV(t))
	cfg.TSDB.ShipInterval = time.Hour
	bkt := newTestBucket(t, root)
	h := startHarness(t, cfg, newTestLimits(t, nil), WithBucket(bkt))
	a := pushRange(h, "a", base-10*60*1000, base, 60*1000)
	b := pushRange(h, "b", base-10*60*1000, base, 60*1000)

	srv := httptest.NewServer(h.ing.FlushHandler())
	defer srv.Close()
	post := func(query string) int {
		t.Helper()
		resp, err := http.Post(srv.URL+"/ingester/flush"+query, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	resp, err := http.Get(srv.URL + "/ingester/flush")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /ingester/flush: %s", resp.Status)
	}

	// One tenant by name: the other's head stays.
	if code := post("?tenant=a"); code != http.StatusNoContent {
		t.Fatalf("POST /ingester/flush?tenant=a: %d", code)
	}
	sameCounts(t, "tenant a in the bucket", bucketSamples(t, root, "a"), a)
	if got := bucketBlocks(t, root, "b"); len(got) != 0 || h.ing.getTSDB("b").db.Head().NumSeries() != 2 {
		t.Errorf("tenant b flushed with tenant a: blocks %v", got)
	}
	if n := h.ing.getTSDB("a").db.Head().NumSeries(); n != 0 {
		t.Errorf("%d series left in tenant a's head", n)
	}

	if code := post(""); code != http.StatusNoContent {
		t.Fatalf("POST /ingester/flush: %d", code)
	}
	sameCounts(t, "tenant b in the bucket", bucketSamples(t, root, "b"), b)
	// Tenant a had nothing more: nothing was uploaded twice.
	sameCounts(t, "tenant a in the bucket", bucketSamples(t, root, "a"), a)

	h.stop()
	if code := post(""); code != http.StatusServiceUnavailable {
		t.Errorf("POST /ingester/flush on a stopped ingester: %d", code)
	}
}

func TestFlushBlocksOnShutdown(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	cfg := testConfig(t, dir, newKV(t))
	cfg.TSDB.FlushBlocksOnShutdown = true
	bkt := newTestBucket(t, root)
	h := startHarness(t, cfg, newTestLimits(t, nil), WithBucket(bkt))
	pushed := pushRange(h, "tenant-c", base-30*60*1000, base, 30*1000)
	if got := bucketBlocks(t, root, "tenant-c"); len(got) != 0 {
		t.Fatalf("blocks %v shipped before shutdown", got)
	}
	h.stop()
	sameCounts(t, "samples in the bucket after shutdown", bucketSamples(t, root, "tenant-c"), pushed)
	if got := bucketBlocks(t, root, "tenant-c"); !slices.Equal(readShipped(t, dir, "tenant-c"), got) {
		t.Errorf("record %v, bucket %v", readShipped(t, dir, "tenant-c"), got)
	}
}

func TestFlushOnShutdownWithBucketDown(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	cfg := testConfig(t, dir, newKV(t))
	cfg.TSDB.FlushBlocksOnShutdown = true
	bkt := newTestBucket(t, root)
	limits := newTestLimits(t, nil)
	h := startHarness(t, cfg, limits, WithBucket(bkt))
	pushed := pushRange(h, "tenant-d", base-30*60*1000, base, 30*1000)
	bkt.down.Store(true)
	h.stop()
	if got := bucketBlocks(t, root, "tenant-d"); len(got) != 0 {
		t.Fatalf("blocks %v in an unreachable bucket", got)
	}

	// The blocks cut at shutdown stay on disk and go at the next start.
	bkt.down.Store(false)
	h2 := startHarness(t, cfg, limits, WithBucket(bkt))
	testkit.Eventually(t, 10*time.Second, "the blocks cut at shutdown shipped", func() bool {
		return testutil.ToFloat64(h2.ing.metrics.shipperDirSyncs) >= 1
	})
	sameCounts(t, "samples in the bucket", bucketSamples(t, root, "tenant-d"), pushed)
}

func TestShipConfigValidation(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	if cfg.TSDB.ShipInterval != time.Minute || cfg.TSDB.ShipConcurrency != 10 || cfg.TSDB.FlushBlocksOnShutdown {
		t.Errorf("defaults: ship interval %s, concurrency %d, flush on shutdown %v", cfg.TSDB.ShipInterval, cfg.TSDB.ShipConcurrency, cfg.TSDB.FlushBlocksOnShutdown)
	}
	bad := cfg
	bad.TSDB.ShipConcurrency = 0
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "-blocks-storage.tsdb.ship-concurrency") {
		t.Errorf("ship concurrency 0: %v", err)
	}
	bad.TSDB.ShipInterval = 0 // shipping off: the concurrency is unused
	if err := bad.Validate(); err != nil {
		t.Errorf("shipping disabled: %v", err)
	}
	bad.TSDB.ShipInterval = -time.Second
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "-blocks-storage.tsdb.ship-interval") {
		t.Errorf("negative ship interval: %v", err)
	}
}
