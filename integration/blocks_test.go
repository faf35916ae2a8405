package integration

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// shippedBlock is the part of a shipped block's meta.json the test reads.
type shippedBlock struct {
	ULID    string `json:"ulid"`
	MinTime int64  `json:"minTime"`
	MaxTime int64  `json:"maxTime"`
	Stats   struct {
		NumSamples uint64 `json:"numSamples"`
	} `json:"stats"`
	Thanos struct {
		Labels map[string]string `json:"labels"`
		Source string            `json:"source"`
	} `json:"thanos"`
}

// readBlocks returns the meta.json of every block of tenantID in a
// filesystem bucket, failing the test on an unreadable one.
func readBlocks(t *testing.T, bucketDir, tenantID string) []shippedBlock {
	t.Helper()
	blocks, err := tryReadBlocks(bucketDir, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

// tryReadBlocks is readBlocks for polling while a compactor works on the
// bucket: a meta.json deleted or being written between the listing and
// the read is an error to retry on, not a failure.
func tryReadBlocks(bucketDir, tenantID string) ([]shippedBlock, error) {
	metas, err := filepath.Glob(filepath.Join(bucketDir, tenantID, "*", "meta.json"))
	if err != nil {
		return nil, err
	}
	var blocks []shippedBlock
	for _, m := range metas {
		raw, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		var b shippedBlock
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// startBlocksProcess runs every component in one process with mutual TLS
// and an ingester that cuts one-minute blocks and ships them every second,
// plus flags (later flags win).
func startBlocksProcess(t *testing.T, certs string, flags ...string) (*testkit.Cortex, *cluster) {
	t.Helper()
	common := append(mtlsFlags(certs), ingesterClientFlags(certs)...)
	common = append(common,
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
		"-blocks-storage.tsdb.block-ranges-period=1m",
		"-blocks-storage.tsdb.ship-interval=1s",
		"-blocks-storage.tsdb.head-compaction-interval=1s",
	)
	p := testkit.StartCortex(t, append(common, flags...)...)
	c := &cluster{t: t, certs: certs, distributor: p, querier: p, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	waitReady(p, c.client)
	return p, c
}

// pushScrapes pushes scrapes from to to-1, 15s apart from start (ms), of
// series 0 and 1 of name as tenantID, with the values step and
// factor*step, and returns the number of samples pushed.
func (c *cluster) pushScrapes(tenantID, name string, start int64, from, to int, factor float64) uint64 {
	c.t.Helper()
	for s := from; s < to; s++ {
		ts := start + int64(s)*15_000
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series(name, 0, ts, float64(s)), series(name, 1, ts, factor*float64(s))}}
		if code, body := c.push(tenantID, req); code != http.StatusNoContent {
			c.t.Fatalf("push of scrape %d: %d %s", s, code, body)
		}
	}
	return uint64(2 * (to - from))
}

// flush asks p to ship every tenant's head (POST /ingester/flush).
func (c *cluster) flush(p *testkit.Cortex) {
	c.t.Helper()
	if code, body := do(c.t, c.client, http.MethodPost, "https://"+p.HTTPAddr+"/ingester/flush", "", nil); code != http.StatusNoContent {
		c.t.Fatalf("POST /ingester/flush on %s: %d %s", p.HTTPAddr, code, body)
	}
}

// TestIngesterShipsBlocksToBucket: an ingester with one-minute blocks,
// mutual TLS on every link, ships history pushed through the distributor to
// the filesystem bucket, and POST /ingester/flush ships the head, each
// block under its tenant with Cortex's meta.json labels.
func TestIngesterShipsBlocksToBucket(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	bucketDir := filepath.Join(t.TempDir(), "bucket")
	p, c := startBlocksProcess(t, certs, "-blocks-storage.filesystem.dir="+bucketDir)

	// Ten minutes of history, one sample every 15s, for two series.
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	pushed := c.pushScrapes("team-a", "shipped", start, 0, 40, 1)

	// Head compaction cuts the older minutes into blocks, and the ship
	// loop uploads them.
	p.Eventually(60*time.Second, "blocks of team-a in the bucket", func() bool {
		blocks, err := tryReadBlocks(bucketDir, "team-a")
		return err == nil && len(blocks) >= 5
	})

	// Flushing ships the rest of the head: every sample is in the bucket.
	c.flush(p)
	var samples uint64
	for _, b := range readBlocks(t, bucketDir, "team-a") {
		if b.Thanos.Labels["__org_id__"] != "team-a" || b.Thanos.Source != "receive" {
			t.Errorf("block %s: thanos section %+v, want __org_id__=team-a, source receive", b.ULID, b.Thanos)
		}
		if b.MaxTime-b.MinTime > time.Minute.Milliseconds() {
			t.Errorf("block %s spans %dms, more than the 1m block range", b.ULID, b.MaxTime-b.MinTime)
		}
		samples += b.Stats.NumSamples
	}
	if samples != pushed {
		t.Errorf("the bucket holds %d samples, want %d", samples, pushed)
	}
	if got := metricOf(t, c.client, p, `thanos_objstore_bucket_operations_total{bucket="",component="ingester",operation="upload"}`); got < 3*float64(len(readBlocks(t, bucketDir, "team-a"))) {
		t.Errorf("%v uploads counted for the ingester's bucket client, want 3 files per block", got)
	}
	if got := metricOf(t, c.client, p, "cortex_ingester_shipper_uploads_total"); got != float64(len(readBlocks(t, bucketDir, "team-a"))) {
		t.Errorf("cortex_ingester_shipper_uploads_total %v, want one per block in the bucket", got)
	}
	if code, _ := do(t, c.client, http.MethodGet, "https://"+p.HTTPAddr+"/ingester/flush", "", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /ingester/flush: %d, want 405", code)
	}
}

// bucketSamples sums numSamples over tenantID's block metas in bkt.
func bucketSamples(ctx context.Context, bkt objstore.Bucket, tenantID string) (uint64, int, error) {
	var samples uint64
	blocks := 0
	err := bkt.Iter(ctx, tenantID+"/", func(dir string) error {
		r, err := bkt.Get(ctx, dir+"meta.json")
		if bkt.IsObjNotFoundErr(err) {
			return nil // not uploaded whole yet
		}
		if err != nil {
			return err
		}
		defer r.Close()
		var b shippedBlock
		if err := json.NewDecoder(r).Decode(&b); err != nil {
			return fmt.Errorf("%smeta.json: %w", dir, err)
		}
		samples += b.Stats.NumSamples
		blocks++
		return nil
	})
	return samples, blocks, err
}

// TestShippingToS3SurvivesAnOutage: an ingester ships to a real S3 server
// (MinIO) over TLS from a private CA; the server is stopped while history
// is written for several ship intervals, and started again: writes were
// accepted throughout, and afterwards the bucket holds every sample once.
func TestShippingToS3SurvivesAnOutage(t *testing.T) {
	t.Parallel()
	m := testkit.StartMinIO(t)
	certs := certDir(t)
	s3Flags := []string{
		"-blocks-storage.backend=s3",
		"-blocks-storage.s3.endpoint=" + m.Endpoint,
		"-blocks-storage.s3.bucket-name=" + m.Bucket,
		"-blocks-storage.s3.access-key-id=" + m.AccessKey,
		"-blocks-storage.s3.secret-access-key=" + m.SecretKey,
		"-blocks-storage.s3.http.tls-ca-path=" + m.PKI.CAPath,
	}
	p, c := startBlocksProcess(t, certs, s3Flags...)

	// The test reads the bucket through the same client the process uses.
	var bcfg bucket.Config
	fs := flag.NewFlagSet("bucket", flag.ContinueOnError)
	bcfg.RegisterFlagsWithPrefix("blocks-storage.", fs)
	if err := fs.Parse(s3Flags); err != nil {
		t.Fatal(err)
	}
	bkt, err := bucket.NewClient(context.Background(), bcfg, "test", nil, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()

	start := time.Now().Add(-12 * time.Minute).Truncate(time.Minute).UnixMilli()
	pushed := c.pushScrapes("team-s3", "outage", start, 0, 4*4, 1) // four minutes
	p.EventuallyNil(60*time.Second, "the first blocks in S3", func() error {
		_, n, err := bucketSamples(context.Background(), bkt, "team-s3")
		if err == nil && n < 2 {
			err = fmt.Errorf("%d blocks", n)
		}
		return err
	})

	m.Stop()
	// A ship attempt fails on its existence check or on the upload itself.
	failures := func() float64 {
		return metricOf(t, c.client, p, "cortex_ingester_shipper_dir_sync_failures_total") +
			metricOf(t, c.client, p, "cortex_ingester_shipper_upload_failures_total")
	}
	before := failures()
	pushed += c.pushScrapes("team-s3", "outage", start, 4*4, 12*4, 1) // accepted with the bucket down
	p.Eventually(60*time.Second, "shipping to fail while S3 is down", func() bool { return failures() > before })

	m.Restart()
	p.EventuallyNil(60*time.Second, "every sample in S3 once it is back", func() error {
		if code, body := do(t, c.client, http.MethodPost, "https://"+p.HTTPAddr+"/ingester/flush", "", nil); code != http.StatusNoContent {
			return fmt.Errorf("flush: %d %s", code, body)
		}
		got, _, err := bucketSamples(context.Background(), bkt, "team-s3")
		if err == nil && got != pushed {
			err = fmt.Errorf("%d samples in the bucket, %d pushed", got, pushed)
		}
		return err
	})
}

// TestCompactorMergesShippedBlocks: in one process, the ingester ships
// one-minute blocks and the compactor merges them into four-minute blocks,
// deletes the sources and writes the bucket index; every sample stays in
// the bucket exactly once.
func TestCompactorMergesShippedBlocks(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	bucketDir := filepath.Join(t.TempDir(), "bucket")
	p, c := startBlocksProcess(t, certs,
		"-blocks-storage.filesystem.dir="+bucketDir,
		"-compactor.data-dir="+t.TempDir(),
		"-compactor.block-ranges=1m,4m",
		"-compactor.compaction-interval=1s",
		"-compactor.cleanup-interval=1s",
		"-compactor.deletion-delay=0s",
	)

	start := time.Now().Add(-20 * time.Minute).Truncate(4 * time.Minute).UnixMilli()
	pushed := c.pushScrapes("team-c", "compacted", start, 0, 16*4, 1) // 16 minutes
	c.flush(p)

	p.EventuallyNil(90*time.Second, "four-minute blocks replacing the shipped ones, each sample once", func() error {
		blocks, err := tryReadBlocks(bucketDir, "team-c")
		if err != nil {
			return err
		}
		var samples uint64
		merged := 0
		for _, b := range blocks {
			samples += b.Stats.NumSamples
			if b.MaxTime-b.MinTime > time.Minute.Milliseconds() {
				merged++
				if b.Thanos.Labels["__org_id__"] != "team-c" || b.Thanos.Source != "compactor" {
					return fmt.Errorf("merged block %s: thanos section %+v", b.ULID, b.Thanos)
				}
			}
		}
		if merged < 3 || samples != pushed {
			return fmt.Errorf("%d blocks, %d merged, %d samples (pushed %d)", len(blocks), merged, samples, pushed)
		}
		return nil
	})
	p.EventuallyNil(30*time.Second, "the bucket index written by the cleanup", func() error {
		_, err := os.Stat(filepath.Join(bucketDir, "team-c", "bucket-index.json.gz"))
		return err
	})
	if got := metricOf(t, c.client, p, "cortex_compactor_runs_completed_total"); got < 1 {
		t.Errorf("cortex_compactor_runs_completed_total %v", got)
	}
}

// TestHistoryServedFromBucketAfterIngesterDataLoss: history pushed through
// one process is shipped to the bucket; the ingester's local directory is
// then deleted and a new process started on the same bucket answers the
// same range query with the same values, from its store-gateway over the
// process's mutual TLS gRPC server (100 series per message), through its
// index, chunks and metadata caches (the querier's reads of the bucket
// index too, and the compactor's with its caching buckets).
func TestHistoryServedFromBucketAfterIngesterDataLoss(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	bucketDir := filepath.Join(t.TempDir(), "bucket")
	start := func(tsdbDir string, extra ...string) (*testkit.Cortex, *cluster) {
		return startBlocksProcess(t, certs, append([]string{
			"-blocks-storage.tsdb.dir=" + tsdbDir,
			"-blocks-storage.filesystem.dir=" + bucketDir,
			"-blocks-storage.bucket-store.sync-dir=" + t.TempDir(),
			"-blocks-storage.bucket-store.sync-interval=1s",
			"-compactor.data-dir=" + t.TempDir(),
			// The bucket index, through which store-gateway and querier
			// find the blocks, is written at each cleanup.
			"-compactor.cleanup-interval=1s",
		}, extra...)...)
	}

	tsdbDir := t.TempDir()
	p, c := start(tsdbDir)
	begin := time.Now().Add(-15 * time.Minute).Truncate(time.Minute)
	c.pushScrapes("team-h", "history", begin.UnixMilli(), 0, 10*4, 2) // ten minutes
	c.flush(p)
	params := url.Values{
		"query": {`sum by (series) (count_over_time(history[1m]))`},
		"start": {secs(begin.Add(time.Minute).UnixMilli())},
		"end":   {secs(begin.Add(10 * time.Minute).UnixMilli())},
		"step":  {"60"},
	}
	before := c.query("team-h", "query_range", params)
	if before.Status != "success" || len(before.Data.Result) != 2 {
		t.Fatalf("query before the data loss: %+v", before)
	}
	p.Stop()

	// The ingester's disk is lost; the new process has only the bucket.
	if err := os.RemoveAll(tsdbDir); err != nil {
		t.Fatal(err)
	}
	p2, c2 := start(t.TempDir(),
		"-blocks-storage.bucket-store.index-cache.backend=inmemory",
		"-blocks-storage.bucket-store.chunks-cache.backend=inmemory",
		"-blocks-storage.bucket-store.metadata-cache.backend=inmemory",
		// The first process's compactor may have indexed the blocks it
		// had shipped before its last ones: the index this process first
		// reads is then stale, and its cached copy is read again once
		// this process's compactor has rewritten it (5m in Cortex).
		"-blocks-storage.bucket-store.metadata-cache.bucket-index-content-ttl=1s",
		"-querier.store-gateway-series-batch-size=100",
		"-compactor.caching-bucket-enabled",
		"-compactor.cleaner-caching-bucket-enabled",
	)
	var after promResponse
	p2.EventuallyNil(30*time.Second, "the same answer from the store-gateway", func() error {
		// Until the store-gateway has loaded the blocks the compactor of
		// this process writes, the querier may refuse with 503 (the
		// consistency check); it never answers with blocks missing.
		var err error
		if after, err = c2.tryQuery("team-h", "query_range", params); err != nil {
			return err
		}
		if !reflect.DeepEqual(after.Data, before.Data) {
			return fmt.Errorf("got %+v, want %+v", after.Data, before.Data)
		}
		return nil
	})
	if got := metricOf(t, c2.client, p2, "cortex_bucket_store_blocks_loaded"); got < 10 {
		t.Errorf("cortex_bucket_store_blocks_loaded %v, want the shipped blocks", got)
	}
	// The second answer comes from the caches filled by the first.
	p2.EventuallyNil(30*time.Second, "the same answer again, through the caches", func() error {
		again, err := c2.tryQuery("team-h", "query_range", params)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(again.Data, before.Data) {
			return fmt.Errorf("answer from the caches: %+v, want %+v", again.Data, before.Data)
		}
		return nil
	})
	_, metrics := get(t, c2.client, "https://"+p2.HTTPAddr+"/metrics")
	for _, want := range []struct{ name, labels string }{
		{"thanos_store_index_cache_hits_total", `item_type="ExpandedPostings"`},
		{"thanos_store_bucket_cache_operation_hits_total", `component="store-gateway",config="chunks"`},
		{"thanos_store_bucket_cache_operation_requests_total", `component="querier",config="bucket-index"`},
		// Whether the tenant is marked for deletion, before compacting it.
		{"thanos_store_bucket_cache_operation_requests_total", `component="compactor",config="metafile",operation="exists"`},
	} {
		if got := metricSum(metrics, want.name, want.labels); got < 1 {
			t.Errorf("%s{%s} = %v, want at least 1:\n%s", want.name, want.labels, got, grepLines(metrics, want.name))
		}
	}
}

// metricSum adds up the samples of metric name whose labels contain labels.
func metricSum(metrics, name, labels string) float64 {
	var sum float64
	for _, l := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(l, name+"{") || !strings.Contains(l, labels) {
			continue
		}
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// TestReplicasCompactedIntoOneCopy: three ingesters at replication factor
// 3 ship three copies of every sample; the compactor merges them, so the
// bucket holds non-overlapping blocks with each sample once, and queries
// count each sample once.
func TestReplicasCompactedIntoOneCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	t.Parallel()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	bucketDir := filepath.Join(c.dir, "bucket")
	blocks := []string{
		"-blocks-storage.filesystem.dir=" + bucketDir,
		"-blocks-storage.tsdb.block-ranges-period=1m",
		"-blocks-storage.tsdb.ship-interval=1s",
		"-blocks-storage.tsdb.head-compaction-interval=1s",
	}
	for i := range 3 {
		c.ingDirs = append(c.ingDirs, filepath.Join(c.dir, "ingester-"+itoa(i)))
		c.ingesters = append(c.ingesters, c.start(append([]string{"-target=ingester",
			"-ingester.lifecycler.ID=ingester-" + itoa(i), "-ingester.lifecycler.addr=127.0.0.1",
			"-blocks-storage.tsdb.dir=" + c.ingDirs[i]}, blocks...)...))
	}
	c.distributor = c.start("-target=distributor")
	c.querier = c.start(append([]string{"-target=querier,store-gateway,compactor",
		"-blocks-storage.bucket-store.sync-dir=" + t.TempDir(),
		"-blocks-storage.bucket-store.sync-interval=1s",
		// Compacted sources stay in the bucket until the store-gateway
		// stopped reading them: marked ones are dropped after 1s and a
		// sync, deleted after 5s.
		"-blocks-storage.bucket-store.ignore-deletion-marks-delay=1s",
		"-compactor.data-dir=" + t.TempDir(),
		"-compactor.block-ranges=1m,4m",
		"-compactor.compaction-interval=1s",
		"-compactor.cleanup-interval=1s",
		"-compactor.deletion-delay=5s",
	}, blocks...)...)
	for _, p := range append([]*testkit.Cortex{c.distributor, c.querier}, c.ingesters...) {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, 3)

	start := time.Now().Add(-20 * time.Minute).Truncate(4 * time.Minute)
	c.pushScrapes("team-r", "replicated", start.UnixMilli(), 0, 16*4, 1) // 16 minutes
	for _, ing := range c.ingesters {
		c.flush(ing)
	}

	// The first twelve minutes: three full four-minute ranges.
	end := start.Add(12 * time.Minute).UnixMilli()
	const want = 2 * 12 * 4
	c.querier.EventuallyNil(90*time.Second, "one copy of each sample in non-overlapping blocks", func() error {
		var old []shippedBlock
		all, err := tryReadBlocks(bucketDir, "team-r")
		if err != nil {
			return err
		}
		for _, b := range all {
			if b.MaxTime <= end {
				old = append(old, b)
			}
		}
		var samples uint64
		for i, a := range old {
			samples += a.Stats.NumSamples
			for _, b := range old[i+1:] {
				if a.MinTime < b.MaxTime && b.MinTime < a.MaxTime {
					return fmt.Errorf("blocks %s and %s overlap", a.ULID, b.ULID)
				}
			}
		}
		if samples != want {
			return fmt.Errorf("%d blocks hold %d samples, want %d", len(old), samples, want)
		}
		return nil
	})
	res := c.query("team-r", "query", url.Values{"query": {`sum(count_over_time(replicated[12m]))`}, "time": {secs(end - 1)}})
	if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != strconv.Itoa(want) {
		t.Fatalf("count_over_time over the replicas: %+v, want %d", res.Data.Result, want)
	}
}
