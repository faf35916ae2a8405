package tenant

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestIDsSortsAndDropsRepeats(t *testing.T) {
	ids, err := IDs(Inject(context.Background(), "team-b|team-a|team-b"))
	if err != nil || !slices.Equal(ids, []string{"team-a", "team-b"}) {
		t.Fatalf("got %q, %v", ids, err)
	}
	org, err := OrgID(Inject(context.Background(), "team-b|team-a"))
	if err != nil || org != "team-a|team-b" {
		t.Fatalf("got %q, %v", org, err)
	}
	if _, err := IDs(Inject(context.Background(), "team-a|bad/x")); err == nil {
		t.Fatal("a tenant with '/' passed")
	}
	if err := ValidOrgID("team-a|team-b"); err != nil {
		t.Fatal(err)
	}
	if err := ValidOrgID("team-a||team-b"); err == nil {
		t.Fatal("an empty tenant passed")
	}
	_, err = ID(Inject(context.Background(), "team-a|team-b"))
	if want := `X-Scope-OrgID "team-a|team-b" names several tenants: this API acts for one tenant (only queries may read several, with -tenant-federation.enabled=true)`; err == nil || err.Error() != want {
		t.Fatalf("ID of two tenants: %v, want %s", err, want)
	}
}

func serve(h http.Handler, org string) (int, string) {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/push", nil)
	r.Header.Set(HeaderName, org)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestMiddlewaresAndSeveralTenants(t *testing.T) {
	var got string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = OrgID(r.Context())
	})
	code, body := serve(HTTPMiddleware(true, next), "team-a|team-b")
	if want := "X-Scope-OrgID \"team-a|team-b\" names several tenants: this API acts for one tenant (only queries may read several, with -tenant-federation.enabled=true)\n"; code != http.StatusBadRequest || body != want {
		t.Fatalf("single-tenant API: %d %q, want 400 %q", code, body, want)
	}
	if code, _ := serve(MultiTenantHTTPMiddleware(true, next), "team-b|team-a"); code != http.StatusOK || got != "team-a|team-b" {
		t.Fatalf("query API: %d, tenants %q", code, got)
	}
	code, body = serve(MultiTenantHTTPMiddleware(true, next), "team-a|")
	if code != http.StatusBadRequest {
		t.Fatalf("an empty tenant: %d %s, want 400", code, body)
	}
	if code, _ := serve(MultiTenantHTTPMiddleware(false, next), "team-a|team-b"); code != http.StatusOK || got != DefaultTenant {
		t.Fatalf("auth disabled: %d, tenants %q", code, got)
	}
}
