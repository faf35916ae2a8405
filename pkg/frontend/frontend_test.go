package frontend

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier/worker"
	fairqueue "github.com/cortex-tls/cortex/pkg/scheduler/queue"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

func defaultConfig() Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	return cfg
}

// harness is a frontend with a gRPC server and a querier worker pulling
// from it, running queries on handler.
type harness struct {
	t   testing.TB
	f   *Frontend
	reg *prometheus.Registry
	api http.Handler
}

func newHarness(t testing.TB, cfg Config, handler http.Handler, parallelism int) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	f, err := New(cfg, nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := services.StartAndAwaitRunning(ctx, f); err != nil {
		t.Fatal(err)
	}
	lis := testkit.Listen(t)
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpccodec.Codec{}))
	frontendpb.RegisterFrontendServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	h := &harness{t: t, f: f, reg: reg, api: tenant.HTTPMiddleware(true, f.Handler())}
	t.Cleanup(func() {
		_ = services.StopAndAwaitTerminated(ctx, f)
		srv.Stop()
	})
	if parallelism > 0 {
		h.addWorker(lis.Addr().String(), handler, parallelism)
	}
	return h
}

func (h *harness) addWorker(addr string, handler http.Handler, parallelism int) *worker.Worker {
	h.t.Helper()
	before := h.f.ConnectedWorkers()
	w, err := worker.New(worker.Config{FrontendAddress: addr, Parallelism: parallelism, DNSLookupPeriod: time.Minute,
		GRPCClientConfig: worker.GRPCClientConfig{MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 100 << 20}}, nil, handler, nil, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), w); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), w) })
	testkit.Eventually(h.t, 10*time.Second, fmt.Sprintf("%d more workers to connect", parallelism), func() bool {
		return h.f.ConnectedWorkers() >= before+parallelism
	})
	return w
}

func (h *harness) get(ctx context.Context, tenantID, path string, params url.Values) (int, string) {
	req := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil).WithContext(ctx)
	req.Header.Set(tenant.HeaderName, tenantID)
	rec := httptest.NewRecorder()
	h.api.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// promAPI answers query_range (and query) with the PromQL engine over st,
// as the querier does, with a simple encoder.
type promAPI struct {
	engine *promql.Engine
	st     storage.Queryable
	calls  atomic.Int64
	fail   func(r *http.Request) bool

	mu     sync.Mutex
	ranges *[][2]int64 // when set, the [start, end] of every query_range
}

// record starts recording the ranges of query_range calls; the returned
// function stops and returns them, sorted.
func (p *promAPI) record() func() [][2]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var got [][2]int64
	p.ranges = &got
	return func() [][2]int64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.ranges = nil
		slices.SortFunc(got, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
		return got
	}
}

