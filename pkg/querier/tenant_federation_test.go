package querier

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// federatedServer serves a querier over three fake ingesters holding
// team-a's and team-b's series, with the given federation settings, behind
// the query APIs' tenant middleware.
func federatedServer(t *testing.T, fed tenantfederation.Config, overrides map[string]*validation.Limits) *httptest.Server {
	t.Helper()
	var addrs []string
	var ingesters []*fakeIngester
	for range 3 {
		f := newFakeIngester()
		ingesters = append(ingesters, f)
		addrs = append(addrs, serve(t, f))
	}
	for _, f := range ingesters {
		f.add("team-a", series(map[string]string{"__name__": "up", "job": "a"}, sample(t0, 1)))
		f.add("team-b", series(map[string]string{"__name__": "up", "job": "b"}, sample(t0, 2)),
			series(map[string]string{"__name__": "up", "job": "c"}, sample(t0, 3)))
	}
	var limits validation.Limits
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	limits.RegisterFlags(fs)
	var clientCfg client.Config
	clientCfg.RegisterFlags(fs)
	q, err := New(defaultConfig(), clientCfg, nil, validation.NewOverrides(limits, func() map[string]*validation.Limits { return overrides }), newRing(t, 3, addrs...), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), WithTenantFederation(fed))
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), q) })
	s := httptest.NewServer(tenant.MultiTenantHTTPMiddleware(true, q.Handler()))
	t.Cleanup(s.Close)
	return s
}

func TestQuerierReadsEveryTenantOfAFederatedQuery(t *testing.T) {
	srv := federatedServer(t, tenantfederation.Config{Enabled: true, MaxConcurrent: 2, MaxTenant: 2}, nil)
	at := url.Values{"time": {"1700000000"}}
	q := func(query string) string { at.Set("query", query); return "/prometheus/api/v1/query?" + at.Encode() }

	code, body := get(t, srv, q("sum by (__tenant_id__) (up)"), "team-b|team-a")
	if want := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__tenant_id__":"team-a"},"value":[1700000000,"1"]},{"metric":{"__tenant_id__":"team-b"},"value":[1700000000,"5"]}]}}`; code != http.StatusOK || body != want {
		t.Fatalf("sum by tenant: %d %s\nwant %s", code, body, want)
	}
	code, body = get(t, srv, q(`up{__tenant_id__="team-b", job="c"}`), "team-a|team-b")
	if want := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","__tenant_id__":"team-b","job":"c"},"value":[1700000000,"3"]}]}}`; code != http.StatusOK || body != want {
		t.Fatalf("a __tenant_id__ matcher: %d %s\nwant %s", code, body, want)
	}
	// One tenant: no __tenant_id__ label, as before.
	code, body = get(t, srv, q("up"), "team-a")
	if want := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000,"1"]}]}}`; code != http.StatusOK || body != want {
		t.Fatalf("one tenant: %d %s\nwant %s", code, body, want)
	}
	code, body = get(t, srv, "/prometheus/api/v1/label/job/values?match[]="+url.QueryEscape(`{__tenant_id__="team-b"}`), "team-a|team-b")
	if want := `{"status":"success","data":["b","c"]}`; code != http.StatusOK || body != want {
		t.Fatalf("label values: %d %s, want %s", code, body, want)
	}
	for _, tc := range []struct{ path, org, want string }{
		{q("up"), "team-a|team-b|team-c", `"errorType":"bad_data","error":"X-Scope-OrgID \"team-a|team-b|team-c\" names 3 tenants, more than -tenant-federation.max-tenant=2 allows one query"`},
		{"/prometheus/api/v1/query_exemplars?query=up", "team-a|team-b", `"errorType":"bad_data","error":"X-Scope-OrgID \"team-a|team-b\" names several tenants: /prometheus/api/v1/query_exemplars reads one tenant"`},
	} {
		code, body := get(t, srv, tc.path, tc.org)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s as %s: %d %s, want 400 with %s", tc.path, tc.org, code, body, tc.want)
		}
	}
}

func TestQuerierRefusesSeveralTenantsWithoutFederation(t *testing.T) {
	srv := federatedServer(t, tenantfederation.Config{MaxConcurrent: 16}, nil)
	// Even a query that reads no series: the tenants are refused first.
	code, body := get(t, srv, "/prometheus/api/v1/query?query=1", "team-a|team-b")
	if want := `"errorType":"bad_data","error":"X-Scope-OrgID \"team-a|team-b\" names 2 tenants but tenant federation is off: a query reads one tenant unless -tenant-federation.enabled=true"`; code != http.StatusBadRequest || !strings.Contains(body, want) {
		t.Fatalf("%d %s, want 400 with %s", code, body, want)
	}
}

func TestFederatedQueryObeysTheSmallestExpressionLimit(t *testing.T) {
	var small validation.Limits
	small.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	small.MaxQueryExpressionSizeBytes = 10
	srv := federatedServer(t, tenantfederation.Config{Enabled: true, MaxConcurrent: 16}, map[string]*validation.Limits{"team-b": &small})
	path := "/prometheus/api/v1/query?" + url.Values{"query": {"sum(up) by (job)"}, "time": {"1700000000"}}.Encode()
	if code, body := get(t, srv, path, "team-a"); code != http.StatusOK {
		t.Fatalf("team-a alone: %d %s", code, body)
	}
	code, body := get(t, srv, path, "team-a|team-b")
	if code != http.StatusBadRequest || !strings.Contains(body, "max-query-expression-size-bytes") {
		t.Fatalf("team-a|team-b: %d %s, want 400 naming team-b's expression size limit", code, body)
	}
}
