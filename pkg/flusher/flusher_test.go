package flusher

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// writeWAL leaves samples of tenant in a TSDB under dir with no block: only
// in the write-ahead log, as an ingester killed before cutting its head.
func writeWAL(t *testing.T, dir, tenant string) {
	t.Helper()
	db, err := tsdb.Open(filepath.Join(dir, tenant), slog.New(slog.DiscardHandler), nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	db.DisableCompactions()
	app := db.Appender(context.Background())
	now := time.Now().UnixMilli()
	for i := range int64(10) {
		if _, err := app.Append(0, labels.FromStrings("__name__", "up", "job", "a"), now-i*15_000, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func newFlusher(t *testing.T, cfg Config, dir, bucketDir string) *Flusher {
	t.Helper()
	var ingCfg ingester.Config
	fs := flag.NewFlagSet("flusher", flag.PanicOnError)
	ingCfg.RegisterFlags(fs, slog.New(slog.DiscardHandler))
	ingCfg.TSDB.RegisterFlags(fs)
	var limits validation.Limits
	limits.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	ingCfg.TSDB.Dir = dir
	bkt, err := filesystem.NewBucket(bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(cfg, ingCfg, validation.NewOverrides(limits, nil), bkt, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func shippedBlocks(t *testing.T, bucketDir, tenant string) []string {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(bucketDir, tenant, "*", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	return metas
}

// With -flusher.exit-after-flush, the service ships the WAL's samples and
// fails with dskit's ErrStopProcess, which stops the process with status 0.
func TestFlusherStopsTheProcessAfterFlushing(t *testing.T) {
	dir, bucketDir := t.TempDir(), t.TempDir()
	writeWAL(t, dir, "team-a")
	f := newFlusher(t, Config{ExitAfterFlush: true}, dir, bucketDir)
	if err := services.StartAndAwaitRunning(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	_ = f.AwaitTerminated(context.Background())
	if err := f.FailureCase(); !errors.Is(err, modules.ErrStopProcess) {
		t.Fatalf("flusher ended with %v, want modules.ErrStopProcess", err)
	}
	if got := shippedBlocks(t, bucketDir, "team-a"); len(got) != 1 {
		t.Errorf("blocks in the bucket: %v, want the head's one block", got)
	}
}

// Without it, the service flushes and then runs until stopped.
func TestFlusherKeepsRunningAfterFlushing(t *testing.T) {
	dir, bucketDir := t.TempDir(), t.TempDir()
	writeWAL(t, dir, "team-a")
	f := newFlusher(t, Config{ExitAfterFlush: false}, dir, bucketDir)
	if err := services.StartAndAwaitRunning(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the block shipped", func() bool {
		return len(shippedBlocks(t, bucketDir, "team-a")) == 1
	})
	if s := f.State(); s != services.Running {
		t.Fatalf("flusher %s after the flush, want Running", s)
	}
	if err := services.StopAndAwaitTerminated(context.Background(), f); err != nil {
		t.Fatalf("stopping: %v", err)
	}
}

// A flush that fails ends the service with the error, naming the TSDB
// directory, the tenant and the block.
func TestFlusherFailsWithTheTenantAndBlock(t *testing.T) {
	dir, bucketDir := t.TempDir(), t.TempDir()
	writeWAL(t, dir, "team-a")
	// The tenant's directory in the bucket is a file: no block goes.
	if err := os.WriteFile(filepath.Join(bucketDir, "team-a"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFlusher(t, Config{ExitAfterFlush: true}, dir, bucketDir)
	if err := services.StartAndAwaitRunning(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	_ = f.AwaitTerminated(context.Background())
	err := f.FailureCase()
	metas, _ := filepath.Glob(filepath.Join(dir, "team-a", "*", "meta.json"))
	if len(metas) != 1 {
		t.Fatalf("local blocks %v, want the head cut into one", metas)
	}
	block := filepath.Base(filepath.Dir(metas[0]))
	want := `flushing -blocks-storage.tsdb.dir "` + dir + `": shipping blocks: checking block ` + block + ` of tenant "team-a" in the bucket`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("flusher ended with %v, want an error starting %q", err, want)
	}
}