func (p *promAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.calls.Add(1)
	if _, err := tenant.ID(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if p.fail != nil && p.fail(r) {
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/query_range") {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"path":%q,"method":%q}}`, r.URL.Path, r.Method)
		return
	}
	_ = r.ParseForm()
	start, _ := parseTimeMs(r.Form.Get("start"))
	end, _ := parseTimeMs(r.Form.Get("end"))
	p.mu.Lock()
	if p.ranges != nil {
		*p.ranges = append(*p.ranges, [2]int64{start, end})
	}
	p.mu.Unlock()
	step, _ := parseStepMs(r.Form.Get("step"))
	q, err := p.engine.NewRangeQuery(r.Context(), p.st, nil, r.Form.Get("query"), time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer q.Close()
	res := q.Exec(r.Context())
	if res.Err != nil {
		code := http.StatusUnprocessableEntity
		if errors.Is(res.Err, context.Canceled) {
			code = 499
		}
		http.Error(w, res.Err.Error(), code)
		return
	}
	mat, err := res.Matrix()
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	b := []byte(`{"status":"success","data":{"resultType":"matrix","result":[`)
	for i, s := range mat {
		if i > 0 {
			b = append(b, ',')
		}
		m, _ := json.Marshal(s.Metric.Map())
		b = append(b, `{"metric":`...)
		b = append(b, m...)
		b = append(b, `,"values":[`...)
		for j, pt := range s.Floats {
			if j > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, `[%s,"%s"]`, strconv.FormatFloat(float64(pt.T)/1000, 'f', -1, 64), strconv.FormatFloat(pt.F, 'f', -1, 64))
		}
		b = append(b, "]}"...)
	}
	b = append(b, "]}}"...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func newPromAPI(t testing.TB) *promAPI {
	return newPromAPIWith(t, `
load 1m
  metric_a{job="a", instance="1"} 0+1x1990
  metric_a{job="a", instance="2"} 0+2x900 _x100 5+3x900
  metric_b{job="b", instance="1"} 1+1x1500
  metric_b{job="b", instance="2"} _x500 1+1x1400
`)
}

// newPromAPIWith answers from a storage loaded with a promqltest script.
func newPromAPIWith(t testing.TB, load string) *promAPI {
	st := promqltest.LoadedStorage(t, load)
	t.Cleanup(func() { _ = st.Close() })
	eng := promqltest.NewTestEngineWithOpts(t, promql.EngineOpts{
		MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return 60_000 },
	})
	return &promAPI{engine: eng, st: st}
}

func rangeParams(query string, start, end, step float64) url.Values {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return url.Values{"query": {query}, "start": {f(start)}, "end": {f(end)}, "step": {f(step)}}
}

var equivalenceQueries = []string{
	`metric_a`,
	`rate(metric_a[5m])`,
	`sum by (job) (metric_a) + on() group_left sum(metric_b)`,
	`metric_a offset 1h`,
	`metric_b offset -30m`,
	`metric_a @ start()`,
	`rate(metric_a[10m] @ end())`,
	`metric_b @ 7200`,
	`max_over_time(metric_a[1h:5m])`,
	`avg_over_time(rate(metric_b[5m])[30m:7m] offset 10m)`,
	`max_over_time(metric_a[2h:10m] @ start())`,
	`time()`,
	`count(metric_b) or vector(0)`,
	`timestamp(metric_b)`,
}

// TestSplitMergeEquivalence: split, run and merged, a range query gives the
// bytes the whole query gives, whatever the interval and step.
func TestSplitMergeEquivalence(t *testing.T) {
	api := newPromAPI(t)
	for _, interval := range []time.Duration{24 * time.Hour, 3 * time.Hour} {
		for _, align := range []bool{false, true} {
			cfg := defaultConfig()
			cfg.SplitQueriesByInterval = interval
			cfg.AlignQueriesWithStep = align
			cfg.CacheResults = align // and asks twice: the second answer comes from the cache
			h := newHarness(t, cfg, api, 4)
			for _, step := range []float64{60, 420, 3600, 1020} {
				start, end := 5*3600+13.0, 32*3600+7.0
				for _, q := range equivalenceQueries {
					code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(q, start, end, step))
					if code != 200 {
						t.Fatalf("%s: %d %s", q, code, got)
					}
					ws, we := start, end
					if align {
						ws, we = float64(int64(start)/int64(step)*int64(step)), float64(int64(end)/int64(step)*int64(step))
					}
					req := httptest.NewRequest("GET", "/prometheus/api/v1/query_range?"+rangeParams(q, ws, we, step).Encode(), nil)
					req = req.WithContext(tenant.Inject(req.Context(), "t1"))
					rec := httptest.NewRecorder()
					api.ServeHTTP(rec, req)
					if rec.Body.String() != got {
						t.Errorf("interval %s align %v step %v %s: split answer differs from the whole query's\nsplit: %.400s\nwhole: %.400s", interval, align, step, q, got, rec.Body.String())
					}
					if !strings.Contains(got, `"values"`) {
						t.Errorf("%s: empty result %s", q, got)
					}
					if cfg.CacheResults {
						if _, again := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(q, start, end, step)); again != got {
							t.Errorf("interval %s step %v %s: the cached answer differs from the first", interval, step, q)
						}
					}
				}
			}
		}
	}
}

func TestSplitByInterval(t *testing.T) {
	day := int64(24 * time.Hour / time.Millisecond)
	parts := splitByInterval(day/2, 2*day+day/2, 60_000, day)
	if len(parts) != 3 || parts[0][0] != day/2 || parts[0][1] != day-60_000 || parts[1][0] != day || parts[2][1] != 2*day+day/2 {
		t.Fatalf("parts = %v", parts)
	}
	if p := splitByInterval(5, 5, 10, day); len(p) != 1 {
		t.Fatalf("instant-like range: %v", p)
	}
	if got := pinStartEnd(promqlParser, `foo @ start() + bar @ end()`, 1000, 2000); got != `foo @ 1.000 + bar @ 2.000` {
		t.Fatalf("pinStartEnd = %q", got)
	}
}

