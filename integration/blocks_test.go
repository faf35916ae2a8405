package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

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
// filesystem bucket.
func readBlocks(t *testing.T, bucketDir, tenantID string) []shippedBlock {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(bucketDir, tenantID, "*", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []shippedBlock
	for _, m := range metas {
		raw, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		var b shippedBlock
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		blocks = append(blocks, b)
	}
	return blocks
}

// TestIngesterShipsBlocksToBucket: an ingester with one-minute blocks,
// mutual TLS on every link, ships history pushed through the distributor to
// the filesystem bucket, and POST /ingester/flush ships the head, each
// block under its tenant with Cortex's meta.json labels.
func TestIngesterShipsBlocksToBucket(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	bucketDir := filepath.Join(t.TempDir(), "bucket")
	p := testkit.StartCortex(t, append(append(mtlsFlags(certs), ingesterClientFlags(certs)...),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
		"-blocks-storage.tsdb.block-ranges-period=1m",
		"-blocks-storage.tsdb.ship-interval=1s",
		"-blocks-storage.tsdb.head-compaction-interval=1s",
		"-blocks-storage.filesystem.dir="+bucketDir,
	)...)
	c := &cluster{t: t, certs: certs, distributor: p, querier: p, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	waitReady(p, c.client)

	// Ten minutes of history, one sample every 15s, for two series.
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	const samplesPerSeries = 40
	for i := range samplesPerSeries {
		ts := start + int64(i)*15_000
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("shipped", 0, ts, float64(i)), series("shipped", 1, ts, float64(i))}}
		if code, body := c.push("team-a", req); code != http.StatusOK {
			t.Fatalf("push %d: %d %s", i, code, body)
		}
	}

	// Head compaction cuts the older minutes into blocks, and the ship
	// loop uploads them.
	p.Eventually(60*time.Second, "blocks of team-a in the bucket", func() bool { return len(readBlocks(t, bucketDir, "team-a")) >= 5 })

	// Flushing ships the rest of the head: every sample is in the bucket.
	code, body := do(t, c.client, http.MethodPost, "https://"+p.HTTPAddr+"/ingester/flush", "", nil)
	if code != http.StatusNoContent {
		t.Fatalf("POST /ingester/flush: %d %s", code, body)
	}
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
	if samples != 2*samplesPerSeries {
		t.Errorf("the bucket holds %d samples, want %d", samples, 2*samplesPerSeries)
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
