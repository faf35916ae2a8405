package storegateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const (
	minT = math.MinInt64
	maxT = math.MaxInt64
)

var hour = time.Hour.Milliseconds()

// testSeries are 6 series of 15s samples over [start, start+2h).
func testSeries(start int64, val func(i int, t int64) float64) []genSeries {
	var out []genSeries
	i := 0
	for _, job := range []string{"a", "b"} {
		for _, inst := range []string{"i1", "i2", "i3"} {
			n := i
			out = append(out, genSeries{
				lset:  labels.FromStrings("__name__", "up", "job", job, "instance", inst),
				start: start, step: 15000, n: 480,
				val: func(t int64) float64 { return val(n, t) },
			})
			i++
		}
	}
	return out
}

func asSeries(gs []genSeries) []storage.Series {
	out := make([]storage.Series, len(gs))
	for i, s := range gs {
		out[i] = s
	}
	return out
}

func TestSelectLabelNamesAndValues(t *testing.T) {
	bkt := newBucket(t)
	val := func(i int, t int64) float64 { return float64(i*1000) + float64(t)/1000 }
	first, second := testSeries(0, val), testSeries(2*hour, val)
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(first)), true)
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(second)), true)
	s, reg := newStore(t, testConfig(t), bkt)
	syncStore(t, s)

	if got := testkit.MetricSum(t, reg, "cortex_bucket_store_blocks_loaded"); got != 2 {
		t.Fatalf("blocks loaded = %v, want 2", got)
	}
	for _, id := range s.Blocks("t1") {
		st, err := os.Stat(filepath.Join(s.cfg.SyncDir, "t1", id.String(), indexFilename))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("block %s: local index %d bytes for 6 series", id, st.Size())
	}

	q := querier(t, s, "t1", minT, maxT)
	names, got := selectAll(t, q, nil, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
	want := []string{
		`{__name__="up", instance="i1", job="a"}`,
		`{__name__="up", instance="i2", job="a"}`,
		`{__name__="up", instance="i3", job="a"}`,
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("series = %v, want %v", names, want)
	}
	for i := range 3 {
		w := append(expected(first[i], minT, maxT), expected(second[i], minT, maxT)...)
		if g := got[want[i]]; !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: %d samples, want %d (first %v, want %v)", want[i], len(g), len(w), g[:min(2, len(g))], w[:2])
		}
	}

	// A range within the second block, with hints narrowing it further.
	mint, maxt := 2*hour+30*60*1000, 3*hour
	q2 := querier(t, s, "t1", mint, 4*hour)
	_, got = selectAll(t, q2, &storage.SelectHints{Start: mint, End: maxt},
		labels.MustNewMatcher(labels.MatchRegexp, "instance", "i2|i3"), labels.MustNewMatcher(labels.MatchEqual, "job", "b"))
	if len(got) != 2 {
		t.Fatalf("got %d series, want 2", len(got))
	}
	if g, w := got[second[4].lset.String()], expected(second[4], mint, maxt); !reflect.DeepEqual(g, w) {
		t.Fatalf("trimmed samples: %d, want %d", len(g), len(w))
	}

	// The series API's hint reads labels only.
	names, got = selectAll(t, q, &storage.SelectHints{Start: minT, End: maxT, Func: "series"}, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if len(names) != 6 || len(got[names[0]]) != 0 {
		t.Fatalf("series hint: %d series, %d samples in the first", len(names), len(got[names[0]]))
	}

	ctx := context.Background()
	ln, _, err := q.LabelNames(ctx, nil)
	if err != nil || !reflect.DeepEqual(ln, []string{"__name__", "instance", "job"}) {
		t.Fatalf("label names = %v, %v", ln, err)
	}
	lv, _, err := q.LabelValues(ctx, "job", nil)
	if err != nil || !reflect.DeepEqual(lv, []string{"a", "b"}) {
		t.Fatalf("job values = %v, %v", lv, err)
	}
	lv, _, err = q.LabelValues(ctx, "instance", nil, labels.MustNewMatcher(labels.MatchEqual, "instance", "i2"))
	if err != nil || !reflect.DeepEqual(lv, []string{"i2"}) {
		t.Fatalf("instance values with a matcher = %v, %v", lv, err)
	}
	lv, _, err = q.LabelValues(ctx, "nope", nil)
	if err != nil || len(lv) != 0 {
		t.Fatalf("values of an absent label = %v, %v", lv, err)
	}

	// A range outside every block selects nothing.
	names, _ = selectAll(t, querier(t, s, "t1", 10*hour, 11*hour), nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if len(names) != 0 {
		t.Fatalf("outside the blocks: %v", names)
	}
	if got := histogramCount(t, reg, "cortex_bucket_store_series_fetch_duration_seconds"); got == 0 {
		t.Fatal("no series fetch observed")
	}
}

func TestOverlappingCopiesCountOnce(t *testing.T) {
	bkt := newBucket(t)
	val := func(i int, t int64) float64 { return float64(i) + float64(t) }
	series := testSeries(0, val)
	// Three ingesters of a replication set each ship the same samples.
	for range 3 {
		uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(series)), true)
	}
	// One of them also has a sample the others missed.
	extra := series[0]
	extra.start, extra.n = 2*hour-5000, 1
	uploadBlock(t, bkt, "t1", writeBlock(t, []storage.Series{extra}), true)

	s, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, s)
	if n := len(s.Blocks("t1")); n != 4 {
		t.Fatalf("%d blocks loaded, want 4", n)
	}
	names, got := selectAll(t, querier(t, s, "t1", minT, maxT), nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if len(names) != 6 {
		t.Fatalf("%d series, want 6", len(names))
	}
	for i, gs := range series {
		w := expected(gs, minT, maxT)
		if i == 0 {
			w = append(w, sample{extra.start, extra.val(extra.start)})
		}
		if g := got[gs.lset.String()]; !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: %d samples, want %d", gs.lset, len(g), len(w))
		}
	}
}