func TestCacheHitsInMetrics(t *testing.T) {
	api := newPromAPI(t)
	cfg := defaultConfig()
	cfg.CacheResults = true
	h := newHarness(t, cfg, api, 2)
	params := rangeParams(`rate(metric_a[5m])`, 3600, 32*3600, 300) // 2 parts, both in the distant past
	code, first := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
	if code != 200 {
		t.Fatalf("%d %s", code, first)
	}
	calls := api.calls.Load()
	if calls != 2 {
		t.Fatalf("%d querier calls, want 2 parts", calls)
	}
	code, second := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
	if code != 200 || second != first {
		t.Fatalf("cached answer differs: %d %s", code, second)
	}
	if api.calls.Load() != calls {
		t.Fatalf("second query reached the querier (%d calls)", api.calls.Load()-calls)
	}
	if hits := testutil.ToFloat64(h.f.metrics.cacheHits); hits != 2 {
		t.Fatalf("cortex_cache_hits = %v, want 2", hits)
	}
	// Another tenant shares nothing.
	if _, _ = h.get(context.Background(), "t2", "/prometheus/api/v1/query_range", params); api.calls.Load() != calls+2 {
		t.Fatalf("tenant t2 was served from t1's cache")
	}
	// Steps within -frontend.max-cache-freshness are never cached: the
	// second query reads the older steps from the cache and asks the
	// querier for the recent ones only.
	now := float64(time.Now().Unix())
	// The window stays within one UTC day: the frontend splits queries
	// at midnight, and each part of a window across it is looked up alone.
	start := max(now-600, math.Floor(now/86400)*86400)
	if now-start < 180 {
		t.Log("the first three minutes of a UTC day hold no step older than -frontend.max-cache-freshness: the recent window is not checked")
		return
	}
	recent := rangeParams(`metric_a`, start, now, 60)
	h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", recent)
	asked := api.record()
	h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", recent)
	if got := asked(); len(got) != 1 || got[0][0] < int64(now-60)*1000 || got[0][1] != int64(now)*1000 {
		t.Fatalf("second query over the last 10 minutes asked the querier for %v, want only the last minute (ending %d)", got, int64(now)*1000)
	}
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(`
# HELP cortex_cache_hits Total count of keys found in cache.
# TYPE cortex_cache_hits counter
cortex_cache_hits{name="frontend.fifocache"} 3
`), "cortex_cache_hits"); err != nil {
		t.Fatal(err)
	}
}

// direct is the querier's own answer to a range query, unsplit and uncached.
func direct(api *promAPI, query string, start, end, step float64) string {
	req := httptest.NewRequest("GET", "/prometheus/api/v1/query_range?"+rangeParams(query, start, end, step).Encode(), nil)
	req = req.WithContext(tenant.Inject(req.Context(), "t1"))
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	return rec.Body.String()
}

