package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// syncBuffer is a log sink the frontend's goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the logged records whose msg is msg.
func (b *syncBuffer) records(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(b.buf.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// newLoggingHarness is a frontend of cfg and opts logging to the returned
// buffer, with one querier worker running handler.
func newLoggingHarness(t *testing.T, cfg Config, handler http.Handler, opts ...Option) (*harness, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	f, err := New(cfg, nil, slog.New(slog.NewJSONHandler(logs, nil)), reg, opts...)
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
	h.addWorker(lis.Addr().String(), handler, 2)
	return h, logs
}

// TestQueryStats: with -frontend.query-stats-enabled, every query is
// logged with its statistics, the queriers' wall time (which the worker
// reports on its answer and the client never sees) is counted per tenant,
// and the answer carries Server-Timing. A ruler's queries are logged only
// with -frontend.enabled-ruler-query-stats.
func TestQueryStats(t *testing.T) {
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // a querier wall time the stats must show
		w.Header().Set("Content-Type", "application/json")
		p := `[[` + r.FormValue("start") + `,"1"]]`
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":`+p+`},{"metric":{"a":"2"},"values":`+p+`}]}}`)
	})
	cfg := defaultConfig()
	cfg.QueryStatsEnabled = true
	h, logs := newLoggingHarness(t, cfg, querier)
	req := httptest.NewRequest(http.MethodGet, "/prometheus/api/v1/query_range?"+url.Values{"query": {"up"}, "start": {"0"}, "end": {"176400"}, "step": {"3600"}}.Encode(), nil)
	req.Header.Set(tenant.HeaderName, "t1")
	req.Header.Set("User-Agent", "Grafana/12")
	rec := httptest.NewRecorder()
	h.api.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("query_range: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get(frontendpb.QuerierWallTimeHeader) != "" {
		t.Fatal("the querier's wall time header reached the client")
	}
	if st := rec.Header().Get("Server-Timing"); !strings.HasPrefix(st, "querier_wall_time;dur=") || !strings.Contains(st, ", response_time;dur=") {
		t.Fatalf("Server-Timing %q", st)
	}
	stats := logs.records("query stats")
	if len(stats) != 1 {
		t.Fatalf("%d query stats lines, want 1", len(stats))
	}
	s := stats[0]
	if s["path"] != "/prometheus/api/v1/query_range" || s["split_queries"] != 3.0 || s["status_code"] != 200.0 || s["response_series_count"] != 2.0 ||
		s["user_agent"] != "Grafana/12" || s["param_query"] != "up" || s["tenant"] != "t1" || s["source"] != "api" || s["response_size"].(float64) == 0 {
		t.Fatalf("query stats: %v", s)
	}
	if wall := s["query_wall_time_seconds"].(float64); wall < 0.06 {
		t.Fatalf("query_wall_time_seconds %v, want the 3 parts' 20ms each at least", wall)
	}
	if v := testkit.MetricSum(t, h.reg, "cortex_query_seconds_total", "user", "t1"); v < 0.06 {
		t.Fatalf("cortex_query_seconds_total{user=\"t1\"} = %v", v)
	}

	// A ruler's query (through HTTP over gRPC): counted, not logged.
	ruler := httptest.NewRequest(http.MethodGet, "/prometheus/api/v1/query?query=up", nil)
	ruler = ruler.WithContext(withRulerSource(tenant.Inject(context.Background(), "t1")))
	h.f.handler.ServeHTTP(httptest.NewRecorder(), ruler)
	if n := len(logs.records("query stats")); n != 1 {
		t.Fatalf("a ruler's query was logged without -frontend.enabled-ruler-query-stats (%d lines)", n)
	}
	if v := testkit.MetricSum(t, h.reg, "cortex_query_seconds_total", "source", "ruler"); v <= 0 {
		t.Fatalf("cortex_query_seconds_total{source=\"ruler\"} = %v", v)
	}
	h.f.cfg.EnabledRulerQueryStatsLog = true
	h.f.handler.ServeHTTP(httptest.NewRecorder(), ruler)
	if recs := logs.records("query stats"); len(recs) != 2 || recs[1]["source"] != "ruler" {
		t.Fatalf("with -frontend.enabled-ruler-query-stats: %v", recs)
	}
}

// TestQueryStatsDisabled: without -frontend.query-stats-enabled, nothing is
// logged nor counted, and the worker's header still never reaches clients.
func TestQueryStatsDisabled(t *testing.T) {
	h, logs := newLoggingHarness(t, defaultConfig(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	req := httptest.NewRequest(http.MethodGet, "/prometheus/api/v1/query?query=up", nil)
	req.Header.Set(tenant.HeaderName, "t1")
	rec := httptest.NewRecorder()
	h.api.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get(frontendpb.QuerierWallTimeHeader) != "" || rec.Header().Get("Server-Timing") != "" {
		t.Fatalf("query: %d, headers %v", rec.Code, rec.Header())
	}
	if n := len(logs.records("query stats")); n != 0 {
		t.Fatalf("%d query stats lines without -frontend.query-stats-enabled", n)
	}
	if n := testkit.MetricSum(t, h.reg, "cortex_query_seconds_total", "user", "t1"); n != 0 {
		t.Fatalf("cortex_query_seconds_total counted without -frontend.query-stats-enabled: %v", n)
	}
}
