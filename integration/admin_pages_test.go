package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestIndexPageLinksAnswer: every link of a -target=all process's index
// page answers 200 over mutual TLS, and the page links the admin pages of
// the modules that run.
func TestIndexPageLinksAnswer(t *testing.T) {
	t.Parallel()
	runtimeFile := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(runtimeFile, []byte("overrides:\n  team-a:\n    max_series_per_user: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, client := singleProcess(t,
		"-runtime-config.file="+runtimeFile,
		"-distributor.ha-tracker.enable=true",
		"-distributor.ha-tracker.store=inmemory",
		"-blocks-storage.filesystem.dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
		"-ruler-storage.filesystem.dir="+t.TempDir(),
		"-configs.database.uri=file:"+filepath.Join(t.TempDir(), "configs.db"),
		"-alertmanager.storage.path="+t.TempDir(),
	)
	base := "https://" + p.HTTPAddr
	code, index := get(t, client, base+"/")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d %s", code, index)
	}
	var links []string
	for _, m := range regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(index, -1) {
		links = append(links, m[1])
	}
	for _, want := range []string{"/config", "/runtime_config", "/services", "/metrics", "/ready", "/ingester/ring", "/distributor/all_user_stats", "/distributor/ha_tracker", "/compactor/ring", "/ingester/all_user_stats"} {
		if !slices.Contains(links, want) {
			t.Errorf("the index page does not link %s; links: %v", want, links)
		}
	}
	for _, l := range links {
		if code, body := get(t, client, base+l); code != http.StatusOK {
			t.Errorf("GET %s (linked from /): %d %.200s", l, code, body)
		}
	}
	t.Logf("%d links on the index page of -target=all answer 200", len(links))

	// Cortex's legacy paths of the pages.
	for _, l := range []string{"/ring", "/all_user_stats", "/ha-tracker"} {
		if code, body := get(t, client, base+l); code != http.StatusOK {
			t.Errorf("GET %s (Cortex's legacy path): %d %.200s", l, code, body)
		}
	}
}

// TestRuntimeConfigPageFollowsReloads: /runtime_config shows the file in
// force, ?mode=diff only what differs from the flags' defaults; a new file
// applies without a restart, and a bad one keeps the last good with an error
// naming the file and the field.
func TestRuntimeConfigPageFollowsReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second := filepath.Join(dir, "base.yaml"), filepath.Join(dir, "team.yaml")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(first, "ingester_limits:\n  max_tenants: 100\n")
	write(second, "overrides:\n  team-a:\n    max_series_per_user: 5\n")
	p, client := singleProcess(t, "-runtime-config.file="+first+","+second, "-runtime-config.reload-period=100ms", "-distributor.ingestion-rate-limit=1234")
	base := "https://" + p.HTTPAddr

	want := "ingester_limits:\n  max_tenants: 100\noverrides:\n  team-a:\n    max_series_per_user: 5\n"
	if code, body := get(t, client, base+"/runtime_config?mode=diff"); code != http.StatusOK || body != want {
		t.Errorf("/runtime_config?mode=diff: %d\n%s\nwant\n%s", code, body, want)
	}
	if code, body := get(t, client, base+"/config?mode=diff"); code != http.StatusOK || !strings.Contains(body, "ingestion_rate: 1234\n") {
		t.Errorf("/config?mode=diff: %d\n%s", code, body)
	}

	write(second, "overrides:\n  team-a:\n    max_series_per_user: 6\n")
	p.Eventually(10*time.Second, "the new file in /runtime_config", func() bool {
		_, body := tryGet(client, base+"/runtime_config?mode=diff")
		return strings.Contains(body, "max_series_per_user: 6\n")
	})

	write(second, "overrides:\n  team-a:\n    max_series_per_usr: 7\n")
	p.WaitLog(`preprocess \"` + second + `\"`)
	if out := p.Output(); !strings.Contains(out, "field max_series_per_usr not found") {
		t.Errorf("the reload error does not name the field:\n%s", grepLines(out, "runtime"))
	}
	if _, body := get(t, client, base+"/runtime_config?mode=diff"); !strings.Contains(body, "max_series_per_user: 6\n") {
		t.Errorf("after a bad file, /runtime_config shows\n%s\nwant the last good one", body)
	}
}

// TestAdminPagesNeedEveryTenant: with -auth.client-tenants-file, /config,
// /runtime_config (every tenant's limits) and /ingester/all_user_stats answer
// only identities given every tenant.
func TestAdminPagesNeedEveryTenant(t *testing.T) {
	t.Parallel()
	certs, allow := tenantACerts(t, "tenant-a")
	proc := testkit.StartCortex(t, append(append(mtlsFlags(certs), ingesterClientFlags(certs)...),
		"-auth.client-tenants-file="+allow,
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
	)...)
	admin := httpClient(tlsClient(t, clientConfig(certs, "client")))
	waitReady(proc, admin)
	tenantA := httpClient(tlsClient(t, clientConfig(certs, "tenant-a")))
	base := "https://" + proc.HTTPAddr
	for _, path := range []string{"/config", "/config?mode=diff", "/runtime_config", "/ingester/all_user_stats"} {
		if code, body := get(t, tenantA, base+path); code != http.StatusForbidden || !strings.Contains(body, `only identities given "*" in -auth.client-tenants-file`) {
			t.Errorf("tenant-a GET %s: %d %s, want 403", path, code, body)
		}
		if code, body := get(t, admin, base+path); code != http.StatusOK {
			t.Errorf("admin GET %s: %d %.200s", path, code, body)
		}
	}
}

// TestRuntimeConfigIngesterLimits: the runtime configuration's
// ingester_limits bound the ingester of a running process and change
// without a restart.
func TestRuntimeConfigIngesterLimits(t *testing.T) {
	t.Parallel()
	runtimeFile := filepath.Join(t.TempDir(), "runtime.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(runtimeFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ingester_limits:\n  max_series: 2\n")
	p, client := singleProcess(t, "-runtime-config.file="+runtimeFile, "-runtime-config.reload-period=100ms")
	c := &cluster{t: t, client: client, distributor: p}
	now := time.Now().UnixMilli()
	if code, body := c.push("team-a", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("limited", 0, now, 1), series("limited", 1, now, 1)}}); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("two series under max_series 2: %d %s", code, body)
	}
	third := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("limited", 2, now, 1)}}
	if code, body := c.push("team-a", third); code < 500 || !strings.Contains(body, "max series limit reached (-ingester.instance-limits.max-series)") {
		t.Errorf("a third series over ingester_limits.max_series 2: %d %s, want a 5xx naming the limit", code, body)
	}
	write("ingester_limits:\n  max_series: 10\n")
	p.Eventually(10*time.Second, "the third series accepted under the new limit", func() bool {
		code, _ := c.push("team-a", third)
		return code == http.StatusOK || code == http.StatusNoContent
	})
	if got := metricOf(t, client, p, `cortex_ingester_instance_limits{limit="max_series"}`); got != 10 {
		t.Errorf("cortex_ingester_instance_limits{limit=\"max_series\"} = %v, want 10", got)
	}
	// Cortex's user stats, at its path and the legacy one.
	for _, path := range []string{"/api/v1/user_stats", "/api/prom/user_stats"} {
		code, body := do(t, client, http.MethodGet, "https://"+p.HTTPAddr+path, "team-a", nil)
		if code != http.StatusOK || !strings.Contains(body, `"numSeries":3`) || !strings.Contains(body, `"ingestionRate":`) {
			t.Errorf("GET %s as team-a: %d %s, want its 3 series", path, code, body)
		}
	}
}
