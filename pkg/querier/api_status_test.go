package querier

import (
	"net/http"
	"testing"
)

// Paths of Prometheus's API that a Cortex cluster does not serve answer 404
// with Prometheus's not_found error; a served path asked with another
// method answers 405, as Prometheus's router does.
func TestAPIUnservedPaths(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{})
	for _, path := range []string{
		"/prometheus/api/v1/status/config",
		"/prometheus/api/v1/status/flags",
		"/prometheus/api/v1/status/runtimeinfo",
		"/prometheus/api/v1/targets",
		"/prometheus/api/v1/targets/metadata",
		"/prometheus/api/v1/alertmanagers",
		"/api/prom/api/v1/no_such_path",
	} {
		code, body := get(t, srv, path, "team-a")
		if want := `{"status":"error","errorType":"not_found","error":"` + path + ` is not served by the Prometheus API of this cluster"}`; code != http.StatusNotFound || body != want {
			t.Errorf("GET %s: got %d %s, want 404 %s", path, code, body, want)
		}
	}
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/prometheus/api/v1/query", "GET, POST"},
		{http.MethodPost, "/prometheus/api/v1/status/buildinfo", "GET"},
		{http.MethodPost, "/prometheus/api/v1/status/tsdb", "GET"},
		{http.MethodPut, "/api/prom/api/v1/format_query", "GET, POST"},
		{http.MethodGet, "/prometheus/api/v1/read", "POST"},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Scope-OrgID", "team-a")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: got %d Allow %q, want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
		}
	}
	// The tenant is checked before the path.
	if code, _ := get(t, srv, "/prometheus/api/v1/status/config", ""); code != http.StatusUnauthorized {
		t.Errorf("no tenant: got %d, want 401", code)
	}
}
