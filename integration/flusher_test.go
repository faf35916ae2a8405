package integration

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestFlusherShipsAKilledIngestersData: an ingester shipping to a
// filesystem bucket is killed with ten minutes of samples in its head,
// none shipped. -target=flusher on its TSDB directory, over a bucket that
// fails, exits 1 naming the tenant and the block; run again on the
// real bucket it exits 0, and the blocks it shipped hold every sample
// pushed. With -flusher.exit-after-flush=false the process stays up,
// ready, serving its metrics, until stopped.
func TestFlusherShipsAKilledIngestersData(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	tsdbDir := t.TempDir()
	bucketDir := filepath.Join(t.TempDir(), "bucket")
	// Two-hour blocks: the head is not cut within the test, so the ship
	// loop, every second, has nothing to upload before the kill.
	storage := []string{
		"-blocks-storage.tsdb.dir=" + tsdbDir,
		"-blocks-storage.tsdb.block-ranges-period=2h",
		"-blocks-storage.tsdb.ship-interval=1s",
	}
	p, c := startBlocksProcess(t, certs, append(storage, "-blocks-storage.filesystem.dir="+bucketDir)...)
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	c.pushScrapes("team-f", "flushed", start, 0, 40, 3)
	p.Kill()
	if blocks, err := tryReadBlocks(bucketDir, "team-f"); err != nil || len(blocks) != 0 {
		t.Fatalf("before the flusher: blocks %v (%v) in the bucket, want none", blocks, err)
	}

	flusher := func(bucket string, extra ...string) *testkit.Cortex {
		args := append(mtlsFlags(certs), "-target=flusher", "-blocks-storage.filesystem.dir="+bucket)
		args = append(args, storage...)
		return testkit.StartCortex(t, append(args, extra...)...)
	}
	exit := func(f *testkit.Cortex) error {
		t.Helper()
		select {
		case <-f.Done():
		case <-time.After(testkit.StartTimeout):
			t.Fatalf("the flusher did not exit within %s; output:\n%s", testkit.StartTimeout, f.Output())
		}
		return f.ExitErr()
	}

	// A bucket whose tenant directory is a file: every check of a block
	// fails.
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "team-f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f := flusher(broken)
	if err := exit(f); err == nil {
		t.Fatalf("flusher with an unwritable bucket exited 0; output:\n%s", f.Output())
	}
	local, err := filepath.Glob(filepath.Join(tsdbDir, "team-f", "*", "meta.json"))
	if err != nil || len(local) == 0 {
		t.Fatalf("no block cut from the head in %s (%v)", tsdbDir, err)
	}
	block := filepath.Base(filepath.Dir(local[0]))
	if want := `block ` + block + ` of tenant \"team-f\"`; !strings.Contains(f.Output(), want) {
		t.Errorf("the flusher's output does not name %s:\n%s", want, f.Output())
	}

	// On the real bucket: the blocks cut by the failed run go, status 0.
	f = flusher(bucketDir)
	if err := exit(f); err != nil {
		t.Fatalf("flusher: %v; output:\n%s", err, f.Output())
	}
	want := map[string]float64{}
	for s := range 40 {
		ts := start + int64(s)*15_000
		want[fmt.Sprintf(`{__name__="flushed", job="test", series="0"}@%d`, ts)] = float64(s)
		want[fmt.Sprintf(`{__name__="flushed", job="test", series="1"}@%d`, ts)] = 3 * float64(s)
	}
	got := blockSamples(t, bucketDir, "team-f")
	if len(got) != len(want) {
		t.Errorf("the bucket's blocks hold %d samples, want %d", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("sample %s: %v (found %v), want %v", k, g, ok, v)
		}
	}

	// Kept running: ready, serving metrics, stopped by SIGTERM with status 0.
	f = flusher(bucketDir, "-flusher.exit-after-flush=false")
	f.WaitLog("flush done")
	waitReady(f, c.client)
	if got := metricOf(t, c.client, f, "cortex_ingester_shipper_dir_syncs_total"); got != 1 {
		t.Errorf("cortex_ingester_shipper_dir_syncs_total %v, want 1: the tenant's directory synced once", got)
	}
	if got := metricOf(t, c.client, f, "cortex_ingester_shipper_uploads_total"); got != 0 {
		t.Errorf("cortex_ingester_shipper_uploads_total %v, want 0: every block was shipped already", got)
	}
	if code, body := get(t, c.client, "https://"+f.HTTPAddr+"/services"); code != http.StatusOK || !strings.Contains(body, "flusher: Running") {
		t.Errorf("/services: %d %s, want the flusher Running", code, body)
	}
	f.Stop()
	if err := f.ExitErr(); err != nil {
		t.Errorf("flusher stopped by SIGTERM: %v; output:\n%s", err, f.Output())
	}
}

// blockSamples opens every block of tenantID in a filesystem bucket with
// Prometheus' TSDB and returns its samples, keyed series@timestamp.
func blockSamples(t *testing.T, bucketDir, tenantID string) map[string]float64 {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(bucketDir, tenantID, "*", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, m := range metas {
		b, err := tsdb.OpenBlock(discard(), filepath.Dir(m), nil, nil)
		if err != nil {
			t.Fatalf("opening block %s: %v", filepath.Dir(m), err)
		}
		q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				key := fmt.Sprintf("%s@%d", ss.At().Labels(), ts)
				if _, dup := out[key]; dup {
					t.Errorf("sample %s in more than one block", key)
				}
				out[key] = v
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
	return out
}