func TestPartialAndDeletionMarkedBlocksIgnored(t *testing.T) {
	bkt := newBucket(t)
	val := func(i int, t int64) float64 { return 1 }
	good := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	partialDir := writeBlock(t, asSeries(testSeries(2*hour, val)))
	partial := uploadBlock(t, bkt, "t1", partialDir, false)
	marked := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(4*hour, val))), true)
	markForDeletion(t, bkt, "t1", marked, time.Now().Add(-7*time.Hour))
	recent := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(6*hour, val))), true)
	// Marked a minute ago: still served until the compactor's replacement
	// is visible, as in Cortex (-blocks-storage.bucket-store.ignore-deletion-marks-delay).
	markForDeletion(t, bkt, "t1", recent, time.Now().Add(-time.Minute))
	// Not blocks: a file and a markers folder beside them.
	if err := bkt.Upload(context.Background(), "t1/bucket-index.json.gz", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(context.Background(), "t1/markers/"+marked.String()+"-deletion-mark.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.IgnoreDeletionMarksDelay = 6 * time.Hour
	s, reg := newStore(t, cfg, bkt)
	syncStore(t, s)
	want := []ulid.ULID{good, recent}
	slices.SortFunc(want, func(a, b ulid.ULID) int { return a.Compare(b) })
	if got := s.Blocks("t1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %v, want %v (partial %s, marked %s)", got, want, partial, marked)
	}
	for _, id := range []ulid.ULID{partial, marked} {
		if _, err := os.Stat(filepath.Join(cfg.SyncDir, "t1", id.String())); !os.IsNotExist(err) {
			t.Fatalf("ignored block %s has a local copy: %v", id, err)
		}
	}

	// Once the mark is older than the delay, the block is dropped.
	markForDeletion(t, bkt, "t1", recent, time.Now().Add(-7*time.Hour))
	syncStore(t, s)
	if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{good}) {
		t.Fatalf("loaded %v after the mark aged, want only %s", got, good)
	}
	if got := testkit.MetricSum(t, reg, "cortex_bucket_store_block_drops_total"); got != 1 {
		t.Fatalf("drops = %v, want 1", got)
	}
	// The partial upload completes: the next sync loads it.
	uploadBlock(t, bkt, "t1", partialDir, true)
	syncStore(t, s)
	if got := s.Blocks("t1"); !slices.Contains(got, partial) || len(got) != 2 {
		t.Fatalf("loaded %v after the upload completed, want %s and %s", got, good, partial)
	}
}

