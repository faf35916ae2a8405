package cortex

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestHTTPPrefixMovesTheLegacyPaths(t *testing.T) {
	c := startProcess(t, loadConfig(t, "-http.prefix=/legacy"))
	for _, path := range []string{"/legacy/api/v1/query?query=1", "/prometheus/api/v1/query?query=1", "/legacy/api/v1/status/buildinfo"} {
		if code, body := get(t, c, http.MethodGet, path, "X-Scope-OrgID", "team-a"); code != http.StatusOK || !strings.Contains(body, `"status":"success"`) {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	if code, _ := get(t, c, http.MethodGet, "/api/prom/api/v1/query?query=1", "X-Scope-OrgID", "team-a"); code != http.StatusNotFound {
		t.Errorf("GET /api/prom/api/v1/query with -http.prefix=/legacy: %d, want 404", code)
	}
	routes := c.API.Routes()
	var push []string
	for _, r := range routes {
		if strings.HasSuffix(r.Path, "/push") {
			push = append(push, r.Path)
		}
	}
	if strings.Join(push, " ") != "/api/v1/push /legacy/push" {
		t.Errorf("push paths %v, want /api/v1/push and /legacy/push", push)
	}
}

func TestHTTPPrefixEmptyServesNoLegacyPaths(t *testing.T) {
	c := startProcess(t, loadConfig(t, "-http.prefix="))
	for _, r := range c.API.Routes() {
		if strings.HasPrefix(r.Path, "/api/prom/api/") || r.Path == "/api/prom/push" {
			t.Errorf("-http.prefix= still serves %s", r.Path)
		}
	}
}

func TestHTTPPrefixRefused(t *testing.T) {
	for _, p := range []string{"api/prom", "/api/prom/", "/a b"} {
		cfg := loadConfig(t, "-http.prefix="+p)
		if _, err := New(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "-http.prefix (http_prefix)") {
			t.Errorf("-http.prefix=%q: %v", p, err)
		}
	}
}
