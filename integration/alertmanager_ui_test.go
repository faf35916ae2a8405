package integration

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestAlertmanagerUIBoundToTenants: the alertmanager serves Alertmanager's
// web UI at /alertmanager/ to a client certificate allowed the tenant, when
// the tenant has an Alertmanager; it answers 404 for a tenant without a
// configuration and 403 for a certificate not allowed the tenant.
func TestAlertmanagerUIBoundToTenants(t *testing.T) {
	t.Parallel()
	certs, allow := tenantACerts(t, "tenant-a")
	hc := httpClient(tlsClient(t, clientConfig(certs, "client")))
	configs := startConfigsService(t, certs, hc)
	postAMConfig(t, hc, configs, "tenant-a", testkit.NewAlertWebhook(t).Config("/a"))

	flags := append(alertmanagerFlags(certs, configs, filepath.Join(t.TempDir(), "alertmanager"), filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key")),
		"-auth.client-tenants-file="+allow)
	am := testkit.StartCortex(t, flags...)
	waitReady(am, hc)
	base := "https://" + am.HTTPAddr
	waitStatus(t, am, hc, base+"/alertmanager/api/v2/status", "tenant-a", http.StatusOK)

	tenantA := httpClient(tlsClient(t, clientConfig(certs, "tenant-a")))
	tenantA.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	fetch := func(c *http.Client, path, tenantID string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Scope-OrgID", tenantID)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp, b.String()
	}

	resp, body := fetch(tenantA, "/alertmanager/", "tenant-a")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(body, "<title>Alertmanager</title>") || !strings.Contains(body, `<script src="script.js"></script>`) {
		t.Fatalf("tenant-a's page: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if !strings.HasPrefix(csp, "default-src 'none'; script-src 'self' 'sha256-") {
		t.Fatalf("tenant-a's page: Content-Security-Policy %q", csp)
	}
	resp, body = fetch(tenantA, "/alertmanager/script.js", "tenant-a")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || !strings.Contains(body, "Elm") || len(body) < 100_000 {
		t.Fatalf("tenant-a's script.js: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	resp, _ = fetch(tenantA, "/alertmanager/lib/font-awesome-4.7.0/fonts/fontawesome-webfont.woff2", "tenant-a")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "font/woff2" {
		t.Fatalf("tenant-a's font: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ = fetch(tenantA, "/alertmanager", "tenant-a"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "alertmanager/" {
		t.Fatalf("/alertmanager: %d Location %q, want 301 to alertmanager/", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A tenant without a configuration: Cortex's 404.
	resp, body = fetch(hc, "/alertmanager/", "tenant-b")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "the Alertmanager is not configured for this tenant") {
		t.Fatalf("tenant-b's page: %d %s", resp.StatusCode, body)
	}
	// A certificate not allowed the tenant, for the page and its script.
	for _, path := range []string{"/alertmanager/", "/alertmanager/script.js", "/alertmanager"} {
		resp, body = fetch(tenantA, path, "tenant-b")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `client "tenant-a" may not act for tenant "tenant-b"`) {
			t.Fatalf("tenant-a's certificate asking for tenant-b's %s: %d %s", path, resp.StatusCode, body)
		}
	}
}

// TestAlertmanagerUIRunsUnderItsContentSecurityPolicy loads the UI in a
// headless Chromium, when one is installed: the Elm application renders
// the tenant's alerts (its script ran and its API calls were answered)
// and the browser reports no Content-Security-Policy violation, under
// -server.path-prefix and -http.alertmanager-http-prefix.
func TestAlertmanagerUIRunsUnderItsContentSecurityPolicy(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if browser, err = exec.LookPath("google-chrome"); err != nil {
			t.Skip("no chromium or google-chrome on PATH")
		}
	}
	t.Parallel()
	certs := certDir(t)
	dir := t.TempDir()
	fallback := filepath.Join(dir, "fallback.yaml")
	if err := os.WriteFile(fallback, []byte("route:\n  receiver: default\nreceivers:\n  - name: default\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The browser presents no client certificate: the server asks for
	// none, and with -auth.enabled=false the requests are the default
	// tenant's. The UI is under both prefixes, which its relative links
	// and API calls must follow.
	am := testkit.StartCortex(t,
		"-target=alertmanager",
		"-server.path-prefix=/cortex",
		"-http.alertmanager-http-prefix=/am",
		"-server.http-tls-cert-path="+filepath.Join(certs, "server.crt"),
		"-server.http-tls-key-path="+filepath.Join(certs, "server.key"),
		"-auth.enabled=false",
		"-alertmanager.configs.fallback="+fallback,
		"-alertmanager-storage.filesystem.dir="+filepath.Join(dir, "configs"),
		"-alertmanager.storage.path="+filepath.Join(dir, "alertmanager"),
	)
	hc := httpClient(tlsClient(t, clientConfig(certs, "client")))
	am.WaitReady(hc, "https://"+am.HTTPAddr+"/cortex/ready")
	base := "https://" + am.HTTPAddr + "/cortex/am"
	if code, body := do(t, hc, http.MethodPost, base+"/api/v2/alerts", "", []map[string]any{{"labels": map[string]string{"alertname": "DiskFull", "severity": "page"}}}); code != http.StatusOK {
		t.Fatalf("posting an alert: %d %s", code, body)
	}

	for _, view := range []struct{ fragment, want string }{
		{"#/alerts", `alertname="DiskFull"`}, // through the redirect from the prefix
		{"/#/silences/new", "New Silence"},
		{"/#/status", "Version Information"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--user-data-dir="+t.TempDir(), "--ignore-certificate-errors", "--enable-logging=stderr", "--v=0",
			"--virtual-time-budget=10000", "--dump-dom", base+view.fragment)
		// The browser's helper processes share its process group, which
		// is killed with it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		var dom, logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &dom, &logs
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", browser, view.fragment, err, logs.String())
		}
		if !strings.Contains(dom.String(), view.want) || !strings.Contains(dom.String(), `class="navbar-brand"`) {
			t.Fatalf("%s: the rendered page lacks %q:\n%s\n%s", view.fragment, view.want, dom.String(), logs.String())
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "Content Security Policy") || strings.Contains(line, "Refused to") {
				t.Errorf("%s: %s", view.fragment, line)
			}
		}
	}
}
