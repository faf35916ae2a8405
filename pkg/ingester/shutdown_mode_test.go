package ingester

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func call(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestShutdownHandlerFlushesAndLeaves: with flushing on shutdown and
// unregistering both off in the configuration, POST /ingester/shutdown
// still ships every head and removes the instance from the ring.
func TestShutdownHandlerFlushesAndLeaves(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	store := newKV(t)
	cfg := testConfig(t, dir, store)
	cfg.TSDB.ShipInterval = time.Hour
	cfg.TSDB.FlushBlocksOnShutdown = false
	cfg.LifecyclerConfig.UnregisterOnShutdown = false
	h := startHarness(t, cfg, newTestLimits(t, nil), WithBucket(newTestBucket(t, root)))
	pushed := pushRange(h, "tenant-s", base-20*60*1000, base, 30*1000)
	srv := httptest.NewServer(h.ing.ShutdownHandler())
	defer srv.Close()

	if code, body := call(t, http.MethodGet, srv.URL); code != http.StatusMethodNotAllowed || !strings.Contains(body, "needs POST") {
		t.Errorf("GET: %d %q, want 405 saying POST", code, body)
	}
	if _, ok := ringDesc(t, store).Ingesters[cfg.LifecyclerConfig.ID]; !ok {
		t.Fatal("instance not in the ring before the shutdown")
	}
	if code, body := call(t, http.MethodPost, srv.URL); code != http.StatusNoContent {
		t.Fatalf("POST: %d %s", code, body)
	}
	sameCounts(t, "samples in the bucket after the shutdown", bucketSamples(t, root, "tenant-s"), pushed)
	if _, ok := ringDesc(t, store).Ingesters[cfg.LifecyclerConfig.ID]; ok {
		t.Error("instance still in the ring after the shutdown")
	}
	if code, body := call(t, http.MethodPost, srv.URL); code != http.StatusServiceUnavailable || !strings.Contains(body, "ingester is terminated") {
		t.Errorf("second POST: %d %q, want 503 naming the terminated ingester", code, body)
	}
}

// TestShutdownHandlerReportsFailedFlush: the ingester stops even when its
// blocks cannot be shipped, and the answer says so.
func TestShutdownHandlerReportsFailedFlush(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	cfg := testConfig(t, dir, newKV(t))
	cfg.TSDB.ShipInterval = time.Hour
	bkt := newTestBucket(t, root)
	h := startHarness(t, cfg, newTestLimits(t, nil), WithBucket(bkt))
	pushRange(h, "tenant-f", base-20*60*1000, base, 30*1000)
	bkt.down.Store(true)
	srv := httptest.NewServer(h.ing.ShutdownHandler())
	defer srv.Close()
	code, body := call(t, http.MethodPost, srv.URL)
	if code != http.StatusInternalServerError || !strings.Contains(body, "flushing failed; the data stays on local disk for the next start") {
		t.Fatalf("POST with the bucket down: %d %q, want 500 naming the failed flush", code, body)
	}
	if s := h.ing.State().String(); s != "Terminated" {
		t.Errorf("ingester %s after the shutdown, want Terminated", s)
	}
}

// TestModeHandler: GET reads the mode, POST switches the ring entry's
// read-only flag, a GET naming a mode is refused.
func TestModeHandler(t *testing.T) {
	store := newKV(t)
	cfg := testConfig(t, t.TempDir(), store)
	h := startHarness(t, cfg, newTestLimits(t, nil))
	srv := httptest.NewServer(h.ing.ModeHandler())
	defer srv.Close()
	readOnly := func() bool { return ringDesc(t, store).Ingesters[cfg.LifecyclerConfig.ID].ReadOnly }

	testkit.Eventually(t, 10*time.Second, "the ingester ACTIVE", func() bool {
		code, body := call(t, http.MethodGet, srv.URL)
		return code == http.StatusOK && body == "Ingester mode ACTIVE"
	})
	if code, body := call(t, http.MethodGet, srv.URL+"?mode=READONLY"); code != http.StatusMethodNotAllowed || !strings.Contains(body, "changing the ingester mode needs POST") {
		t.Errorf("GET ?mode=READONLY: %d %q, want 405", code, body)
	}
	if readOnly() {
		t.Fatal("read-only after a refused GET")
	}
	if code, body := call(t, http.MethodPost, srv.URL+"?mode=readonly"); code != http.StatusOK || body != "Ingester mode READONLY" {
		t.Fatalf("POST ?mode=readonly: %d %q", code, body)
	}
	if !readOnly() {
		t.Error("the ring entry is not read-only")
	}
	if code, body := call(t, http.MethodGet, srv.URL); code != http.StatusOK || body != "Ingester mode READONLY" {
		t.Errorf("GET: %d %q", code, body)
	}
	if code, body := call(t, http.MethodPost, srv.URL+"?mode=PENDING"); code != http.StatusBadRequest || !strings.Contains(body, `invalid mode "PENDING": want mode=READONLY or mode=ACTIVE`) {
		t.Errorf("POST ?mode=PENDING: %d %q, want 400", code, body)
	}
	if code, body := call(t, http.MethodPost, srv.URL+"?mode=ACTIVE"); code != http.StatusOK || body != "Ingester mode ACTIVE" {
		t.Fatalf("POST ?mode=ACTIVE: %d %q", code, body)
	}
	if readOnly() {
		t.Error("the ring entry is still read-only")
	}
	h.stop()
	if code, body := call(t, http.MethodGet, srv.URL); code != http.StatusServiceUnavailable || !strings.Contains(body, "ingester is terminated") {
		t.Errorf("GET on a stopped ingester: %d %q, want 503", code, body)
	}
}

// TestReadOnlyModeSurvivesRestart: the mode is kept in the tokens file in
// Cortex's format, so an ingester unregistered on shutdown comes back
// read-only; made writable, it comes back ACTIVE.
func TestReadOnlyModeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	tokensPath := filepath.Join(t.TempDir(), "tokens")
	store := newKV(t)
	cfg := testConfig(t, dir, store)
	cfg.LifecyclerConfig.TokensFilePath = tokensPath
	h := startHarness(t, cfg, newTestLimits(t, nil))
	if err := h.ing.SetReadOnly(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	tokens := h.ing.lifecycler.GetTokens()
	h.stop()
	raw, err := os.ReadFile(tokensPath)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		PreviousState string   `json:"previousState"`
		Tokens        []uint32 `json:"tokens"`
	}
	if err := json.Unmarshal(raw, &f); err != nil || f.PreviousState != "READONLY" || !slices.Equal(f.Tokens, tokens) {
		t.Fatalf("tokens file %s (%v), want previousState READONLY and the tokens", raw, err)
	}
	if _, ok := ringDesc(t, store).Ingesters[cfg.LifecyclerConfig.ID]; ok {
		t.Fatal("the instance is still in the ring: the flag would come from there")
	}

	h = startHarness(t, cfg, newTestLimits(t, nil))
	if m := h.ing.Mode(); m != ModeReadOnly {
		t.Fatalf("mode %s after the restart, want READONLY", m)
	}
	if inst := ringDesc(t, store).Ingesters[cfg.LifecyclerConfig.ID]; !inst.ReadOnly || !slices.Equal(inst.Tokens, tokens) {
		t.Fatalf("ring entry after the restart: read-only %v, same tokens %v", inst.ReadOnly, slices.Equal(inst.Tokens, tokens))
	}
	if err := h.ing.SetReadOnly(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	h.stop()
	h = startHarness(t, cfg, newTestLimits(t, nil))
	testkit.Eventually(t, 10*time.Second, "ACTIVE after the restart", func() bool { return h.ing.Mode() == ModeActive })
}
