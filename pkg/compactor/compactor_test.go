package compactor

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const (
	testSeries = 10
	testStep   = int64(60_000)
)

// shipRF3 ships what three ingesters at replication factor 3 would for
// tenant: three copies of 0h-2h, then single 2h blocks up to 14h.
func shipRF3(t *testing.T, bkt objstore.Bucket, tenant string) (sources []ulid.ULID) {
	for range 3 {
		sources = append(sources, shipBlock(t, bkt, tenant, testSeries, 0, 2*hour, testStep))
	}
	for h := int64(2); h < 12; h += 2 {
		sources = append(sources, shipBlock(t, bkt, tenant, testSeries, h*hour, (h+2)*hour, testStep))
	}
	newest := shipBlock(t, bkt, tenant, testSeries, 12*hour, 14*hour, testStep)
	return append(sources, newest)
}

func newFSBucket(t *testing.T) objstore.Bucket {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bkt
}

func liveBlocks(t *testing.T, bkt objstore.Bucket, tenant string) bucketindex.Blocks {
	t.Helper()
	idx, _, err := bucketindex.NewUpdater(bkt, tenant, discard).UpdateIndex(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bs := idx.ActiveBlocks()
	slices.SortFunc(bs, func(a, b *bucketindex.Block) int { return cmpInt(a.MinTime, b.MinTime) })
	return bs
}

func blockDirs(t *testing.T, bkt objstore.Bucket, tenant string) []string {
	t.Helper()
	var dirs []string
	err := bkt.Iter(context.Background(), tenant, func(name string) error {
		if _, ok := block.IsBlockDir(name); ok {
			dirs = append(dirs, path.Base(name))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(dirs)
	return dirs
}

func TestCompactReplicasAndAdjacentBlocks(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	const tenant = "team-a"
	sources := shipRF3(t, bkt, tenant)
	// Another tenant's blocks are compacted on their own.
	otherSources := []ulid.ULID{
		shipBlock(t, bkt, "team-b", 3, 0, 2*hour, testStep),
		shipBlock(t, bkt, "team-b", 3, 0, 2*hour, testStep),
	}

	// Cortex's global markers directory is not a tenant.
	if err := bkt.Upload(ctx, bucketindex.GlobalMarkersDir+"/team-c/tenant-deletion-mark.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	// Long enough for the marks to be kept by the first cleanup however
	// slow the machine; cut short below.
	cfg.DeletionDelay = time.Hour
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, bkt, discard, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.starting(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}

	// One block per range, each sample once.
	live := liveBlocks(t, bkt, tenant)
	if len(live) != 2 || live[0].MinTime != 0 || live[0].MaxTime != 12*hour || live[1].MinTime != 12*hour || live[1].MaxTime != 14*hour {
		t.Fatalf("live blocks after one pass: %v, want 0h-12h and 12h-14h", live)
	}
	perSeries2h := int(2 * hour / testStep)
	if samples, series := sampleCount(t, bkt, tenant, live[0].ID); series != testSeries || samples != testSeries*6*perSeries2h {
		t.Fatalf("0h-12h block holds %d samples in %d series, want %d in %d", samples, series, testSeries*6*perSeries2h, testSeries)
	}
	if samples, _ := sampleCount(t, bkt, tenant, live[1].ID); samples != testSeries*perSeries2h {
		t.Fatalf("12h-14h block holds %d samples, want %d", samples, testSeries*perSeries2h)
	}

	// The compacted block's meta.json is Thanos' with the tenant's label
	// and every shipped source.
	m, err := block.ReadMeta(ctx, objstore.NewPrefixedBucket(bkt, tenant), live[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Thanos.Labels[block.TenantIDExternalLabel] != tenant || m.Thanos.Source != block.SourceCompactor ||
		m.Thanos.Version != block.ThanosVersion1 || len(m.Thanos.Files) == 0 || len(m.Thanos.SegmentFiles) == 0 {
		t.Fatalf("compacted block's thanos section: %+v", m.Thanos)
	}
	gotSources := slices.Clone(m.Compaction.Sources)
	slices.SortFunc(gotSources, ulid.ULID.Compare)
	wantSources := slices.Clone(sources[:8])
	slices.SortFunc(wantSources, ulid.ULID.Compare)
	if !slices.Equal(gotSources, wantSources) {
		t.Fatalf("compacted block's sources %v, want the 8 shipped blocks of 0h-12h %v", gotSources, wantSources)
	}
	if m.Compaction.Level < 2 || len(m.Compaction.Parents) == 0 {
		t.Fatalf("compacted block's compaction section: %+v", m.Compaction)
	}

	// The other tenant's replicas became one block of its own.
	otherLive := liveBlocks(t, bkt, "team-b")
	if len(otherLive) != 1 {
		t.Fatalf("team-b live blocks: %v", otherLive)
	}
	if samples, _ := sampleCount(t, bkt, "team-b", otherLive[0].ID); samples != 3*perSeries2h {
		t.Fatalf("team-b block holds %d samples, want %d", samples, 3*perSeries2h)
	}
	om, err := block.ReadMeta(ctx, objstore.NewPrefixedBucket(bkt, "team-b"), otherLive[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if om.Thanos.Labels[block.TenantIDExternalLabel] != "team-b" {
		t.Fatalf("team-b block labelled %v", om.Thanos.Labels)
	}

	// Sources are marked, beside the block and in markers/: team-a's 8
	// shipped blocks and the intermediate 0h-2h merge, team-b's 2.
	for _, id := range append(sources[:8], otherSources...) {
		tenantOf := tenant
		if slices.Contains(otherSources, id) {
			tenantOf = "team-b"
		}
		for _, name := range []string{block.DeletionMarkPath(id), block.GlobalDeletionMarkPath(id)} {
			if ok, err := bkt.Exists(ctx, path.Join(tenantOf, name)); err != nil || !ok {
				t.Errorf("%s/%s missing (err %v)", tenantOf, name, err)
			}
		}
	}
	if got := testkit.MetricSum(t, reg, "cortex_compactor_blocks_marked_for_deletion_total", "reason", "compaction"); got != 8+1+2 {
		t.Errorf("cortex_compactor_blocks_marked_for_deletion_total{reason=compaction} = %v, want 11", got)
	}
	for name, want := range map[string]float64{
		"cortex_compactor_runs_started_total":               1,
		"cortex_compactor_runs_completed_total":             1,
		"cortex_compactor_runs_failed_total":                0,
		"cortex_compactor_group_compactions_total":          3,
		"cortex_compactor_group_vertical_compactions_total": 2,
	} {
		if got := testkit.MetricSum(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := testkit.MetricSum(t, reg, "cortex_compactor_last_successful_run_timestamp_seconds"); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("cortex_compactor_last_successful_run_timestamp_seconds = %v", got)
	}

	// A second pass finds nothing to do.
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testkit.MetricSum(t, reg, "cortex_compactor_group_compactions_total"); got != 3 {
		t.Fatalf("a second pass compacted again: %v compactions", got)
	}

	// Cleanup keeps the marked blocks for the deletion delay, then deletes
	// them; the bucket index lists exactly the live blocks.
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	idx, err := bucketindex.ReadIndex(ctx, bkt, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Blocks) != 2+9 || len(idx.BlockDeletionMarks) != 9 {
		t.Fatalf("index before the deletion delay: %d blocks, %d marks; want 11 and 9", len(idx.Blocks), len(idx.BlockDeletionMarks))
	}
	liveIDs := []string{live[0].ID.String(), live[1].ID.String()}
	slices.Sort(liveIDs)
	c.cfg.DeletionDelay = time.Second
	testkit.Eventually(t, 30*time.Second, "marked blocks deleted after -compactor.deletion-delay", func() bool {
		if err := c.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		return slices.Equal(blockDirs(t, bkt, tenant), liveIDs) && len(blockDirs(t, bkt, "team-b")) == 1
	})
	idx, err = bucketindex.ReadIndex(ctx, bkt, tenant)
	if err != nil {
		t.Fatal(err)
	}
	var indexed []string
	for _, b := range idx.Blocks {
		indexed = append(indexed, b.ID.String())
	}
	slices.Sort(indexed)
	if !slices.Equal(indexed, liveIDs) || len(idx.BlockDeletionMarks) != 0 {
		t.Fatalf("index lists %v with %d marks, want exactly %v", indexed, len(idx.BlockDeletionMarks), liveIDs)
	}
	var markers []string
	if err := bkt.Iter(ctx, path.Join(tenant, block.MarkersDirname), func(n string) error { markers = append(markers, n); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(markers) != 0 {
		t.Fatalf("markers left after deletion: %v", markers)
	}
	if ok, _ := bkt.Exists(ctx, bucketindex.GlobalMarkersDir+"/"+bucketindex.IndexCompressedFilename); ok {
		t.Errorf("the global markers directory was indexed as a tenant")
	}
	if got := testkit.MetricSum(t, reg, "cortex_compactor_blocks_cleaned_total"); got != 11 {
		t.Errorf("cortex_compactor_blocks_cleaned_total = %v, want 11", got)
	}
	if got := testkit.MetricSum(t, reg, "cortex_bucket_blocks_count", "user", tenant); got != 2 {
		t.Errorf("cortex_bucket_blocks_count{user=%q} = %v, want 2", tenant, got)
	}
	// The samples survived the cleanup.
	if samples, _ := sampleCount(t, bkt, tenant, live[0].ID); samples != testSeries*6*perSeries2h {
		t.Fatalf("0h-12h block holds %d samples after cleanup", samples)
	}
}

func TestCleanupFinishesInterruptedDeletion(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	const tenant = "team-a"
	id := shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
	uploading := shipBlock(t, bkt, tenant, 2, 2*hour, 4*hour, testStep)
	tb := objstore.NewPrefixedBucket(bkt, tenant)
	if _, err := block.MarkForDeletion(ctx, tb, id, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	// A deletion that stopped after meta.json, and an upload in progress.
	if err := tb.Delete(ctx, block.MetaPath(id)); err != nil {
		t.Fatal(err)
	}
	if err := tb.Delete(ctx, block.MetaPath(uploading)); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, bkt, discard, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blockDirs(t, bkt, tenant); !slices.Equal(got, []string{uploading.String()}) {
		t.Fatalf("block dirs after cleanup %v, want only the upload in progress %s", got, uploading)
	}
	if got := testkit.MetricSum(t, reg, "cortex_bucket_blocks_partials_count", "user", tenant); got != 1 {
		t.Fatalf("cortex_bucket_blocks_partials_count = %v, want 1", got)
	}
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	const tenant = "team-a"
	now := time.Now().UnixMilli()
	start := now - now%(2*hour)
	old := shipBlock(t, bkt, tenant, 2, start-100*hour, start-98*hour, testStep)       // ends 98h+ ago
	straddling := shipBlock(t, bkt, tenant, 2, start-50*hour, start-46*hour, testStep) // ends 46h+ ago
	recent := shipBlock(t, bkt, tenant, 2, start-2*hour, start, testStep)

	cfg := testConfig(t)
	cfg.DeletionDelay = time.Second
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, bkt, discard, reg, WithRetention(func(string) time.Duration { return 48 * time.Hour }))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	idx, err := bucketindex.ReadIndex(ctx, bkt, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.BlockDeletionMarks) != 1 || idx.BlockDeletionMarks[0].ID != old {
		t.Fatalf("marks after applying retention: %+v, want only %s", idx.BlockDeletionMarks, old)
	}
	if got := testkit.MetricSum(t, reg, "cortex_compactor_blocks_marked_for_deletion_total", "reason", "retention"); got != 1 {
		t.Fatalf("cortex_compactor_blocks_marked_for_deletion_total{reason=retention} = %v, want 1", got)
	}
	want := []string{straddling.String(), recent.String()}
	slices.Sort(want)
	testkit.Eventually(t, 30*time.Second, "the block past retention deleted", func() bool {
		if err := c.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		return slices.Equal(blockDirs(t, bkt, tenant), want)
	})
}

func TestServiceCompactsAndCleansUp(t *testing.T) {
	bkt := newFSBucket(t)
	const tenant = "team-a"
	for range 3 {
		shipBlock(t, bkt, tenant, testSeries, 0, 2*hour, testStep)
	}
	shipBlock(t, bkt, tenant, testSeries, 2*hour, 4*hour, testStep)

	cfg := testConfig(t)
	cfg.CompactionInterval = 50 * time.Millisecond
	cfg.CleanupInterval = 50 * time.Millisecond
	cfg.DeletionDelay = time.Second
	// The data directory may hold other components' files: the compactor
	// touches only its own subdirectory.
	foreign := filepath.Join(cfg.DataDir, "ingester", "keep")
	if err := os.MkdirAll(filepath.Dir(foreign), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(foreign, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(cfg.DataDir, compactSubdir, tenant, "stale")
	if err := os.MkdirAll(leftover, 0o750); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, bkt, discard, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := services.StopAndAwaitTerminated(context.Background(), c); err != nil {
			t.Error(err)
		}
	}()

	testkit.EventuallyNil(t, 30*time.Second, "the bucket index listing one 0h-2h block and the 2h-4h block, nothing marked", func() error {
		idx, err := bucketindex.ReadIndex(context.Background(), bkt, tenant)
		if err != nil {
			return err
		}
		if len(idx.Blocks) != 2 || len(idx.BlockDeletionMarks) != 0 || len(blockDirs(t, bkt, tenant)) != 2 {
			return errNotYet(idx)
		}
		return nil
	})
	if _, err := os.Stat(foreign); err != nil {
		t.Fatalf("a file of another component under -compactor.data-dir: %v", err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("a crashed compaction's leftover survived the start: %v", err)
	}
}

type indexState struct{ idx *bucketindex.Index }

func errNotYet(idx *bucketindex.Index) error { return indexState{idx} }

func (s indexState) Error() string {
	var b strings.Builder
	b.WriteString("index lists ")
	for _, bl := range s.idx.Blocks {
		b.WriteString(bl.String())
		b.WriteString("; ")
	}
	return b.String()
}

func TestNoDeletionDelay(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	const tenant = "team-a"
	for range 3 {
		shipBlock(t, bkt, tenant, testSeries, 0, 2*hour, testStep)
	}
	now := time.Now().UnixMilli()
	start := now - now%(2*hour)
	recent := shipBlock(t, bkt, tenant, 2, start-2*hour, start, testStep)

	cfg := testConfig(t)
	cfg.DeletionDelay = 0
	reg := prometheus.NewPedanticRegistry()
	// The 1970 blocks are past the retention period.
	c, err := New(cfg, bkt, discard, reg, WithRetention(func(string) time.Duration { return 24 * time.Hour }))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	// The replicas went as soon as their merge was uploaded.
	live := liveBlocks(t, bkt, tenant)
	if len(live) != 2 || len(blockDirs(t, bkt, tenant)) != 2 {
		t.Fatalf("after compaction with no deletion delay: live %v, dirs %v", live, blockDirs(t, bkt, tenant))
	}
	// Retention marks and deletes in the same cleanup.
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := blockDirs(t, bkt, tenant); !slices.Equal(got, []string{recent.String()}) {
		t.Fatalf("after cleanup: dirs %v, want only %s", got, recent)
	}
	idx, err := bucketindex.ReadIndex(ctx, bkt, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Blocks) != 1 || idx.Blocks[0].ID != recent || len(idx.BlockDeletionMarks) != 0 {
		t.Fatalf("index after cleanup: %+v", idx)
	}
}

func TestNoCompactMarkedBlocksLeftAlone(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	const tenant = "team-a"
	a := shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
	b := shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
	kept := shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
	marker := bucketindex.BucketWithGlobalMarkers(objstore.NewPrefixedBucket(bkt, tenant))
	if err := marker.Upload(ctx, path.Join(kept.String(), block.NoCompactMarkFilename), strings.NewReader(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.starting(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	live := liveBlocks(t, bkt, tenant)
	var liveIDs []ulid.ULID
	for _, bl := range live {
		liveIDs = append(liveIDs, bl.ID)
	}
	if len(live) != 2 || !slices.Contains(liveIDs, kept) || slices.Contains(liveIDs, a) || slices.Contains(liveIDs, b) {
		t.Fatalf("live blocks %v: want %s (no-compact) and the merge of %s and %s", liveIDs, kept, a, b)
	}
	entries, err := os.ReadDir(filepath.Join(cfg.DataDir, compactSubdir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("work directory left behind: %v", entries)
	}
}

// TestReplicasThatDiffer merges replicas that did not all get the same
// samples (an ingester restarted, a write reached only a quorum): the
// result holds their union, each sample once.
func TestReplicasThatDiffer(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	const tenant = "team-a"
	shipBlockFrom(t, bkt, tenant, 3, 0, 2*hour, 0, testStep)           // every minute
	shipBlockFrom(t, bkt, tenant, 3, 0, 2*hour, 0, 2*testStep)         // every other minute: a subset
	shipBlockFrom(t, bkt, tenant, 3, 0, 2*hour, testStep/2, testStep)  // the half minutes: all new
	shipBlockFrom(t, bkt, tenant, 3, 0, 2*hour, 90*testStep, testStep) // the last half hour only
	c, err := New(testConfig(t), bkt, discard, prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	live := liveBlocks(t, bkt, tenant)
	if len(live) != 1 {
		t.Fatalf("live blocks %v, want one", live)
	}
	perSeries := int(2*hour/testStep) * 2 // whole and half minutes
	if samples, series := sampleCount(t, bkt, tenant, live[0].ID); series != 3 || samples != 3*perSeries {
		t.Fatalf("merged block holds %d samples in %d series, want %d in 3", samples, series, 3*perSeries)
	}
}

// failingUploads fails uploads under a prefix while fail is set.
type failingUploads struct {
	objstore.Bucket
	prefix string
	fail   atomic.Bool
}

func (b *failingUploads) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	// Chunks and index go through; meta.json fails, the worst moment.
	if b.fail.Load() && strings.HasPrefix(name, b.prefix) && path.Base(name) == block.MetaFilename {
		return errors.New("injected upload failure")
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func TestFailedCompactionLeavesSourcesAndOtherTenants(t *testing.T) {
	ctx := context.Background()
	fsb := newFSBucket(t)
	for range 3 {
		shipBlock(t, fsb, "team-a", 2, 0, 2*hour, testStep)
		shipBlock(t, fsb, "team-b", 2, 0, 2*hour, testStep)
	}
	bkt := &failingUploads{Bucket: fsb, prefix: "team-a/"}
	bkt.fail.Store(true)

	cfg := testConfig(t)
	cfg.CompactionRetries = 1 // no backoff wait in the test
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, bkt, discard, reg)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Compact(ctx)
	if err == nil || !strings.Contains(err.Error(), `tenant "team-a"`) || !strings.Contains(err.Error(), "injected upload failure") {
		t.Fatalf("compaction with team-a's uploads failing: %v; want an error naming the tenant and the cause", err)
	}
	if got := testkit.MetricSum(t, reg, "cortex_compactor_runs_failed_total"); got != 1 {
		t.Fatalf("cortex_compactor_runs_failed_total = %v, want 1", got)
	}
	if got := testkit.MetricSum(t, reg, "cortex_compactor_group_compactions_failures_total"); got != 1 {
		t.Fatalf("cortex_compactor_group_compactions_failures_total = %v, want 1", got)
	}
	// team-a's replicas are untouched; team-b was compacted regardless.
	if live := liveBlocks(t, fsb, "team-a"); len(live) != 3 {
		t.Fatalf("team-a live blocks after a failed compaction: %d, want its 3 sources", len(live))
	}
	if live := liveBlocks(t, fsb, "team-b"); len(live) != 1 {
		t.Fatalf("team-b live blocks: %d, want 1", len(live))
	}
	// The half-uploaded result was removed, not left as a partial block.
	if dirs := blockDirs(t, fsb, "team-a"); len(dirs) != 3 {
		t.Fatalf("team-a block directories after the failed upload: %v, want its 3 sources", dirs)
	}

	bkt.fail.Store(false)
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	live := liveBlocks(t, fsb, "team-a")
	if len(live) != 1 {
		t.Fatalf("team-a live blocks after the bucket recovered: %d, want 1", len(live))
	}
	if samples, _ := sampleCount(t, fsb, "team-a", live[0].ID); samples != 2*int(2*hour/testStep) {
		t.Fatalf("team-a block holds %d samples", samples)
	}
	if got := testkit.MetricSum(t, reg, "cortex_compactor_runs_completed_total"); got != 1 {
		t.Fatalf("cortex_compactor_runs_completed_total = %v, want 1", got)
	}
}