func TestDeletedBlockDisappearsLocally(t *testing.T) {
	bkt := newBucket(t)
	val := func(i int, t int64) float64 { return 2 }
	a := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	b := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(2*hour, val))), true)
	cfg := testConfig(t)
	s, reg := newStore(t, cfg, bkt)
	syncStore(t, s)

	q := querier(t, s, "t1", minT, maxT)
	names, got := selectAll(t, q, nil, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
	if len(names) != 3 || len(got[names[0]]) != 960 {
		t.Fatalf("before the deletion: %d series, %d samples", len(names), len(got[names[0]]))
	}
	if err := deleteDir(bkt, path.Join("t1", b.String())); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.SyncBlocks(context.Background()) }()
	// The drop waits for the querier: the sync cannot end before it closes.
	testkit.Eventually(t, 10*time.Second, "block unlisted", func() bool { return len(s.Blocks("t1")) == 1 })
	select {
	case err := <-done:
		t.Fatalf("sync ended while a querier held the dropped block: %v", err)
	default:
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{a}) {
		t.Fatalf("loaded %v, want %s", got, a)
	}
	if _, err := os.Stat(filepath.Join(cfg.SyncDir, "t1", b.String())); !os.IsNotExist(err) {
		t.Fatalf("deleted block still local: %v", err)
	}
	if got := testkit.MetricSum(t, reg, "cortex_bucket_store_blocks_loaded"); got != 1 {
		t.Fatalf("blocks loaded = %v, want 1", got)
	}
	q = querier(t, s, "t1", minT, maxT)
	_, got = selectAll(t, q, nil, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
	if n := len(got[`{__name__="up", instance="i1", job="a"}`]); n != 480 {
		t.Fatalf("%d samples after the drop, want 480", n)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// The whole tenant gone: nothing left of it locally.
	if err := deleteDir(bkt, "t1"); err != nil {
		t.Fatal(err)
	}
	syncStore(t, s)
	if _, err := os.Stat(filepath.Join(cfg.SyncDir, "t1")); !os.IsNotExist(err) {
		t.Fatalf("tenant folder still local: %v", err)
	}
}

func deleteDir(bkt *countingBucket, dir string) error {
	return bkt.Iter(context.Background(), dir, func(name string) error {
		return bkt.Delete(context.Background(), name)
	}, objstorRecursive())
}

func TestTenantsIsolated(t *testing.T) {
	bkt := newBucket(t)
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, func(int, int64) float64 { return 1 }))), true)
	other := genSeries{lset: labels.FromStrings("__name__", "secret", "job", "a"), start: 0, step: 15000, n: 10, val: func(int64) float64 { return 2 }}
	uploadBlock(t, bkt, "t2", writeBlock(t, []storage.Series{other}), true)
	s, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, s)

	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	names, got := selectAll(t, querier(t, s, "t2", minT, maxT), nil, all)
	if !reflect.DeepEqual(names, []string{other.lset.String()}) || len(got[names[0]]) != 10 {
		t.Fatalf("t2 sees %v", names)
	}
	names, _ = selectAll(t, querier(t, s, "t1", minT, maxT), nil, all)
	if len(names) != 6 || slices.Contains(names, other.lset.String()) {
		t.Fatalf("t1 sees %v", names)
	}
	lv, _, err := querier(t, s, "t1", minT, maxT).LabelValues(context.Background(), "__name__", nil)
	if err != nil || !reflect.DeepEqual(lv, []string{"up"}) {
		t.Fatalf("t1 names = %v, %v", lv, err)
	}
	names, _ = selectAll(t, querier(t, s, "t3", minT, maxT), nil, all)
	if len(names) != 0 {
		t.Fatalf("unknown tenant sees %v", names)
	}
}

