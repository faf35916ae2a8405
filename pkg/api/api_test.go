package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// echoTenant answers with the tenant the route table put in the context.
var echoTenant = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, err := tenant.ID(r.Context())
	if err != nil {
		id = "none"
	}
	_, _ = io.WriteString(w, "tenant="+id)
})

func serve(t *testing.T, h http.Handler, method, path string, header ...string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestRoutesCarryTheirTenant(t *testing.T) {
	mux := http.NewServeMux()
	a := New(mux, true, "distributor,alertmanager", Auth{})
	a.route(Route{Module: "m", Methods: post, Path: "/tenant", Tenant: true, Desc: "with a tenant"}, echoTenant)
	a.route(Route{Module: "m", Methods: get, Path: "/open", Desc: "without"}, echoTenant)

	if code, body := serve(t, mux, http.MethodPost, "/tenant", tenant.HeaderName, "team-a"); code != http.StatusOK || body != "tenant=team-a" {
		t.Errorf("tenant route: %d %q", code, body)
	}
	if code, body := serve(t, mux, http.MethodPost, "/tenant"); code != http.StatusUnauthorized || !strings.Contains(body, tenant.HeaderName) {
		t.Errorf("tenant route without the header: %d %q, want 401 naming the header", code, body)
	}
	if code, body := serve(t, mux, http.MethodGet, "/open"); code != http.StatusOK || body != "tenant=none" {
		t.Errorf("route without a tenant: %d %q", code, body)
	}
	if code, _ := serve(t, mux, http.MethodGet, "/tenant"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET on a POST route: %d, want 405", code)
	}
	if code, body := serve(t, mux, http.MethodGet, "/nowhere"); code != http.StatusNotFound || !strings.Contains(body, "not found") {
		t.Errorf("unknown path: %d %q, want 404 with a short error", code, body)
	}

	// Auth disabled: every tenant route belongs to the default tenant.
	open := http.NewServeMux()
	New(open, false, "all", Auth{}).route(Route{Module: "m", Methods: post, Path: "/tenant", Tenant: true}, echoTenant)
	if code, body := serve(t, open, http.MethodPost, "/tenant"); code != http.StatusOK || body != "tenant="+tenant.DefaultTenant {
		t.Errorf("auth disabled: %d %q", code, body)
	}
}

func TestIndexLinksBrowsablePages(t *testing.T) {
	mux := http.NewServeMux()
	a := New(mux, true, "distributor,alertmanager", Auth{})
	a.route(Route{Module: "server", Methods: get, Path: "/metrics", Desc: "Prometheus metrics"}, echoTenant)
	a.route(Route{Module: "distributor", Methods: post, Path: "/api/v1/push", Tenant: true, Desc: "Remote write"}, echoTenant)
	a.route(Route{Module: "distributor", Methods: post, Path: "/api/prom/push", Tenant: true}, echoTenant)
	a.route(Route{Module: "alertmanager", Methods: get, Path: "/silence/{id}", Tenant: true, Desc: "One silence"}, echoTenant)

	code, body := serve(t, mux, http.MethodGet, "/")
	if code != http.StatusOK {
		t.Fatalf("index: %d", code)
	}
	for _, want := range []string{
		`<a href="/metrics">/metrics</a>: Prometheus metrics`,
		`<code>POST /api/v1/push</code>: Remote write (tenant in X-Scope-OrgID)`,
		`<code>GET /silence/{id}</code>`,
		"This process runs -target=distributor,alertmanager.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("index lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "/api/prom/push") {
		t.Error("index lists a route without a description")
	}
	if code, _ := serve(t, mux, http.MethodPost, "/"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", code)
	}
	if got := len(a.Routes()); got != 4 {
		t.Errorf("Routes() has %d rows, want 4", got)
	}
}