// TestCacheExtents: a range that moves, shrinks or grows asks the queriers
// only for the steps the cache lacks, and answers the bytes the querier
// would give for the whole range.
func TestCacheExtents(t *testing.T) {
	api := newPromAPI(t)
	cfg := defaultConfig()
	cfg.CacheResults = true
	h := newHarness(t, cfg, api, 2)
	const hour, min = 3600.0, 60.0
	ms := func(s float64) int64 { return int64(s * 1000) }
	for _, q := range equivalenceQueries {
		steps := []struct {
			name       string
			start, end float64
			want       [][2]int64 // ranges the querier is asked for
		}{
			{"first", 3 * hour, 10 * hour, [][2]int64{{ms(3 * hour), ms(10 * hour)}}},
			{"moved 30 minutes on", 3*hour + 30*min, 10*hour + 30*min, [][2]int64{{ms(10*hour + min), ms(10*hour + 30*min)}}},
			{"inside", 4 * hour, 9 * hour, nil},
			// The answer of each refresh replaced the extent it overlapped:
			// the cache holds the last range, 3h30 to 10h30.
			{"wider on both sides", 2 * hour, 11 * hour, [][2]int64{{ms(2 * hour), ms(3*hour + 29*min)}, {ms(10*hour + 31*min), ms(11 * hour)}}},
			{"everything cached", 2 * hour, 11 * hour, nil},
			{"another step grid", 2*hour + 13, 5 * hour, [][2]int64{{ms(2*hour + 13), ms(5*hour - 60 + 13)}}},
		}
		for _, st := range steps {
			asked := api.record()
			code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(q, st.start, st.end, min))
			ranges := asked()
			if code != 200 {
				t.Fatalf("%s, %s: %d %s", q, st.name, code, got)
			}
			if want := direct(api, q, st.start, st.end, min); got != want {
				t.Errorf("%s, %s: the cached answer differs from the querier's\ncached:  %.400s\nquerier: %.400s", q, st.name, got, want)
			}
			if strings.Contains(q, "@ start()") || strings.Contains(q, "@ end()") {
				continue // pinned to this query's own range: a key of its own
			}
			if !slices.Equal(ranges, st.want) {
				t.Errorf("%s, %s: querier asked for %v, want %v", q, st.name, ranges, st.want)
			}
		}
	}
	// The widest answer replaced the extents it covered.
	key := partCacheKey("t1", "/prometheus/api/v1/query_range", `metric_a`, 60_000, ms(2*hour), int64(24*time.Hour/time.Millisecond), url.Values{})
	extents := decodeExtents(h.f.cache.fetch(context.Background(), []string{key})[key])
	if len(extents) != 1 || extents[0].Start != ms(2*hour) || extents[0].End != ms(11*hour) {
		t.Fatalf("extents of metric_a: %d, want one from %d to %d", len(extents), ms(2*hour), ms(11*hour))
	}
}

func TestCacheEvictsBeyondSize(t *testing.T) {
	m := &metrics{cacheFetched: prometheus.NewCounter(prometheus.CounterOpts{Name: "a"}), cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "b"}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "c"}), cacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{Name: "d"}), cacheEvicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "e"})}
	c := newResultsCache(1000, 0, 0, m)
	for i := range 20 {
		c.set(strconv.Itoa(i), make([]byte, 100))
	}
	if c.size > 1000 || testutil.ToFloat64(m.cacheEvicted) == 0 {
		t.Fatalf("size %d, evicted %v", c.size, testutil.ToFloat64(m.cacheEvicted))
	}
	if _, ok := c.get("19"); !ok {
		t.Fatal("most recent entry evicted")
	}
	if _, ok := c.get("0"); ok {
		t.Fatal("oldest entry kept")
	}
}

func TestRetriesOnFailure(t *testing.T) {
	api := newPromAPI(t)
	var failures atomic.Int64
	api.fail = func(r *http.Request) bool {
		return strings.Contains(r.URL.RawQuery, "flaky") && failures.Add(1) <= 2
	}
	cfg := defaultConfig()
	h := newHarness(t, cfg, api, 2)
	code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query", url.Values{"query": {"flaky"}})
	if code != 200 || failures.Load() != 3 {
		t.Fatalf("after 2 failures: %d %s (%d tries)", code, body, failures.Load())
	}
	// With one try only, the failure is the answer.
	cfg.MaxRetries = 1
	failures.Store(0)
	h2 := newHarness(t, cfg, api, 1)
	if code, _ := h2.get(context.Background(), "t1", "/prometheus/api/v1/query", url.Values{"query": {"flaky"}}); code != 500 {
		t.Fatalf("with -querier.max-retries-per-request=1: %d, want 500", code)
	}
}

// TestRetryOnDisconnect: a querier that dies with a query leaves it to another.
func TestRetryOnDisconnect(t *testing.T) {
	api := &promAPI{} // answers /query without storage
	cfg := defaultConfig()
	h := newHarness(t, cfg, nil, 0)
	lis := testkit.Listen(t)
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpccodec.Codec{}))
	frontendpb.RegisterFrontendServer(srv, h.f)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	// The dying querier: takes the query, then its worker stops mid-query.
	taken := make(chan struct{})
	var once sync.Once
	dying := h.addWorker(lis.Addr().String(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(taken) })
		<-r.Context().Done()
	}), 1)
	done := make(chan string)
	go func() {
		code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query", url.Values{"query": {"up"}})
		done <- strconv.Itoa(code) + " " + body
	}()
	<-taken
	h.addWorker(lis.Addr().String(), api, 1)
	_ = services.StopAndAwaitTerminated(context.Background(), dying)
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "200 ") {
			t.Fatalf("after the querier died: %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("query never answered after its querier died")
	}
}

