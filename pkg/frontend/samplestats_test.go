package frontend

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strconv"
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
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// statsAPI answers range queries as a querier with per-step statistics
// does: one series per query, 1 at every step, and, asked with stats=all,
// 10 queryable samples per step (a shard query 10 too), a peak of 100 and
// the engine's timings.
type statsAPI struct {
	mu    sync.Mutex
	stats []string // the stats parameter of every query asked
}

func (a *statsAPI) asked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.stats...)
}

func (a *statsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.stats = append(a.stats, r.FormValue("stats"))
	a.mu.Unlock()
	start, _ := parseTimeMs(r.FormValue("start"))
	end, _ := parseTimeMs(r.FormValue("end"))
	step, _ := parseStepMs(r.FormValue("step"))
	metric, _ := json.Marshal(map[string]string{"q": r.FormValue("query")})
	var values, perStep []string
	for t := start; t <= end; t += step {
		values = append(values, fmt.Sprintf(`[%s,"1"]`, formatMs(t)))
		perStep = append(perStep, fmt.Sprintf(`[%s,10]`, formatMs(t)))
	}
	stats := ""
	switch r.FormValue("stats") {
	case "":
	case "all":
		stats = fmt.Sprintf(`,"stats":{"timings":{"evalTotalTime":0.1},"samples":{"totalQueryableSamplesPerStep":[%s],"totalQueryableSamples":%d,"peakSamples":100}}`, strings.Join(perStep, ","), 10*len(perStep))
	default:
		stats = fmt.Sprintf(`,"stats":{"timings":{"evalTotalTime":0.1},"samples":{"totalQueryableSamples":%d,"peakSamples":100}}`, 10*len(perStep))
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":%s,"values":[%s]}]%s}}`, metric, strings.Join(values, ","), stats)
}

func newStatsHarness(t *testing.T, cfg Config, api http.Handler, opts ...Option) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	f, err := New(cfg, nil, nil, reg, opts...)
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
	h.addWorker(lis.Addr().String(), api, 4)
	return h
}

// steps writes Prometheus' per-step statistics of value v at every step
// of [start, end] (seconds).
func steps(start, end, step, v int) string {
	var out []string
	for t := start; t <= end; t += step {
		out = append(out, "["+strconv.Itoa(t)+","+strconv.Itoa(v)+"]")
	}
	return strings.Join(out, ",")
}