func TestChunkReadsBatched(t *testing.T) {
	bkt := newBucket(t)
	// 1,200 samples: 10 chunks of 120 for each series.
	var series []storage.Series
	var long []genSeries
	for i := range 50 {
		gs := genSeries{lset: labels.FromStrings("__name__", "m", "i", string(rune('A'+i%26))+string(rune('a'+i/26))), start: 0, step: 5000, n: 1200,
			val: func(t int64) float64 { return float64(t) * float64(i) }}
		long = append(long, gs)
		series = append(series, gs)
	}
	uploadBlock(t, bkt, "t1", writeBlock(t, series), true)
	s, reg := newStore(t, testConfig(t), bkt)
	syncStore(t, s)

	before := bkt.ranges.Load()
	names, got := selectAll(t, querier(t, s, "t1", minT, maxT), nil, labels.MustNewMatcher(labels.MatchEqual, "i", "Cb"))
	if len(names) != 1 || !reflect.DeepEqual(got[names[0]], expected(long[28], minT, maxT)) {
		t.Fatalf("got %v", names)
	}
	if n := bkt.ranges.Load() - before; n != 1 {
		t.Fatalf("%d range requests for one series' 10 chunks, want 1", n)
	}
	// All series: their chunks are adjacent in the segment, one request.
	before = bkt.ranges.Load()
	names, _ = selectAll(t, querier(t, s, "t1", minT, maxT), nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	if len(names) != 50 {
		t.Fatalf("%d series", len(names))
	}
	if n := bkt.ranges.Load() - before; n != 1 {
		t.Fatalf("%d range requests for 50 adjacent series, want 1", n)
	}
	if got := testkit.MetricSum(t, reg, "cortex_bucket_store_chunk_range_requests_total"); got != 2 {
		t.Fatalf("range requests metric = %v, want 2", got)
	}
}

func TestCorruptChunkNamesBlockAndFile(t *testing.T) {
	bkt := newBucket(t)
	dir := writeBlock(t, asSeries(testSeries(0, func(int, int64) float64 { return 3 })))
	// Flip a byte inside the first chunk's data, past its length and
	// encoding (the segment starts with an 8-byte header).
	seg := filepath.Join(dir, chunksDirname, "000001")
	raw, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	raw[8+4] ^= 0xff
	if err := os.WriteFile(seg, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	id := uploadBlock(t, bkt, "t1", dir, true)
	s, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, s)
	ss := querier(t, s, "t1", minT, maxT).Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	for ss.Next() {
		t.Fatal("a series from a corrupt block")
	}
	err = ss.Err()
	if err == nil || !strings.Contains(err.Error(), "tenant t1 block "+id.String()) || !strings.Contains(err.Error(), "t1/"+id.String()+"/chunks/000001") || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("error = %v", err)
	}
}

