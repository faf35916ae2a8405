package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// TestTenantFederationQueriesSeveralTenants: with -tenant-federation.enabled
// a query naming team-a|team-b, through the query-frontend over mutual TLS,
// reads both tenants' series, from the ingesters and from the store-gateway,
// each labelled __tenant_id__, by PromQL and by remote read; a __tenant_id__
// matcher picks tenants; a certificate bound to team-a is refused
// team-a|team-b; -tenant-federation.max-tenant, exemplars, writes and the
// ruler's and the Alertmanager's APIs refuse several tenants with 400;
// without the flag a query of several tenants gets 400 naming it.
func TestTenantFederationQueriesSeveralTenants(t *testing.T) {
	t.Parallel()
	certs, allow := tenantACerts(t, "team-a")
	proc, c := startBlocksProcess(t, certs,
		"-auth.client-tenants-file="+allow,
		"-tenant-federation.enabled",
		"-tenant-federation.max-tenant=2",
		"-tenant-federation.max-concurrent=1",
		"-ruler.enable-api",
		"-blocks-storage.filesystem.dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
		// History older than 5 minutes is read from the store-gateway only.
		"-querier.query-ingesters-within=5m",
		"-blocks-storage.bucket-store.sync-interval=1s",
		"-compactor.cleanup-interval=1s",
	)
	// History, shipped to the bucket before the recent samples come.
	begin := time.Now().Add(-20 * time.Minute).Truncate(time.Minute)
	c.pushScrapes("team-a", "history", begin.UnixMilli(), 0, 8, 1)
	c.pushScrapes("team-b", "history", begin.UnixMilli(), 0, 4, 1)
	c.flush(proc)
	now := time.Now().UnixMilli()
	for tenantID, n := range map[string]int{"team-a": 2, "team-b": 3} {
		req := &prompb.WriteRequest{}
		for i := range n {
			req.Timeseries = append(req.Timeseries, series("fed", i, now, float64(i+1)))
		}
		if code, body := c.push(tenantID, req); code != http.StatusNoContent {
			t.Fatalf("push as %s: %d %s", tenantID, code, body)
		}
	}
	at := strconv.FormatFloat(float64(now)/1000, 'f', 3, 64)

	res := c.query("team-b|team-a", "query", url.Values{"query": {"fed"}, "time": {at}})
	var got []string
	for _, r := range res.Data.Result {
		got = append(got, r.Metric["__tenant_id__"]+"/"+r.Metric["series"])
	}
	slices.Sort(got)
	if want := []string{"team-a/0", "team-a/1", "team-b/0", "team-b/1", "team-b/2"}; !slices.Equal(got, want) {
		t.Fatalf("fed of team-a|team-b: %q, want %q", got, want)
	}

	sums := map[string]string{}
	for _, r := range c.query("team-a|team-b", "query", url.Values{"query": {"sum by (__tenant_id__) (fed)"}, "time": {at}}).Data.Result {
		sums[r.Metric["__tenant_id__"]] = r.Value[1].(string)
	}
	if sums["team-a"] != "3" || sums["team-b"] != "6" || len(sums) != 2 {
		t.Fatalf("sum by (__tenant_id__): %v, want team-a 3 and team-b 6", sums)
	}

	// A range query goes through the frontend's splitting and results cache.
	rng := url.Values{"query": {"sum by (__tenant_id__) (fed)"}, "start": {strconv.FormatInt(now/1000-60, 10)}, "end": {strconv.FormatInt(now/1000+60, 10)}, "step": {"15"}}
	if r := c.query("team-a|team-b", "query_range", rng); len(r.Data.Result) != 2 {
		t.Fatalf("range query of team-a|team-b: %+v, want two series", r.Data.Result)
	}
	if r := c.query("team-a", "query_range", rng); len(r.Data.Result) != 1 || r.Data.Result[0].Metric["__tenant_id__"] != "" {
		t.Fatalf("range query of team-a alone after team-a|team-b's: %+v, want one series without __tenant_id__", r.Data.Result)
	}

	res = c.query("team-a|team-b", "query", url.Values{"query": {`count(fed{__tenant_id__="team-a"})`}, "time": {at}})
	if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != "2" {
		t.Fatalf(`count(fed{__tenant_id__="team-a"}): %+v, want 2`, res.Data.Result)
	}
	// Remote read, in both response types, labels each series too.
	rq := &prompb.Query{StartTimestampMs: now - 60000, EndTimestampMs: now + 1000,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "fed"}, {Type: prompb.LabelMatcher_EQ, Name: "series", Value: "1"}}}
	for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		ss, err := remoteReadClient(t, proc, certs, "client", "team-a|team-b", rt).Read(context.Background(), rq, true)
		if err != nil {
			t.Fatalf("remote read %s: %v", rt, err)
		}
		got, err := readSeries(ss, now)
		want := `{__name__="fed", __tenant_id__="team-a", job="test", series="1"} 0=2` + "\n" +
			`{__name__="fed", __tenant_id__="team-b", job="test", series="1"} 0=2` + "\n"
		if err != nil || got != want {
			t.Fatalf("remote read %s of team-a|team-b:\n%s(%v), want\n%s", rt, got, err, want)
		}
	}

	// The history in the bucket: the store-gateway is asked once per tenant.
	old := url.Values{"query": {"sum by (__tenant_id__) (count_over_time(history[5m]))"}, "time": {secs(begin.Add(5*time.Minute).UnixMilli() - 1)}}
	proc.EventuallyNil(60*time.Second, "both tenants' history from the store-gateway", func() error {
		res, err := c.tryQuery("team-a|team-b", "query", old)
		if err != nil {
			return err
		}
		counts := map[string]string{}
		for _, r := range res.Data.Result {
			counts[r.Metric["__tenant_id__"]] = r.Value[1].(string)
		}
		if counts["team-a"] != "16" || counts["team-b"] != "8" || len(counts) != 2 {
			return fmt.Errorf("samples per tenant %v, want team-a 16 and team-b 8", counts)
		}
		return nil
	})

	base := "https://" + proc.HTTPAddr
	code, body := do(t, c.client, http.MethodGet, base+"/prometheus/api/v1/label/__tenant_id__/values", "team-a|team-b", nil)
	if want := `{"status":"success","data":["team-a","team-b"]}`; code != http.StatusOK || body != want {
		t.Fatalf("values of __tenant_id__: %d %s, want %s", code, body, want)
	}
	code, body = do(t, c.client, http.MethodGet, base+"/prometheus/api/v1/series?match[]="+url.QueryEscape(`fed{__tenant_id__="team-b"}`), "team-a|team-b", nil)
	if code != http.StatusOK || strings.Count(body, `"__tenant_id__":"team-b"`) != 3 || strings.Contains(body, "team-a") {
		t.Fatalf("series of team-b: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, method, url, org string
		client                 *http.Client
		code                   int
		body                   string
	}{
		{"a certificate bound to team-a", http.MethodGet, base + "/prometheus/api/v1/query?query=fed", "team-a|team-b",
			httpClient(tlsClient(t, clientConfig(certs, "tenant-a"))), http.StatusForbidden, `client "tenant-a" may not act for tenant "team-b"`},
		{"over -tenant-federation.max-tenant", http.MethodGet, base + "/prometheus/api/v1/query?query=fed", "team-a|team-b|team-c",
			c.client, http.StatusBadRequest, `X-Scope-OrgID \"team-a|team-b|team-c\" names 3 tenants, more than -tenant-federation.max-tenant=2 allows one query`},
		{"exemplars", http.MethodGet, base + "/prometheus/api/v1/query_exemplars?query=fed", "team-a|team-b",
			c.client, http.StatusBadRequest, `X-Scope-OrgID "team-a|team-b" names several tenants: this API acts for one tenant`},
		{"a write", http.MethodPost, base + "/api/v1/push", "team-a|team-b",
			c.client, http.StatusBadRequest, `X-Scope-OrgID "team-a|team-b" names several tenants: this API acts for one tenant`},
		{"the tenant's ingestion stats", http.MethodGet, base + "/api/v1/user_stats", "team-a|team-b",
			c.client, http.StatusBadRequest, `X-Scope-OrgID "team-a|team-b" names several tenants: this API acts for one tenant`},
		{"an OTLP write", http.MethodPost, base + "/api/v1/otlp/v1/metrics", "team-a|team-b",
			c.client, http.StatusBadRequest, `X-Scope-OrgID "team-a|team-b" names several tenants: this API acts for one tenant`},
		{"the ruler's API", http.MethodGet, base + "/api/v1/rules", "team-a|team-b",
			c.client, http.StatusBadRequest, `X-Scope-OrgID "team-a|team-b" names several tenants: this API acts for one tenant`},
		{"the Alertmanager's API", http.MethodGet, base + "/alertmanager/api/v2/status", "team-a|team-b",
			c.client, http.StatusBadRequest, `X-Scope-OrgID "team-a|team-b" names several tenants: this API acts for one tenant`},
	} {
		code, body := do(t, tc.client, tc.method, tc.url, tc.org, nil)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %s, want %d with %s", tc.name, code, body, tc.code, tc.body)
		}
	}

	// Without the flag: 400 naming it.
	off, oc := startBlocksProcess(t, certs,
		"-blocks-storage.filesystem.dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir())
	code, body = do(t, oc.client, http.MethodGet, "https://"+off.HTTPAddr+"/prometheus/api/v1/query?query=fed", "team-a|team-b", nil)
	if want := `X-Scope-OrgID \"team-a|team-b\" names 2 tenants but tenant federation is off: a query reads one tenant unless -tenant-federation.enabled=true`; code != http.StatusBadRequest || !strings.Contains(body, want) {
		t.Errorf("without -tenant-federation.enabled: %d %s, want 400 with %s", code, body, want)
	}
}
