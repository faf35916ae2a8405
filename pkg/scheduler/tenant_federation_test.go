package scheduler_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// TestQueryOfSeveralTenantsThroughScheduler: a query naming several
// tenants (tenant federation) is queued under all of them and reaches the
// querier with them, and its answer comes back to the frontend.
func TestQueryOfSeveralTenantsThroughScheduler(t *testing.T) {
	top := newTopology(t, func(w http.ResponseWriter, r *http.Request) {
		org, err := tenant.OrgID(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s %s", org, r.URL.RequestURI())
	})
	const org, url = "team-a|team-b", "/prometheus/api/v1/query?query=up"
	resp, err := top.front.RoundTrip(context.Background(), org, query(org, url))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != 200 || string(resp.Body) != org+" "+url {
		t.Fatalf("%d %q, want 200 %q", resp.Code, resp.Body, org+" "+url)
	}
	// An empty tenant among them is refused at the scheduler.
	if _, err := top.front.RoundTrip(context.Background(), "team-a|", query("team-a|", url)); err == nil {
		t.Fatal("a query of team-a| was answered")
	}
}
