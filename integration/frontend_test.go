package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// frontendCluster is an ingester (replication factor 1), a distributor, a
// query-frontend and two queriers pulling from it, each its own process,
// with mutual TLS on every HTTP and gRPC link.
type frontendCluster struct {
	*cluster
	frontend *testkit.Cortex
	queriers []*testkit.Cortex
}

// startQuerier runs a querier pulling from the frontend with leaf's certificate.
func (c *frontendCluster) startQuerier(leaf string) *testkit.Cortex {
	c.t.Helper()
	return c.start(
		"-target=querier",
		"-distributor.replication-factor=1",
		"-querier.frontend-address="+c.frontend.GRPCAddr,
		"-querier.worker-parallelism=2",
		// The kill test's subqueries take 48,000 steps each, to run long.
		"-querier.max-subquery-steps=50000",
		"-querier.frontend-client.tls-cert-path="+filepath.Join(c.certs, leaf+".crt"),
		"-querier.frontend-client.tls-key-path="+filepath.Join(c.certs, leaf+".key"),
		"-querier.frontend-client.tls-ca-path="+filepath.Join(c.certs, "root.crt"),
	)
}

func newFrontendCluster(t *testing.T) *frontendCluster {
	t.Helper()
	base := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	base.ingDirs = []string{filepath.Join(base.dir, "ingester-0")}
	base.client = httpClient(tlsClient(t, clientConfig(base.certs, "client")))
	c := &frontendCluster{cluster: base}
	c.ingesters = []*testkit.Cortex{c.start("-target=ingester", "-distributor.replication-factor=1", "-ingester.lifecycler.ID=ingester-0",
		"-ingester.lifecycler.addr=127.0.0.1", "-blocks-storage.tsdb.dir="+c.ingDirs[0])}
	c.distributor = c.start("-target=distributor", "-distributor.replication-factor=1")
	c.frontend = testkit.StartCortex(t, append(mtlsFlags(c.certs),
		"-target=query-frontend",
		"-ring.store=memberlist", // the frontend uses no ring; any store but the in-memory one passes validation
		"-memberlist.bind-port=0",
		"-querier.split-queries-by-interval=2m",
		"-frontend.cache-results=true",
		"-frontend.log-queries-longer-than=1ms",
		"-log.level=info",
	)...)
	c.frontend.EventuallyNil(10*time.Second, "the frontend to be unready for want of a querier", func() error {
		code, body := tryGet(c.client, "https://"+c.frontend.HTTPAddr+"/ready")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "no querier connected") {
			return fmt.Errorf("/ready: %d %s", code, body)
		}
		return nil
	})
	for range 2 {
		c.queriers = append(c.queriers, c.startQuerier("client"))
	}
	c.querier = c.queriers[0]
	for _, p := range append([]*testkit.Cortex{c.distributor, c.frontend, c.ingesters[0]}, c.queriers...) {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, 1)
	for _, q := range c.queriers {
		c.waitActiveIngesters(q, 1)
	}
	c.waitConnected(4)
	return c
}

// metric returns the value of the first sample of the frontend's /metrics
// whose line starts with prefix.
func (c *frontendCluster) metric(prefix string) float64 {
	c.t.Helper()
	return metricOf(c.t, c.client, c.frontend, prefix)
}

func (c *frontendCluster) waitConnected(n float64) {
	c.t.Helper()
	c.frontend.EventuallyNil(15*time.Second, fmt.Sprintf("%v connected querier workers", n), func() error {
		if got := c.metric("cortex_query_frontend_connected_clients"); got != n {
			return fmt.Errorf("cortex_query_frontend_connected_clients = %v", got)
		}
		return nil
	})
}