// TestCancellationReachesQuerier: a client giving up cancels the query
// running on the querier.
func TestCancellationReachesQuerier(t *testing.T) {
	started := make(chan struct{}, 1)
	canceled := make(chan struct{}, 1)
	h := newHarness(t, defaultConfig(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			canceled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}), 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	code, _ := h.get(ctx, "t1", "/prometheus/api/v1/query", url.Values{"query": {"up"}})
	if code != 499 {
		t.Fatalf("canceled query: %d, want 499", code)
	}
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the querier never saw the cancellation")
	}
	// The worker reconnects and serves the next query.
	go func() { <-started }()
	testkit.Eventually(t, 5*time.Second, "the worker to reconnect", func() bool { return h.f.ConnectedWorkers() >= 1 })
}

func TestTooManyOutstandingRequests(t *testing.T) {
	h := newHarness(t, defaultConfig(), nil, 0) // no querier: requests stay queued
	h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 2}, nil)
	if err := h.f.CheckReady(context.Background()); err == nil {
		t.Fatal("ready with no querier connected")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		go h.get(ctx, "t1", "/prometheus/api/v1/query", url.Values{"query": {"up"}})
	}
	testkit.Eventually(t, 5*time.Second, "two queued requests", func() bool { return h.f.queue.len("t1") == 2 })
	if code, body := h.get(ctx, "t1", "/prometheus/api/v1/query", url.Values{"query": {"up"}}); code != 429 || !strings.Contains(body, `"error":"too many outstanding requests"`) {
		t.Fatalf("third request: %d %s, want 429 too many outstanding requests", code, body)
	}
	// Other tenants have their own bound.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if code, _ := h.get(ctx2, "t2", "/prometheus/api/v1/query", url.Values{"query": {"up"}}); code == 429 {
		t.Fatal("tenant t2 refused because of t1")
	}
	if v := testutil.ToFloat64(h.f.queue.length.WithLabelValues("t1", "0", "fifo")); v != 2 {
		t.Fatalf("cortex_query_frontend_queue_length{user=\"t1\"} = %v, want 2", v)
	}
}

// TestQueueRoundRobin: tenants take turns, whatever their queue lengths.
func TestQueueRoundRobin(t *testing.T) {
	q := newQueue(fairqueue.Config{MaxOutstanding: fairqueue.Bound(10000)}, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "l"}, []string{"user", "priority", "type"}), nil, prometheus.NewHistogram(prometheus.HistogramOpts{Name: "d"}))
	for i := range 1000 {
		if err := q.enqueue(&request{tenant: "flood", req: &frontendpb.HTTPRequest{Url: strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = q.dequeue(context.Background())
	for _, tn := range []string{"b", "c"} {
		if err := q.enqueue(&request{tenant: tn, req: &frontendpb.HTTPRequest{}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for i := range 4 {
		r, err := q.dequeue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		seen[r.tenant] = i
	}
	if _, ok := seen["b"]; !ok {
		t.Fatalf("tenant b not served within 4 dequeues: %v", seen)
	}
	if _, ok := seen["c"]; !ok {
		t.Fatalf("tenant c not served within 4 dequeues: %v", seen)
	}
}

// TestFairnessMeasured: while one tenant floods the queue, another
// tenant's query waits for at most one flood query per querier, not for the
// flood. Flood queries run until the test lets each finish, so what is
// counted is how many finished before the quiet tenant was served.
func TestFairnessMeasured(t *testing.T) {
	release := make(chan struct{}) // one value lets one flood query finish
	var finished atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(tenant.HeaderName) == "flood" {
			select {
			case <-release:
				finished.Add(1)
			case <-r.Context().Done():
			}
		}
		_, _ = w.Write([]byte(`{"status":"success"}`))
	})
	const queriers = 2
	h := newHarness(t, defaultConfig(), handler, queriers)
	h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 1000}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		close(release)
		wg.Wait()
	}()
	const flood = 200
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.get(ctx, "flood", "/prometheus/api/v1/query", url.Values{"query": {"up"}})
		}()
	}
	// Each querier runs one flood query; the rest wait in the queue.
	testkit.Eventually(t, 10*time.Second, "the flood queued", func() bool { return h.f.queue.len("flood") == flood-queriers })
	worst := int64(0)
	for i := range 5 {
		quiet := make(chan int, 1)
		go func() {
			code, _ := h.get(context.Background(), "quiet", "/prometheus/api/v1/query", url.Values{"query": {"up"}})
			quiet <- code
		}()
		testkit.Eventually(t, 5*time.Second, "the quiet tenant's query queued", func() bool { return h.f.queue.len("quiet") == 1 })
		before := finished.Load()
		for h.f.queue.len("quiet") == 1 {
			queued := h.f.queue.len("flood")
			release <- struct{}{}
			// The freed querier takes the next request: the quiet one, or
			// one more of the flood.
			testkit.Eventually(t, 5*time.Second, "the freed querier to take a request", func() bool {
				return h.f.queue.len("quiet") == 0 || h.f.queue.len("flood") < queued
			})
		}
		if code := <-quiet; code != 200 {
			t.Fatalf("quiet tenant's query %d: %d", i, code)
		}
		ahead := finished.Load() - before
		worst = max(worst, ahead)
		if ahead > queriers {
			t.Fatalf("quiet tenant's query %d was served after %d flood queries finished, more than one per querier (%d): starved by the flood", i, ahead, queriers)
		}
	}
	t.Logf("flood queries that finished before a quiet one was served, at worst: %d, with %d queued", worst, flood-queriers)
}

