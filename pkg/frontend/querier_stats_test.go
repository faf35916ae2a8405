package frontend

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	querierstats "github.com/cortex-tls/cortex/pkg/querier/stats"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// The queriers' statistics of each split query (the postings the
// store-gateways touched) are summed into the query's "query stats" line,
// as Cortex's, and do not reach the client.
func TestQueryStatsSumTheQueriersStoreGatewayStats(t *testing.T) {
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		querierstats.FromContext(r.Context()).AddStoreGatewayTouchedPostings(5, 20)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[`+r.FormValue("start")+`,"1"]]}]}}`)
	})
	cfg := defaultConfig()
	cfg.QueryStatsEnabled = true
	h, logs := newLoggingHarness(t, cfg, querier)
	// Three split parts of a day.
	req := httptest.NewRequest(http.MethodGet, "/prometheus/api/v1/query_range?"+url.Values{"query": {"up"}, "start": {"0"}, "end": {"176400"}, "step": {"3600"}}.Encode(), nil)
	req.Header.Set(tenant.HeaderName, "t1")
	rec := httptest.NewRecorder()
	h.api.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("query_range: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get(querierstats.Header) != "" {
		t.Fatal("the queriers' statistics header reached the client")
	}
	recs := logs.records("query stats")
	if len(recs) != 1 {
		t.Fatalf("%d query stats lines, want 1", len(recs))
	}
	if s := recs[0]; s["store_gateway_touched_postings_count"] != 15.0 || s["store_gateway_touched_posting_bytes"] != 60.0 {
		t.Fatalf("query stats: %v", s)
	}

	// No postings touched (ingesters only): no store-gateway fields.
	h2, logs2 := newLoggingHarness(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	req = httptest.NewRequest(http.MethodGet, "/prometheus/api/v1/query?query=up", nil)
	req.Header.Set(tenant.HeaderName, "t1")
	h2.api.ServeHTTP(httptest.NewRecorder(), req)
	if recs := logs2.records("query stats"); len(recs) != 1 || recs[0]["store_gateway_touched_postings_count"] != nil {
		t.Fatalf("query stats without store-gateway reads: %v", recs)
	}
}