func TestRestartReusesLocalIndex(t *testing.T) {
	bkt := newBucket(t)
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, func(int, int64) float64 { return 4 }))), true)
	cfg := testConfig(t)
	s1, _ := newStore(t, cfg, bkt)
	syncStore(t, s1)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	// A stray file of someone else's in the sync directory stays.
	stray := filepath.Join(cfg.SyncDir, "t1", "notes.txt")
	if err := os.WriteFile(stray, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}

	gets := bkt.gets.Load()
	s2, _ := newStore(t, cfg, bkt)
	syncStore(t, s2)
	// The deletion mark probe and meta.json: no index download.
	if n := bkt.gets.Load() - gets; n != 2 {
		t.Fatalf("%d object reads after a restart, want 2 (mark probe, meta.json)", n)
	}
	names, _ := selectAll(t, querier(t, s2, "t1", minT, maxT), nil, labels.MustNewMatcher(labels.MatchEqual, "job", "b"))
	if len(names) != 3 {
		t.Fatalf("%d series after a restart", len(names))
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("stray file removed: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	var cfg Config
	fs := flagSet(&cfg)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.SyncDir != "tsdb-sync" || cfg.SyncInterval != 15*time.Minute || cfg.MetaSyncConcurrency != 20 || cfg.BlockSyncConcurrency != 20 || cfg.IgnoreDeletionMarksDelay != 6*time.Hour {
		t.Fatalf("defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.SyncDir = ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.sync-dir") {
		t.Fatalf("empty sync dir: %v", err)
	}
}

func TestBucketErrorsNameTenantBlockAndFile(t *testing.T) {
	bkt := newBucket(t)
	val := func(int, int64) float64 { return 5 }
	a := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	b := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(2*hour, val))), true)
	s, reg := newStore(t, testConfig(t), bkt)

	// The index of one block cannot be read: the other is loaded, and the
	// sync reports the one at fault.
	failing := b.String() + "/index"
	bkt.failing.Store(&failing)
	err := s.SyncBlocks(context.Background())
	if err == nil || !strings.Contains(err.Error(), "tenant t1 block "+b.String()) || !strings.Contains(err.Error(), "t1/"+b.String()+"/index") {
		t.Fatalf("sync error = %v", err)
	}
	if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{a}) {
		t.Fatalf("loaded %v, want %s", got, a)
	}
	if got := testkit.MetricSum(t, reg, "cortex_bucket_store_block_load_failures_total"); got != 1 {
		t.Fatalf("load failures = %v, want 1", got)
	}
	if got := testkit.MetricSum(t, reg, "cortex_blocks_meta_sync_failures_total"); got != 1 {
		t.Fatalf("sync failures = %v, want 1", got)
	}
	if _, err := os.Stat(filepath.Join(s.cfg.SyncDir, "t1", b.String())); !os.IsNotExist(err) {
		t.Fatalf("failed download left files: %v", err)
	}

	// meta.json unreadable: the loaded block is kept, not taken for gone.
	failing = a.String() + "/meta.json"
	bkt.failing.Store(&failing)
	if err := s.SyncBlocks(context.Background()); err == nil || !strings.Contains(err.Error(), "t1/"+a.String()+"/meta.json") {
		t.Fatalf("sync error = %v", err)
	}
	if got := s.Blocks("t1"); !slices.Contains(got, a) {
		t.Fatalf("loaded %v: %s dropped on a read error", got, a)
	}

	// Chunks unreadable: the query fails naming the segment.
	bkt.failing.Store(nil)
	syncStore(t, s)
	failing = a.String() + "/chunks/"
	bkt.failing.Store(&failing)
	ss := querier(t, s, "t1", minT, maxT).Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
	for ss.Next() {
		_ = ss.At()
	}
	if err := ss.Err(); err == nil || !strings.Contains(err.Error(), "t1/"+a.String()+"/chunks/000001") || !errors.Is(err, errInjected) {
		t.Fatalf("select error = %v", err)
	}
}

func TestServiceSyncsPeriodically(t *testing.T) {
	bkt := newBucket(t)
	val := func(int, int64) float64 { return 6 }
	a := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	cfg := testConfig(t)
	cfg.SyncInterval = 20 * time.Millisecond
	s, _ := newStore(t, cfg, bkt)
	svc := s.Service()
	ctx := context.Background()
	if err := services.StartAndAwaitRunning(ctx, svc); err != nil {
		t.Fatal(err)
	}
	// Running means the first sync is done.
	if got := s.Blocks("t1"); !reflect.DeepEqual(got, []ulid.ULID{a}) {
		t.Fatalf("loaded %v when running, want %s", got, a)
	}
	b := uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(2*hour, val))), true)
	testkit.Eventually(t, 10*time.Second, "new block loaded", func() bool { return slices.Contains(s.Blocks("t1"), b) })
	if err := services.StopAndAwaitTerminated(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if got := s.Blocks("t1"); len(got) != 0 {
		t.Fatalf("blocks still loaded after stopping: %v", got)
	}

	// A first sync that fails fails the start.
	cfg.SyncDir = filepath.Join(t.TempDir(), "other")
	s2, _ := newStore(t, cfg, bkt)
	failing := a.String() + "/meta.json"
	bkt.failing.Store(&failing)
	svc = s2.Service()
	if err := services.StartAndAwaitRunning(ctx, svc); err == nil || !strings.Contains(err.Error(), "initial blocks sync") {
		t.Fatalf("start with a failing bucket: %v", err)
	}
}

