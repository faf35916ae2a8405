package alertmanager

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
	cortextenant "github.com/cortex-tls/cortex/pkg/tenant"
)

// TestUIServedForTenantsWithAnAlertmanager: a tenant with an Alertmanager
// gets its web UI; a tenant without one gets the API's 404, as in Cortex.
func TestUIServedForTenantsWithAnAlertmanager(t *testing.T) {
	h := newHarness(t)
	h.cfgs.set("tenant-a", h.hook.Config("/a"), nil)
	am := h.start(h.config(filepath.Join(h.dir, "am")))
	waitTenants(t, am, "tenant-a")

	serve := func(tenant, path string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set(cortextenant.HeaderName, tenant)
		rec := httptest.NewRecorder()
		cortextenant.HTTPMiddleware(true, am.Handler()).ServeHTTP(rec, req)
		return rec
	}
	page := serve("tenant-a", "/alertmanager/")
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "<title>Alertmanager</title>") {
		t.Fatalf("tenant-a's page: %d %.200s", page.Code, page.Body.String())
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'; script-src 'self' 'sha256-") {
		t.Fatalf("tenant-a's page: Content-Security-Policy %q", csp)
	}
	if rec := serve("tenant-a", "/alertmanager/script.js"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Elm") {
		t.Fatalf("tenant-a's script.js: %d", rec.Code)
	}
	for _, p := range []string{"/alertmanager/", "/alertmanager/script.js"} {
		rec := serve("tenant-b", p)
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "the Alertmanager is not configured for this tenant") {
			t.Fatalf("tenant-b (no configuration) GET %s: %d %s", p, rec.Code, rec.Body.String())
		}
	}

	// Another replica asking for the page gets it with its headers.
	c := grpcHarness(t, am)
	resp, err := c.HandleRequest(cortextenant.Inject(context.Background(), "tenant-a"), &alertmanagerpb.HTTPRequest{Method: http.MethodGet, Url: "/alertmanager/"})
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{}
	for _, hd := range resp.GetHeaders() {
		headers[hd.GetKey()] = strings.Join(hd.GetValues(), ",")
	}
	if resp.GetCode() != http.StatusOK || headers["Content-Security-Policy"] != page.Header().Get("Content-Security-Policy") ||
		headers["Content-Type"] != "text/html; charset=utf-8" || headers["Cache-Control"] != "no-cache, no-store, must-revalidate" {
		t.Fatalf("forwarded page: %d %v", resp.GetCode(), headers)
	}
	resp, err = c.HandleRequest(cortextenant.Inject(context.Background(), "tenant-b"), &alertmanagerpb.HTTPRequest{Method: http.MethodGet, Url: "/alertmanager/"})
	if err != nil || resp.GetCode() != http.StatusNotFound {
		t.Fatalf("forwarded page of tenant-b: %v %v", resp, err)
	}
}