// raw runs a Prometheus API call on p and returns the status and body.
func (c *frontendCluster) raw(p *testkit.Cortex, tenantID, path string, params url.Values) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", "https://"+p.HTTPAddr+"/prometheus/api/v1/"+path+"?"+params.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", tenantID)
	client := &http.Client{Transport: c.client.Transport, Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", p.HTTPAddr, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func secs(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }

// TestQueryFrontendMutualTLS queries through a query-frontend whose
// queriers pull over mutual TLS: answers equal the queriers' own, the
// results cache serves repeats, a querier killed mid-query costs nothing,
// and a querier with a foreign certificate is refused.
func TestQueryFrontendMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six processes")
	}
	t.Parallel()
	c := newFrontendCluster(t)
	const nSeries = 30
	base := time.Now().Add(-16 * time.Minute).Truncate(time.Minute).UnixMilli()
	for step := int64(0); step < 60; step++ {
		req := &prompb.WriteRequest{}
		for i := 0; i < nSeries; i++ {
			req.Timeseries = append(req.Timeseries, series("fe_metric", i, base+step*15000, float64(i*10)+float64(step%7)))
		}
		if code, body := c.push("tenant-a", req); code != http.StatusNoContent {
			t.Fatalf("push step %d: %d %s", step, code, body)
		}
	}
	end := base + 59*15000

	// Instant and range queries: the same bytes through the frontend
	// (split in 2m parts, merged, cached) as from a querier directly.
	instant := []string{`sum(fe_metric)`, `fe_metric{series="3"}`, `rate(fe_metric[2m])`, `topk(3, fe_metric offset 1m)`, `max_over_time(fe_metric[5m:20s])`}
	ranged := []string{`sum(fe_metric)`, `rate(fe_metric[1m])`, `fe_metric{series=~"1.*"} offset 2m`, `fe_metric{series="2"} @ start()`, `sum(fe_metric @ end())`,
		`max_over_time(sum(fe_metric)[3m:30s])`, `count by (series) (fe_metric > 50)`}
	for round := range 2 { // the second round is answered from the results cache
		for _, q := range instant {
			params := url.Values{"query": {q}, "time": {secs(end - 17000)}}
			wantCode, want := c.raw(c.queriers[0], "tenant-a", "query", params)
			gotCode, got := c.raw(c.frontend, "tenant-a", "query", params)
			if wantCode != 200 || gotCode != wantCode || got != want {
				t.Fatalf("round %d instant %s: frontend %d %.300s\nquerier %d %.300s", round, q, gotCode, got, wantCode, want)
			}
		}
		for _, q := range ranged {
			for _, step := range []string{"15", "20", "60"} {
				params := url.Values{"query": {q}, "start": {secs(base + 37000)}, "end": {secs(end)}, "step": {step}}
				wantCode, want := c.raw(c.queriers[0], "tenant-a", "query_range", params)
				gotCode, got := c.raw(c.frontend, "tenant-a", "query_range", params)
				if wantCode != 200 || gotCode != wantCode || got != want || !strings.Contains(got, `"values"`) {
					t.Fatalf("round %d range %s step %s: frontend %d %.300s\nquerier %d %.300s", round, q, step, gotCode, got, wantCode, want)
				}
			}
		}
	}
	if hits := c.metric(`cortex_cache_hits{name="frontend.fifocache"}`); hits == 0 {
		t.Errorf("no results cache hits after repeating the range queries")
	}
	// Other endpoints pass through; tenants stay apart.
	for _, path := range []string{"labels", "label/series/values", "series?match[]=fe_metric"} {
		p, rawQuery, _ := strings.Cut(path, "?")
		params, _ := url.ParseQuery(rawQuery)
		_, want := c.raw(c.queriers[0], "tenant-a", p, params)
		if code, got := c.raw(c.frontend, "tenant-a", p, params); code != 200 || got != want {
			t.Errorf("%s: frontend %d %.200s, querier %.200s", path, code, got, want)
		}
	}
	if _, got := c.raw(c.frontend, "tenant-b", "query", url.Values{"query": {"fe_metric"}, "time": {secs(end)}}); strings.Contains(got, "fe_metric") {
		t.Fatalf("tenant-b sees tenant-a's series through the frontend: %s", got)
	}
	c.frontend.WaitLog("slow query detected")

	// Kill -9 a querier in the middle of a query: every answer is still
	// right. The fine subquery makes each part run long enough to be seen.
	heavy := func(i int) url.Values {
		return url.Values{"query": {fmt.Sprintf(`count_over_time(fe_metric{series!="%d"}[8m:10ms])`, i)},
			"start": {secs(end - 4*60000)}, "end": {secs(end)}, "step": {"5"}}
	}
	const nHeavy = 4
	got := make([]string, nHeavy)
	codes := make([]int, nHeavy)
	retriesBefore := c.metric("cortex_query_frontend_retries_sum")
	var wg sync.WaitGroup
	for i := range nHeavy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], got[i] = c.raw(c.frontend, "tenant-a", "query_range", heavy(i))
		}()
	}
	victim := c.queriers[1]
	victim.Eventually(20*time.Second, "the second querier to run a query", func() bool {
		return metricOf(t, c.client, victim, `prometheus_engine_queries{engine="querier"}`) > 0
	})
	victim.Kill()
	wg.Wait()
	for i := range nHeavy {
		wantCode, want := c.raw(c.queriers[0], "tenant-a", "query_range", heavy(i))
		if codes[i] != 200 || wantCode != 200 || got[i] != want {
			t.Fatalf("heavy query %d with a querier killed: frontend %d %.300s\nquerier %d %.300s", i, codes[i], got[i], wantCode, want)
		}
	}
	t.Logf("parts retried after the kill: %v", c.metric("cortex_query_frontend_retries_sum")-retriesBefore)
	if c.metric("cortex_query_frontend_retries_sum") == retriesBefore {
		t.Errorf("no query was retried: the killed querier had nothing in flight")
	}
	c.waitConnected(2)
	waitReady(c.frontend, c.client)

	// A querier whose certificate comes from a foreign CA cannot join, and
	// the frontend's log says why.
	stranger := c.startQuerier("stranger")
	stranger.WaitLog("-querier.frontend-client")
	c.frontend.WaitLog("TLS handshake refused")
	if !regexp.MustCompile(`which no CA in -server\.grpc-tls-ca-path=\S+ signed`).MatchString(c.frontend.Output()) {
		t.Fatalf("frontend log does not say why the stranger was refused:\n%s", grepLines(c.frontend.Output(), "refused"))
	}
	// The handshake was refused: the stranger cannot be among the clients.
	if n := c.metric("cortex_query_frontend_connected_clients"); n != 2 {
		t.Fatalf("cortex_query_frontend_connected_clients = %v after the stranger tried, want 2", n)
	}
	if code, body := c.raw(c.frontend, "tenant-a", "query", url.Values{"query": {"sum(fe_metric)"}, "time": {secs(end)}}); code != 200 {
		t.Fatalf("after the stranger: %d %s", code, body)
	}
}