func TestForwardsOtherEndpoints(t *testing.T) {
	api := newPromAPI(t)
	h := newHarness(t, defaultConfig(), api, 1)
	for _, path := range []string{"/prometheus/api/v1/labels", "/prometheus/api/v1/series", "/api/prom/api/v1/label/job/values", "/prometheus/api/v1/metadata"} {
		code, body := h.get(context.Background(), "t1", path, url.Values{"match[]": {"up"}})
		if code != 200 || !strings.Contains(body, path) {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	// Without a tenant: 401 from the frontend itself.
	req := httptest.NewRequest("GET", "/prometheus/api/v1/query?query=up", nil)
	rec := httptest.NewRecorder()
	h.api.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("no tenant: %d", rec.Code)
	}
}

// A tenant's credentials never reach a querier worker: a rogue worker
// would read them.
func TestCredentialsNotForwarded(t *testing.T) {
	seen := make(chan http.Header, 1)
	h := newHarness(t, defaultConfig(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":[]}`))
	}), 1)
	req := httptest.NewRequest(http.MethodGet, "/prometheus/api/v1/labels", nil)
	req.Header.Set(tenant.HeaderName, "t1")
	req.Header.Set("Authorization", "Bearer secret-token")
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	req.Header.Set("Cookie", "grafana_session=secret")
	req.Header.Set("X-Grafana-Org-Id", "1")
	rec := httptest.NewRecorder()
	h.api.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("labels: %d %s", rec.Code, rec.Body)
	}
	got := <-seen
	for _, name := range []string{"Authorization", "Proxy-Authorization", "Cookie"} {
		if v := got.Get(name); v != "" {
			t.Errorf("the querier received %s: %q", name, v)
		}
	}
	if got.Get(tenant.HeaderName) != "t1" || got.Get("X-Grafana-Org-Id") != "1" {
		t.Errorf("the querier lost the tenant or other headers: %v", got)
	}
}

func TestStopFailsQueuedRequests(t *testing.T) {
	h := newHarness(t, defaultConfig(), nil, 0)
	done := make(chan int)
	go func() {
		code, _ := h.get(context.Background(), "t1", "/prometheus/api/v1/query", url.Values{"query": {"up"}})
		done <- code
	}()
	testkit.Eventually(t, 5*time.Second, "the request to be queued", func() bool { return h.f.queue.len("t1") == 1 })
	_ = services.StopAndAwaitTerminated(context.Background(), h.f)
	select {
	case code := <-done:
		if code != http.StatusServiceUnavailable {
			t.Fatalf("queued request on stop: %d, want 503", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("queued request hung after the frontend stopped")
	}
}
