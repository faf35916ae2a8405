package frontend

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// TestForwardHeadersList: a range query's split queries, and an instant
// query, carry the tenant and the -frontend.forward-headers-list headers
// only; other APIs keep the client's headers but its credentials.
func TestForwardHeadersList(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	cfg := defaultConfig()
	cfg.ForwardHeaders = []string{"x-grafana-org-id", "X-Dashboard-Uid"}
	h := newHarness(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/prometheus/api/v1/labels" {
			_, _ = w.Write([]byte(`{"status":"success","data":[]}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
	}), 2)
	get := func(path string, params url.Values) []http.Header {
		t.Helper()
		mu.Lock()
		seen = nil
		mu.Unlock()
		req := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil)
		req.Header.Set(tenant.HeaderName, "t1")
		req.Header.Set("Authorization", "Bearer secret-token")
		req.Header.Set("Cookie", "grafana_session=secret")
		req.Header.Set("X-Grafana-Org-Id", "1")
		req.Header.Set("X-Dashboard-Uid", "abc")
		req.Header.Set("X-Other", "not listed")
		rec := httptest.NewRecorder()
		h.api.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
	rangeQuery := url.Values{"query": {"up"}, "start": {"0"}, "end": {"176400"}, "step": {"3600"}}
	parts := get("/prometheus/api/v1/query_range", rangeQuery)
	parts = append(parts, get("/prometheus/api/v1/query", url.Values{"query": {"up"}})...)
	if len(parts) != 4 {
		t.Fatalf("%d querier requests for a range query of 3 parts and an instant query", len(parts))
	}
	for _, got := range parts {
		if got.Get(tenant.HeaderName) != "t1" || got.Get("X-Grafana-Org-Id") != "1" || got.Get("X-Dashboard-Uid") != "abc" {
			t.Errorf("a query lost the tenant or a listed header: %v", got)
		}
		for _, name := range []string{"Authorization", "Cookie", "X-Other"} {
			if v := got.Get(name); v != "" {
				t.Errorf("a query carried %s: %q", name, v)
			}
		}
	}
	labels := get("/prometheus/api/v1/labels", nil)
	if len(labels) != 1 || labels[0].Get("X-Other") != "not listed" || labels[0].Get("Authorization") != "" || labels[0].Get("Cookie") != "" {
		t.Fatalf("labels request headers: %v", labels)
	}
}

func TestForwardHeadersListRefusesCredentials(t *testing.T) {
	for _, name := range []string{"Authorization", "cookie", "PROXY-AUTHORIZATION"} {
		cfg := defaultConfig()
		cfg.ForwardHeaders = []string{"X-Grafana-Org-Id", name}
		want := `-frontend.forward-headers-list: "` + name + `" carries client credentials, which are never forwarded to the queriers (any holder of a querier certificate can pull queries)`
		if err := cfg.Validate(); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %s", name, err, want)
		}
	}
	cfg := defaultConfig()
	cfg.ForwardHeaders = []string{"X Bad"}
	if err := cfg.Validate(); err == nil || err.Error() != `-frontend.forward-headers-list: "X Bad" is not a header name` {
		t.Errorf("a name with a space: %v", err)
	}
}