func TestChunksPastRangeReadAgain(t *testing.T) {
	gs := genSeries{lset: labels.FromStrings("__name__", "m"), start: 0, step: 5000, n: 600,
		val: func(t int64) float64 { return float64(t % 7919) }}
	dir := writeBlock(t, []storage.Series{gs})
	nChunks := chunkCount(t, dir)
	if nChunks < 2 {
		t.Fatalf("%d chunks: the test needs several", nChunks)
	}
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		// range requests for the series' chunks
		ranges int64
	}{
		// meta.json gives sizes: one range request ending at the
		// segment's end.
		{"sizes", func(map[string]any) {}, 1},
		// No "thanos" section: the estimate runs past the segment's end
		// and what is there is used.
		{"no-sizes", func(m map[string]any) { delete(m, "thanos") }, 1},
		// A segment size too small: the first range holds no whole chunk,
		// and each is read again on its own.
		{"short", func(m map[string]any) {
			files := m["thanos"].(map[string]any)["files"].([]map[string]any)
			for _, f := range files {
				if f["rel_path"] == "chunks/000001" {
					f["size_bytes"] = 8 + 20
				}
			}
		}, 1 + nChunks},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bkt := newBucket(t)
			uploadBlockEdit(t, bkt, "t1", dir, tc.edit)
			s, _ := newStore(t, testConfig(t), bkt)
			syncStore(t, s)
			before := bkt.ranges.Load()
			_, got := selectAll(t, querier(t, s, "t1", minT, maxT), nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
			if !reflect.DeepEqual(got[gs.lset.String()], expected(gs, minT, maxT)) {
				t.Fatalf("%d samples, want %d", len(got[gs.lset.String()]), gs.n)
			}
			if n := bkt.ranges.Load() - before; n != tc.ranges {
				t.Fatalf("%d range requests, want %d", n, tc.ranges)
			}
		})
	}
}

func TestParseChunk(t *testing.T) {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		app.Append(0, int64(i)*1000, float64(i))
	}
	data := c.Bytes()
	var rec []byte
	rec = binary.AppendUvarint(rec, uint64(len(data)))
	rec = append(rec, byte(chunkenc.EncXOR))
	rec = append(rec, data...)
	rec = binary.BigEndian.AppendUint32(rec, crc32.Checksum(rec[len(rec)-len(data)-1:], castagnoli))

	chk, need, err := parseChunk(append(rec, 0xde, 0xad))
	if err != nil || need != 0 || chk.NumSamples() != 50 {
		t.Fatalf("whole chunk: %v, need %d, err %v", chk, need, err)
	}
	if _, need, err := parseChunk(rec[:len(rec)-1]); err != nil || need != len(rec) {
		t.Fatalf("truncated chunk: need %d (want %d), err %v", need, len(rec), err)
	}
	if _, need, err := parseChunk(nil); err != nil || need <= 0 {
		t.Fatalf("empty: need %d, err %v", need, err)
	}
	bad := slices.Clone(rec)
	bad[len(bad)/2] ^= 1
	if _, _, err := parseChunk(bad); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("corrupt chunk: %v", err)
	}
}

// chunkCount is the number of chunks in a block's index.
func chunkCount(t testing.TB, dir string) int64 {
	t.Helper()
	b, err := tsdb.OpenBlock(nil, dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close() //nolint:errcheck // read only
	return int64(b.Meta().Stats.NumChunks)
}

// Queries run while syncs load and drop blocks: every query sees either
// the block or not, never a half-closed one (run with -race).
func TestQueriesDuringSyncs(t *testing.T) {
	bkt := newBucket(t)
	val := func(int, int64) float64 { return 7 }
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	churnDir := writeBlock(t, asSeries(testSeries(2*hour, val)))
	s, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			for ctx.Err() == nil {
				q, err := s.Querier("t1", minT, maxT)
				if err != nil {
					errc <- err
					return
				}
				ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
				n := 0
				for ss.Next() {
					it := ss.At().Iterator(nil)
					for it.Next() != chunkenc.ValNone {
						n++
					}
				}
				_ = q.Close()
				if err := ss.Err(); err != nil && ctx.Err() == nil {
					// The churned block may vanish from the bucket between
					// the sync that loaded it and the read: only that is allowed.
					if !strings.Contains(err.Error(), "no such file") {
						errc <- err
						return
					}
				} else if ctx.Err() == nil && n != 3*480 && n != 3*960 {
					errc <- fmt.Errorf("%d samples: neither with nor without the churned block", n)
					return
				}
			}
			errc <- nil
		}()
	}
	id := blockID(t, churnDir)
	for range 5 {
		uploadBlock(t, bkt, "t1", churnDir, true)
		syncStore(t, s)
		if err := deleteDir(bkt, path.Join("t1", id.String())); err != nil {
			t.Fatal(err)
		}
		syncStore(t, s)
	}
	cancel()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
