package frontend

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// newHarnessWith is newHarness with frontend options and one worker.
func newHarnessWith(t *testing.T, handler http.Handler, opts ...Option) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	f, err := New(defaultConfig(), nil, nil, reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	lis := testkit.Listen(t)
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpccodec.Codec{}))
	frontendpb.RegisterFrontendServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	h := &harness{t: t, f: f, reg: reg, api: tenant.HTTPMiddleware(true, f.Handler())}
	t.Cleanup(func() {
		_ = services.StopAndAwaitTerminated(context.Background(), f)
		srv.Stop()
	})
	h.addWorker(lis.Addr().String(), handler, 1)
	return h
}

func defaultLimits(tenants map[string]*validation.Limits) *validation.Overrides {
	var l validation.Limits
	l.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	return validation.NewOverrides(l, func() map[string]*validation.Limits { return tenants })
}

// The frontend refuses expressions over the tenant's limits itself:
// neither its splitting nor a querier parses them.
func TestExpressionLimitsBeforeParsing(t *testing.T) {
	var calls atomic.Int64
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
	})
	unlimited := &validation.Limits{MaxOutstandingPerTenant: 100}
	h := newHarnessWith(t, querier, WithLimits(defaultLimits(map[string]*validation.Limits{"unlimited": unlimited})))

	n := 20000
	deep := strings.Repeat("(", n) + "up" + strings.Repeat(")", n)
	const want = `{"error":"the query expression nests deeper than the limit of 256 levels at byte 256 (-query-frontend.max-query-expression-depth): every bracket, unary operator and binary operator in a chain adds a level","errorType":"bad_data","status":"error"}`
	for _, path := range []string{"/prometheus/api/v1/query", "/prometheus/api/v1/query_range", "/api/prom/api/v1/query_exemplars"} {
		code, body := h.get(context.Background(), "t1", path, url.Values{"query": {deep}, "start": {"0"}, "end": {"3600"}, "step": {"60"}})
		if code != http.StatusBadRequest || body != want {
			t.Errorf("%s: %d %.300s", path, code, body)
		}
	}
	// A POSTed form is checked as well.
	form := url.Values{"query": {strings.Repeat("-", n) + "up"}, "start": {"0"}, "end": {"3600"}, "step": {"60"}}
	req := httptest.NewRequest(http.MethodPost, "/prometheus/api/v1/query_range", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(tenant.HeaderName, "t1")
	rec := httptest.NewRecorder()
	h.api.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"errorType":"bad_data"`) || !strings.Contains(rec.Body.String(), "-query-frontend.max-query-expression-depth") {
		t.Errorf("POST query_range: %d %.300s", rec.Code, rec.Body.String())
	}
	for _, path := range []string{"/prometheus/api/v1/series", "/prometheus/api/v1/labels", "/prometheus/api/v1/label/job/values"} {
		code, body := h.get(context.Background(), "t1", path, url.Values{"match[]": {"up", strings.Repeat("{", n) + strings.Repeat("}", n)}})
		if code != http.StatusBadRequest || !strings.Contains(body, "the match[] expression nests deeper than the limit of 256 levels") {
			t.Errorf("%s: %d %.300s", path, code, body)
		}
	}
	long := "up" + strings.Repeat(" ", 128<<10)
	if code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query", url.Values{"query": {long}}); code != http.StatusBadRequest ||
		body != `{"error":"the query expression is 131074 bytes long, over the limit of 131072 bytes (-query-frontend.max-query-expression-size-bytes)","errorType":"bad_data","status":"error"}` {
		t.Errorf("long query: %d %.300s", code, body)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the querier was asked %d times for refused expressions", n)
	}
	// A tenant whose overrides lift the limits is served.
	if code, body := h.get(context.Background(), "unlimited", "/prometheus/api/v1/query", url.Values{"query": {strings.Repeat("(", 300) + "up" + strings.Repeat(")", 300)}}); code != http.StatusOK {
		t.Fatalf("tenant without limits: %d %s", code, body)
	}
	if calls.Load() != 1 {
		t.Fatalf("querier calls: %d, want 1", calls.Load())
	}
}

// A query answered after the server's write timeout, within the query
// timeout, reaches the client.
func TestWriteDeadlineFollowsQueryTimeout(t *testing.T) {
	release := make(chan struct{})
	var asked atomic.Bool
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(true)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	})
	h := newHarnessWith(t, querier, WithQueryTimeout(5*time.Second))
	srv := httptest.NewUnstartedServer(h.api)
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	started := time.Now()
	type answer struct {
		code int
		body string
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/prometheus/api/v1/query?query=up", nil)
		req.Header.Set(tenant.HeaderName, "t1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, string(b), err}
	}()
	testkit.Eventually(t, 5*time.Second, "the query to reach the querier", asked.Load)
	testkit.Eventually(t, 5*time.Second, "the server's write timeout to pass", func() bool { return time.Since(started) > time.Second })
	close(release)
	a := <-done
	if a.err != nil || a.code != http.StatusOK || !strings.Contains(a.body, `"resultType":"vector"`) {
		t.Fatalf("answer after the write timeout: %v %d %s", a.err, a.code, a.body)
	}
}

// A query that ran out of -querier.timeout is not tried again: each try
// would take the whole timeout. Other 5xx answers still are.
func TestTimedOutQueryNotRetried(t *testing.T) {
	var calls atomic.Int64
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.URL.Query().Get("query") == "slow" {
			_, _ = io.WriteString(w, `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"error","errorType":"unavailable","error":"too few ingesters"}`)
	})
	h := newHarnessWith(t, querier)
	code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query", url.Values{"query": {"slow"}})
	if code != http.StatusServiceUnavailable || body != `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}` || calls.Load() != 1 {
		t.Fatalf("timed out: %d %s after %d tries, want 503 after 1", code, body, calls.Load())
	}
	calls.Store(0)
	if code, _ := h.get(context.Background(), "t1", "/prometheus/api/v1/query", url.Values{"query": {"up"}}); code != http.StatusServiceUnavailable || calls.Load() != 5 {
		t.Fatalf("unavailable: %d after %d tries, want 503 after 5 (-querier.max-retries-per-request)", code, calls.Load())
	}
}

// A query that no querier answers (one took it and went away unnoticed)
// ends with a 503 naming -querier.timeout before the write deadline, rather
// than waiting for the client to give up.
func TestUnansweredQueryEndsAfterQueryTimeout(t *testing.T) {
	t.Parallel()
	var asked atomic.Bool
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(true)
		<-r.Context().Done()
	})
	h := newHarnessWith(t, querier, WithQueryTimeout(100*time.Millisecond))
	srv := httptest.NewServer(h.api)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/prometheus/api/v1/query?query=up", nil)
	req.Header.Set(tenant.HeaderName, "t1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	want := `"error":"no querier answered within 5.1s, -querier.timeout (100ms) and 5s more: context deadline exceeded","errorType":"timeout"`
	if !asked.Load() || resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), want) {
		t.Fatalf("asked %v, got %d %s, want 503 with %s", asked.Load(), resp.StatusCode, b, want)
	}
}