// statsOf returns the "stats" of an answer's data, as written.
func statsOf(t *testing.T, body string) string {
	t.Helper()
	var a struct {
		Data struct {
			Stats json.RawMessage `json:"stats"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return string(a.Data.Stats)
}

func TestSampleStatsAreJoined(t *testing.T) {
	// 4h from 1700006400 (a whole hour) at a 30m step: split hourly into
	// 4 parts, 9 steps in all.
	const start, end, step = 1700006400, 1700006400 + 4*3600, 1800
	params := rangeParams("sum by (job) (rate(x[5m]))", start, end, step)

	t.Run("split", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.SplitQueriesByInterval = time.Hour
		api := &statsAPI{}
		h := newStatsHarness(t, cfg, api)
		params.Set("stats", "all")
		code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
		want := `{"samples":{"totalQueryableSamples":90,"totalQueryableSamplesPerStep":[` + steps(start, end, step, 10) + `],"peakSamples":100}}`
		if got := statsOf(t, body); code != http.StatusOK || got != want {
			t.Fatalf("got %d %s\nwant stats %s", code, body, want)
		}
		// stats=true: the parts' totals, summed.
		params.Set("stats", "true")
		_, body = h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
		if got, want := statsOf(t, body), `{"samples":{"totalQueryableSamples":90,"peakSamples":100}}`; got != want {
			t.Fatalf("stats=true: %s, want %s", got, want)
		}
		params.Del("stats")
		if _, body = h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params); strings.Contains(body, `"stats"`) {
			t.Fatalf("statistics asked for none: %s", body)
		}
	})

	t.Run("sharded", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.SplitQueriesByInterval = time.Hour
		api := &statsAPI{}
		h := newStatsHarness(t, cfg, api, WithLimits(validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: 3}, nil)))
		params.Set("stats", "all")
		code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
		// Each step evaluated by 3 shards of 10 samples each.
		want := `{"samples":{"totalQueryableSamples":270,"totalQueryableSamplesPerStep":[` + steps(start, end, step, 30) + `],"peakSamples":100}}`
		if got := statsOf(t, body); code != http.StatusOK || got != want {
			t.Fatalf("got %d %s\nwant stats %s", code, body, want)
		}
		if n := len(api.asked()); n != 12 {
			t.Fatalf("%d queries asked, want 12 (4 parts of 3 shards)", n)
		}
	})
}

func TestCacheQueryableSamplesStats(t *testing.T) {
	const start, end, step = 1700006400, 1700006400 + 4*3600, 1800
	params := rangeParams("rate(x[5m])", start, end, step)
	params.Set("stats", "all")
	cfg := defaultConfig()
	cfg.SplitQueriesByInterval = time.Hour
	cfg.CacheResults = true

	t.Run("disabled", func(t *testing.T) {
		api := &statsAPI{}
		h := newStatsHarness(t, cfg, api, WithPerStepStats(true))
		code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
		if code != http.StatusOK || strings.Contains(body, `"stats"`) {
			t.Fatalf("without -frontend.cache-queryable-samples-stats, the results cache answers no statistics: %d %s", code, body)
		}
		for _, s := range api.asked() {
			if s != "" {
				t.Fatalf("a part asked with stats=%q, want none", s)
			}
		}
	})

	t.Run("enabled", func(t *testing.T) {
		cfg := cfg
		cfg.CacheQueryableSamplesStats = true
		api := &statsAPI{}
		h := newStatsHarness(t, cfg, api, WithPerStepStats(true))
		want := `{"samples":{"totalQueryableSamples":90,"totalQueryableSamplesPerStep":[` + steps(start, end, step, 10) + `],"peakSamples":100}}`
		code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
		if got := statsOf(t, body); code != http.StatusOK || got != want {
			t.Fatalf("first query: %d %s\nwant stats %s", code, body, want)
		}
		asked := len(api.asked())
		if asked != 4 {
			t.Fatalf("%d parts asked, want 4", asked)
		}
		// Answered from the cache, with the statistics of its steps.
		code, body = h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
		if got := statsOf(t, body); code != http.StatusOK || got != want {
			t.Fatalf("cached: %d %s\nwant stats %s", code, body, want)
		}
		if n := len(api.asked()); n != asked {
			t.Fatalf("%d more queries asked of the queriers for a cached answer", n-asked)
		}
		// A sub-range of the cached steps: the statistics of its steps
		// only, the peak the largest step's.
		sub := rangeParams("rate(x[5m])", start+5400, start+5400, step)
		sub.Set("stats", "all")
		_, body = h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", sub)
		if got, want := statsOf(t, body), `{"samples":{"totalQueryableSamples":10,"totalQueryableSamplesPerStep":[[1700011800,10]],"peakSamples":10}}`; got != want {
			t.Fatalf("sub-range: %s\nwant %s", got, want)
		}
		if n := len(api.asked()); n != asked {
			t.Fatalf("%d more queries asked of the queriers for cached steps", n-asked)
		}
		// Without a stats parameter: no statistics, and every part asked
		// the queriers for them.
		params := rangeParams("rate(y[5m])", start, end, step)
		if _, body = h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params); strings.Contains(body, `"stats"`) {
			t.Fatalf("statistics asked for none: %s", body)
		}
		for _, s := range api.asked() {
			if s != "all" {
				t.Fatalf("a part asked with stats=%q, want all", s)
			}
		}
	})

	t.Run("needs per-step statistics", func(t *testing.T) {
		cfg := cfg
		cfg.CacheQueryableSamplesStats = true
		_, err := New(cfg, nil, nil, nil)
		if want := "-frontend.cache-queryable-samples-stats may only be enabled in conjunction with -querier.per-step-stats-enabled. Please set the latter"; err == nil || err.Error() != want {
			t.Fatalf("got %v, want %s", err, want)
		}
	})

	var c Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-frontend.cache-queryable-samples-stats", "-querier.enable-dynamic-vertical-sharding"}); err != nil || !c.CacheQueryableSamplesStats || !c.EnableDynamicVerticalSharding {
		t.Fatalf("flags: %v %+v", err, c)
	}
}

func TestInstantShardStatsAreSummed(t *testing.T) {
	shard := func(job string, v, peak int) *frontendpb.HTTPResponse {
		return &frontendpb.HTTPResponse{Code: http.StatusOK, Body: []byte(fmt.Sprintf(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":%q},"value":[1700000000,"1"]}],`+
			`"stats":{"timings":{"evalTotalTime":0.1},"samples":{"totalQueryableSamplesPerStep":[[1700000000,%d]],"totalQueryableSamples":%d,"peakSamples":%d}}}}`, job, v, v, peak))}
	}
	got, err := mergeVectors([]*frontendpb.HTTPResponse{shard("b", 5, 9), shard("a", 7, 8)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000000,"1"]},{"metric":{"job":"b"},"value":[1700000000,"1"]}],` +
		`"stats":{"samples":{"totalQueryableSamples":12,"totalQueryableSamplesPerStep":[[1700000000,12]],"peakSamples":9}}}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
