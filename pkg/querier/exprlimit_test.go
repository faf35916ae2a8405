package querier

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Expressions over the depth or size limit are refused with 400 on every
// route that parses a tenant's PromQL, before an ingester is asked.
func TestAPIExpressionLimits(t *testing.T) {
	c, srv := apiCluster(t, clusterOpts{})
	n := 20000
	deepQueries := map[string]string{
		"parentheses": strings.Repeat("(", n) + "up" + strings.Repeat(")", n),
		"unary":       strings.Repeat("-", n) + "up",
		"binary":      "up" + strings.Repeat(" + up", n),
		"keywords":    "up" + strings.Repeat(" or up", n),
		"functions":   strings.Repeat("abs(", n) + "up" + strings.Repeat(")", n),
	}
	const depthErr = `{"status":"error","errorType":"bad_data","error":"the query expression nests deeper than the limit of 256 levels at byte `
	for name, q := range deepQueries {
		for _, path := range []string{"/query", "/query_range", "/query_exemplars"} {
			form := url.Values{"query": {q}, "time": {"1700000060"}, "start": {"1700000000"}, "end": {"1700000060"}, "step": {"15"}}
			code, body := post(t, srv, "/prometheus/api/v1"+path, form, "team-a")
			if code != http.StatusBadRequest || !strings.HasPrefix(body, depthErr) || !strings.Contains(body, "(-query-frontend.max-query-expression-depth)") {
				t.Errorf("%s on %s: %d %.300s", name, path, code, body)
			}
		}
	}
	// Selectors of the series and label routes: braces nest too.
	deepSelector := strings.Repeat("{", n) + strings.Repeat("}", n)
	for _, path := range []string{"/series", "/labels", "/label/job/values"} {
		form := url.Values{"match[]": {`up`, deepSelector}}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/prometheus/api/v1"+path+"?"+form.Encode(), nil)
		code, body := do(t, req, "team-a")
		if want := `{"status":"error","errorType":"bad_data","error":"the match[] expression nests deeper than the limit of 256 levels at byte 256 (-query-frontend.max-query-expression-depth)`; code != http.StatusBadRequest || !strings.HasPrefix(body, want) {
			t.Errorf("%s: %d %.300s", path, code, body)
		}
	}
	for i, f := range c.ingesters {
		if n := f.queries.Load(); n != 0 {
			t.Errorf("ingester %d was asked %d queries for refused expressions", i, n)
		}
	}
	// Within the limit, nesting is fine.
	ok := strings.Repeat("(", 100) + `sum(up{job="a"})` + strings.Repeat(")", 100)
	if code, body := post(t, srv, "/prometheus/api/v1/query", url.Values{"query": {ok}, "time": {"1700000060"}}, "team-a"); code != http.StatusOK || !strings.Contains(body, `"5"`) {
		t.Fatalf("100 levels: %d %s", code, body)
	}
}

func TestAPIExpressionSizeLimit(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{limits: func(l *validation.Limits) {
		l.MaxQueryExpressionSizeBytes = 64
		l.MaxQueryExpressionDepth = 0
	}})
	long := `sum(up{job="a"})` + strings.Repeat(" ", 60)
	code, body := post(t, srv, "/prometheus/api/v1/query", url.Values{"query": {long}, "time": {"1700000060"}}, "team-a")
	if want := `{"status":"error","errorType":"bad_data","error":"the query expression is 76 bytes long, over the limit of 64 bytes (-query-frontend.max-query-expression-size-bytes)"}`; code != http.StatusBadRequest || body != want {
		t.Fatalf("got %d %s\nwant 400 %s", code, body, want)
	}
	code, body = get(t, srv, "/prometheus/api/v1/series?match[]="+url.QueryEscape(`up{job=~"`+strings.Repeat("a|", 40)+`b"}`), "team-a")
	if want := `{"status":"error","errorType":"bad_data","error":"the match[] expression is 92 bytes long, over the limit of 64 bytes (-query-frontend.max-query-expression-size-bytes)"}`; code != http.StatusBadRequest || body != want {
		t.Fatalf("series: got %d %s\nwant 400 %s", code, body, want)
	}
	// Depth 0 is no limit.
	deep := strings.Repeat("(", 30) + "up" + strings.Repeat(")", 30)
	if code, body := post(t, srv, "/prometheus/api/v1/query", url.Values{"query": {deep}, "time": {"1700000060"}}, "team-a"); code != http.StatusOK {
		t.Fatalf("no depth limit: %d %s", code, body)
	}
}

// A query that runs out of -querier.timeout while the ingesters are slow
// gets Prometheus's timeout error, not the storage call's own error.
func TestAPIQueryTimeout(t *testing.T) {
	c, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.Timeout = 300 * time.Millisecond }})
	block := make(chan struct{})
	defer close(block)
	for _, f := range c.ingesters {
		f.block = block
	}
	want := `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`
	for _, path := range []string{
		"/prometheus/api/v1/query?query=sum(up)&time=1700000060",
		"/prometheus/api/v1/query_range?query=sum(up)&start=1700000000&end=1700000060&step=15",
		// The request's timeout is capped by -querier.timeout.
		"/prometheus/api/v1/query?query=sum(up)&time=1700000060&timeout=1h",
	} {
		if code, body := get(t, srv, path, "team-a"); code != http.StatusServiceUnavailable || body != want {
			t.Errorf("%s: got %d %s, want 503 %s", path, code, body, want)
		}
	}
}

// The answer of a query longer than the server's write timeout, but within
// -querier.timeout, reaches the client; one past -querier.timeout gets the
// timeout error rather than a cut connection.
func TestAPIWriteDeadlineFollowsQueryTimeout(t *testing.T) {
	c, _ := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.Timeout = 3 * time.Second }})
	srv := httptest.NewUnstartedServer(tenant.HTTPMiddleware(true, c.querier.Handler()))
	srv.Config.WriteTimeout = 500 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	block := make(chan struct{})
	for _, f := range c.ingesters {
		f.block = block
	}
	type answer struct {
		code int
		body string
		err  error
	}
	ask := func() chan answer {
		ch := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/prometheus/api/v1/query?query=sum(up)&time=1700000060", nil)
			req.Header.Set(tenant.HeaderName, "team-a")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			ch <- answer{resp.StatusCode, string(b), err}
		}()
		return ch
	}
	started := time.Now()
	slow := ask()
	testkit.Eventually(t, 5*time.Second, "the query to reach the ingesters", func() bool {
		return c.ingesters[0].queries.Load()+c.ingesters[1].queries.Load()+c.ingesters[2].queries.Load() > 0
	})
	// Past the server's write timeout, release the ingesters.
	testkit.Eventually(t, 5*time.Second, "the server's write timeout to pass", func() bool { return time.Since(started) > time.Second })
	close(block)
	a := <-slow
	if a.err != nil || a.code != http.StatusOK || !strings.Contains(a.body, `"55"`) {
		t.Fatalf("query answered after the write timeout: %v %d %s", a.err, a.code, a.body)
	}

	hang := make(chan struct{})
	defer close(hang)
	for _, f := range c.ingesters {
		f.block = hang
	}
	a = <-ask()
	if want := `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`; a.err != nil || a.code != http.StatusServiceUnavailable || a.body != want {
		t.Fatalf("query past -querier.timeout: %v %d %s, want 503 %s", a.err, a.code, a.body, want)
	}
}
