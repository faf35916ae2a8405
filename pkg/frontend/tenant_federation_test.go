package frontend

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// federatedHarness is a frontend with fed's settings in front of api,
// which sees each query as one tenant; orgs gets the X-Scope-OrgID that
// reached the querier.
func federatedHarness(t *testing.T, fed tenantfederation.Config, api http.Handler, orgs chan<- string) *harness {
	t.Helper()
	cfg := defaultConfig()
	cfg.CacheResults = true
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		org, _ := tenant.OrgID(r.Context())
		select {
		case orgs <- org:
		default:
		}
		api.ServeHTTP(w, r.WithContext(tenant.Inject(r.Context(), "one")))
	})
	h := newHarness(t, cfg, querier, 2)
	WithTenantFederation(fed)(h.f)
	h.api = tenant.MultiTenantHTTPMiddleware(true, h.f.Handler())
	return h
}

func TestFederatedQueryIsCachedUnderAllItsTenants(t *testing.T) {
	api := newPromAPI(t)
	orgs := make(chan string, 1)
	h := federatedHarness(t, tenantfederation.Config{Enabled: true, MaxConcurrent: 16}, api, orgs)
	params := rangeParams(`rate(metric_a[5m])`, 3600, 32*3600, 300) // 2 parts, both in the distant past
	code, first := h.get(context.Background(), "t2|t1", "/prometheus/api/v1/query_range", params)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, first)
	}
	if org := <-orgs; org != "t1|t2" {
		t.Fatalf("the querier was asked as %q, want t1|t2", org)
	}
	calls := api.calls.Load()
	// The same tenants in another order: the same cache entries.
	if code, second := h.get(context.Background(), "t1|t2|t1", "/prometheus/api/v1/query_range", params); code != http.StatusOK || second != first || api.calls.Load() != calls {
		t.Fatalf("t1|t2 after t2|t1: %d, %d more querier calls; want the cached answer", code, api.calls.Load()-calls)
	}
	// One of the tenants alone shares nothing with the query of both.
	if _, _ = h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params); api.calls.Load() != calls+2 {
		t.Fatalf("tenant t1 alone was served from t1|t2's cache")
	}
}

func TestFrontendRefusesSeveralTenants(t *testing.T) {
	api := newPromAPI(t)
	for _, tc := range []struct {
		name string
		fed  tenantfederation.Config
		org  string
		path string
		want string
	}{
		{"federation off", tenantfederation.Config{MaxConcurrent: 16}, "t1|t2", "/prometheus/api/v1/query",
			`X-Scope-OrgID \"t1|t2\" names 2 tenants but tenant federation is off: a query reads one tenant unless -tenant-federation.enabled=true`},
		{"over max-tenant", tenantfederation.Config{Enabled: true, MaxConcurrent: 16, MaxTenant: 2}, "t3|t1|t2", "/prometheus/api/v1/query_range",
			`X-Scope-OrgID \"t1|t2|t3\" names 3 tenants, more than -tenant-federation.max-tenant=2 allows one query`},
		{"exemplars", tenantfederation.Config{Enabled: true, MaxConcurrent: 16}, "t1|t2", "/prometheus/api/v1/query_exemplars",
			`X-Scope-OrgID \"t1|t2\" names several tenants: /prometheus/api/v1/query_exemplars reads one tenant`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := federatedHarness(t, tc.fed, api, nil)
			before := api.calls.Load()
			code, body := h.get(context.Background(), tc.org, tc.path, rangeParams("metric_a", 0, 60, 15))
			if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want 400 with %s", code, body, tc.want)
			}
			if api.calls.Load() != before {
				t.Fatal("the refused query reached a querier")
			}
		})
	}
}
