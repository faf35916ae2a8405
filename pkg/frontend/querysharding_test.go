package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"

	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// shardingCorpus is the expressions the sharded frontend must answer as
// the unsharded engine does, and whether it shards them.
var shardingCorpus = []struct {
	query   string
	sharded bool
}{
	{`sum by (job) (rate(http_requests_total[5m]))`, true},
	{`sum without (instance) (rate(http_requests_total[5m]))`, true},
	{`count by (job) (http_requests_total)`, true},
	{`avg by (job) (memory_bytes)`, true},
	{`min by (job, code) (rate(http_requests_total[10m]))`, true},
	{`max by (instance) (memory_bytes)`, true},
	{`sum by (job) (http_requests_total) / count by (job) (http_requests_total)`, true},
	{`sum(rate(http_requests_total[5m]))`, false},
	{`count(memory_bytes)`, false},
	{`avg(memory_bytes)`, false},
	{`histogram_quantile(0.9, sum by (job, le) (rate(req_duration_seconds_bucket[5m])))`, true},
	{`histogram_quantile(0.9, sum without (instance) (rate(req_duration_seconds_bucket[5m])))`, true},
	{`histogram_quantile(0.5, sum by (le) (rate(req_duration_seconds_bucket[5m])))`, false},
	{`histogram_quantile(0.99, rate(req_duration_seconds_bucket[5m]))`, true},
	{`sum by (job) (rate(http_requests_total{code="500"}[5m])) / sum by (job) (rate(http_requests_total[5m]))`, true},
	{`sum by (job) (rate(http_requests_total[5m])) / on (job) group_left () sum by (job) (memory_bytes)`, true},
	{`sum by (job, instance) (memory_bytes) / on (instance) group_left () sum by (instance) (memory_bytes)`, true},
	{`sum by (job, code) (rate(http_requests_total[5m])) / ignoring (code) group_left () sum by (job) (rate(http_requests_total[5m]))`, true},
	{`max by (job) (sum by (job, instance) (rate(http_requests_total[5m])))`, true},
	{`sum(sum by (job) (rate(http_requests_total[5m])))`, false},
	{`topk by (job) (2, memory_bytes)`, true},
	{`topk(3, sum by (job) (memory_bytes))`, false},
	{`bottomk by (job) (1, rate(http_requests_total[5m]))`, true},
	{`quantile by (job) (0.75, memory_bytes)`, true},
	{`stddev by (job) (memory_bytes)`, true},
	{`stdvar without (instance, code) (rate(http_requests_total[5m]))`, true},
	{`avg without (instance, code) (rate(http_requests_total[5m]))`, true},
	{`count_values by (job) ("v", floor(memory_bytes / 1000))`, true},
	{`sum by (v) (count_values without (instance) ("v", floor(memory_bytes / 1000)))`, false},
	{`sum by (job) (label_replace(memory_bytes, "job", "$1-x", "job", "(.*)"))`, false},
	{`sum by (instance) (label_replace(memory_bytes, "dc", "dc-$1", "instance", "i(.)"))`, true},
	{`sum by (dc) (label_replace(memory_bytes, "dc", "$1", "instance", "i(.)"))`, false},
	{`sum by (job) (label_join(memory_bytes, "ji", "-", "job", "instance"))`, true},
	{`absent(nonexistent_metric)`, false},
	{`absent(memory_bytes{job="nope"})`, false},
	{`sum by (job) (memory_bytes) or vector(0)`, false},
	{`sum by (job) (rate(http_requests_total[5m])) > 0.5`, true},
	{`sum by (job) (rate(http_requests_total[5m])) * 60`, true},
	{`-sum by (job) (memory_bytes)`, true},
	{`sum by (job) (avg_over_time(memory_bytes[30m:5m]))`, true},
	{`max_over_time(sum by (job) (rate(http_requests_total[5m]))[30m:1m])`, true},
	{`sum by (job) (rate(http_requests_total[5m] offset 10m))`, true},
	{`sum by (job) (rate(http_requests_total[5m] @ end()))`, true},
	{`sum by (job) (increase(http_requests_total[1h])) and on (job) (sum by (job) (memory_bytes) > 3000)`, true},
	{`sum by (job) (memory_bytes) unless on (job) sum by (job) (errors_total)`, true},
	{`sum by (job) (memory_bytes) or sum by (job) (errors_total)`, true},
	{`sum without (instance) ({__name__=~"http_requests_total|errors_total"})`, true},
	{`sum by (__name__) ({__name__=~"http_requests_total|errors_total"})`, false},
	{`sum by (job, __name__) (rate({__name__=~"http_requests_total|errors_total"}[5m]))`, true},
	{`count by (code) (rate(http_requests_total[5m]) > 2)`, true},
	{`group by (job, instance) (memory_bytes)`, true},
	{`rate(http_requests_total[5m])`, false},
	{`memory_bytes`, false},
	{`sort(sum by (job) (memory_bytes))`, false},
	{`scalar(sum(memory_bytes))`, false},
	{`sum by (job) (memory_bytes) / scalar(count(memory_bytes))`, false},
	{`time()`, false},
}

// shardingData is a promqltest load of counters, gauges and histogram
// buckets over 5 jobs, 6 instances and 2 codes, with uneven slopes, gaps
// and a second metric sharing their labels.
func shardingData() string {
	var b strings.Builder
	b.WriteString("load 1m\n")
	jobs := []string{"api", "web", "db", "cache", "batch"}
	for j, job := range jobs {
		for i := range 6 {
			for c, code := range []string{"200", "500"} {
				fmt.Fprintf(&b, "  http_requests_total{job=%q, instance=\"i%d\", code=%q} %d+%sx240\n", job, i, code,
					(j*7+i*3+c)%11, strconv.FormatFloat(1+float64((j*13+i*5+c*3)%17)/4, 'f', -1, 64))
			}
			gap := ""
			if (i+j)%4 == 0 {
				gap = " _x20 7+1.5x100"
			}
			fmt.Fprintf(&b, "  memory_bytes{job=%q, instance=\"i%d\"} %d+%sx120%s\n", job, i, 1000*(j+1)+37*i, strconv.FormatFloat(float64((j+i)%5)+0.3, 'f', -1, 64), gap)
			if i%2 == 0 {
				fmt.Fprintf(&b, "  errors_total{job=%q, instance=\"i%d\"} 0+%dx240\n", job, i, j+i+1)
			}
			for k, le := range []string{"0.1", "0.5", "1", "+Inf"} {
				fmt.Fprintf(&b, "  req_duration_seconds_bucket{job=%q, instance=\"i%d\", le=%q} 0+%dx240\n", job, i, le, (k+1)*(j+2)+i)
			}
		}
	}
	return b.String()
}

// shardingAPI answers as the querier does behind the shard filter, and
// records the shard queries it is asked.
type shardingAPI struct {
	*promAPI
	mu      sync.Mutex
	queries []string
}

func (a *shardingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	a.mu.Lock()
	a.queries = append(a.queries, r.Form.Get("query"))
	a.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/query") {
		if a.fail != nil && a.fail(r) {
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		a.instant(w, r)
		return
	}
	a.promAPI.ServeHTTP(w, r)
}

// instant answers an instant query with a vector or a scalar.
func (a *shardingAPI) instant(w http.ResponseWriter, r *http.Request) {
	ts, err := parseTimeMs(r.Form.Get("time"))
	if err != nil {
		http.Error(w, "time: "+err.Error(), http.StatusBadRequest)
		return
	}
	q, err := a.engine.NewInstantQuery(r.Context(), a.st, nil, r.Form.Get("query"), time.UnixMilli(ts))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer q.Close()
	res := q.Exec(r.Context())
	if res.Err != nil {
		http.Error(w, res.Err.Error(), http.StatusUnprocessableEntity)
		return
	}
	point := func(t int64, v float64) string {
		return fmt.Sprintf(`[%s,"%s"]`, strconv.FormatFloat(float64(t)/1000, 'f', -1, 64), strconv.FormatFloat(v, 'f', -1, 64))
	}
	var b strings.Builder
	switch v := res.Value.(type) {
	case promql.Scalar:
		fmt.Fprintf(&b, `{"status":"success","data":{"resultType":"scalar","result":%s}}`, point(v.T, v.V))
	case promql.Vector:
		b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
		for i, s := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			m, _ := json.Marshal(s.Metric.Map())
			fmt.Fprintf(&b, `{"metric":%s,"value":%s}`, m, point(s.T, s.F))
		}
		b.WriteString("]}}")
	default:
		http.Error(w, fmt.Sprintf("result type %s", res.Value.Type()), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, b.String())
}

func (a *shardingAPI) asked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queries
	a.queries = nil
	return q
}

// TestQueryShardingCorpus: with -frontend.query-vertical-shard-size set,
// every expression of the corpus answers what the unsharded engine
// answers (within a relative 1e-9), the shardable ones as that many shard
// queries, each selector carrying its shard, the others whole.
func TestQueryShardingCorpus(t *testing.T) {
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	sharded := &shardingAPI{promAPI: api}
	for _, shards := range []int{3, 4} {
		cfg := defaultConfig()
		cfg.SplitQueriesByInterval = 0
		h := newHarness(t, cfg, sharded, 4)
		h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: shards}, nil)
		start, end, step := 1800.0, 4*3600.0, 120.0
		for _, c := range shardingCorpus {
			code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(c.query, start, end, step))
			asked := sharded.asked()
			if code != 200 {
				t.Fatalf("%d shards, %s: %d %s", shards, c.query, code, got)
			}
			want := direct(api, c.query, start, end, step)
			sharded.asked()
			if err := sameMatrix(got, want, 1e-9); err != nil {
				t.Errorf("%d shards, %s: %v\nsharded: %.600s\nwhole:   %.600s", shards, c.query, err, got, want)
			}
			wantAsked := 1
			if c.sharded {
				wantAsked = shards
			}
			if len(asked) != wantAsked {
				t.Errorf("%d shards, %s: %d queries reached the queriers, want %d: %q", shards, c.query, len(asked), wantAsked, asked)
				continue
			}
			for _, q := range asked {
				if n := strings.Count(q, querysharding.LabelName); c.sharded != (n > 0) {
					t.Errorf("%d shards, %s: the querier was asked %q", shards, c.query, q)
				}
			}
		}
	}
}

// TestQueryShardingSplitAndCached: split by time into hour parts, each
// part sharded, and answered again from the results cache, the corpus
// still answers what the unsharded engine answers.
func TestQueryShardingSplitAndCached(t *testing.T) {
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	sharded := &shardingAPI{promAPI: api}
	cfg := defaultConfig()
	cfg.SplitQueriesByInterval = time.Hour
	cfg.CacheResults = true
	h := newHarness(t, cfg, sharded, 4)
	h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: 3}, nil)
	start, end, step := 1800.0, 4*3600.0, 300.0
	for _, c := range shardingCorpus {
		want := direct(api, c.query, start, end, step)
		for _, try := range []string{"first", "cached"} {
			code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(c.query, start, end, step))
			asked := sharded.asked()
			if code != 200 {
				t.Fatalf("%s (%s): %d %s", c.query, try, code, got)
			}
			if err := sameMatrix(got, want, 1e-9); err != nil {
				t.Errorf("%s (%s): %v", c.query, try, err)
			}
			parts := 4 // [1800, 3600), [3600, 7200), [7200, 10800), [10800, 14400]
			if c.sharded {
				parts *= 3
			}
			if try == "cached" {
				parts = 0
			}
			if len(asked) != parts {
				t.Errorf("%s (%s): %d queries reached the queriers, want %d", c.query, try, len(asked), parts)
			}
		}
	}
}

// sameMatrix compares two query_range answers: the same series, each with
// points at the same times and values within a relative tol.
func sameMatrix(got, want string, tol float64) error {
	type series struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	parse := func(s string) (map[string][][2]any, error) {
		var r struct {
			Status string `json:"status"`
			Data   struct {
				ResultType string   `json:"resultType"`
				Result     []series `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			return nil, err
		}
		if r.Status != "success" || r.Data.ResultType != "matrix" {
			return nil, fmt.Errorf("not a matrix answer: %.200s", s)
		}
		out := map[string][][2]any{}
		for _, s := range r.Data.Result {
			b, _ := json.Marshal(s.Metric)
			if _, dup := out[string(b)]; dup {
				return nil, fmt.Errorf("series %s twice", b)
			}
			out[string(b)] = s.Values
		}
		return out, nil
	}
	g, err := parse(got)
	if err != nil {
		return err
	}
	w, err := parse(want)
	if err != nil {
		return err
	}
	for k := range w {
		if _, ok := g[k]; !ok {
			return fmt.Errorf("series %s missing", k)
		}
	}
	for k, gp := range g {
		wp, ok := w[k]
		if !ok {
			return fmt.Errorf("unexpected series %s", k)
		}
		if len(gp) != len(wp) {
			return fmt.Errorf("series %s: %d points, want %d", k, len(gp), len(wp))
		}
		for i := range gp {
			if gp[i][0] != wp[i][0] {
				return fmt.Errorf("series %s point %d at %v, want %v", k, i, gp[i][0], wp[i][0])
			}
			gv, _ := strconv.ParseFloat(gp[i][1].(string), 64)
			wv, _ := strconv.ParseFloat(wp[i][1].(string), 64)
			if gv == wv || (math.IsNaN(gv) && math.IsNaN(wv)) {
				continue
			}
			if math.Abs(gv-wv) > tol*math.Max(math.Abs(gv), math.Abs(wv)) {
				return fmt.Errorf("series %s at %v: %v, want %v", k, gp[i][0], gv, wv)
			}
		}
	}
	return nil
}

// TestQueryShardingMetrics: the sharding counters count what was tried,
// what was sharded and the shard queries.
func TestQueryShardingMetrics(t *testing.T) {
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	cfg := defaultConfig()
	h := newHarness(t, cfg, api, 2)
	h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: 4}, nil)
	for _, q := range []string{`sum by (job) (memory_bytes)`, `sum(memory_bytes)`} {
		if code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(q, 1800, 3600, 60)); code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
	}
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(`
# HELP cortex_frontend_query_sharding_rewrites_attempted_total Total number of queries the query-frontend tried to shard (the tenant's -frontend.query-vertical-shard-size above 1).
# TYPE cortex_frontend_query_sharding_rewrites_attempted_total counter
cortex_frontend_query_sharding_rewrites_attempted_total 2
# HELP cortex_frontend_query_sharding_rewrites_succeeded_total Total number of queries the query-frontend ran as shard queries.
# TYPE cortex_frontend_query_sharding_rewrites_succeeded_total counter
cortex_frontend_query_sharding_rewrites_succeeded_total 1
# HELP cortex_frontend_sharded_queries_total Total number of shard queries run.
# TYPE cortex_frontend_sharded_queries_total counter
cortex_frontend_sharded_queries_total 4
`), "cortex_frontend_query_sharding_rewrites_attempted_total", "cortex_frontend_query_sharding_rewrites_succeeded_total", "cortex_frontend_sharded_queries_total"); err != nil {
		t.Fatal(err)
	}
}

// TestQueryShardingWithinExpressionSize: a query whose shard queries would
// be longer than the tenant's -query-frontend.max-query-expression-size-bytes
// (which the queriers check too) runs whole.
func TestQueryShardingWithinExpressionSize(t *testing.T) {
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	sharded := &shardingAPI{promAPI: api}
	h := newHarness(t, defaultConfig(), sharded, 2)
	query := `sum by (job) (memory_bytes)`
	for _, c := range []struct {
		max, asked int
	}{{0, 4}, {200, 4}, {100, 1}} {
		h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: 4, MaxQueryExpressionSizeBytes: c.max}, nil)
		if code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(query, 1800, 3600, 60)); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		if got := len(sharded.asked()); got != c.asked {
			t.Errorf("expression size limit %d: %d queries, want %d", c.max, got, c.asked)
		}
	}
}

// TestQueryShardingFailure: a shard query that fails on every try fails
// the whole query with its answer, range or instant.
func TestQueryShardingFailure(t *testing.T) {
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	failing := `\"shard_index\":2,`
	api.fail = func(r *http.Request) bool { return strings.Contains(r.URL.Query().Get("query"), failing) }
	sharded := &shardingAPI{promAPI: api}
	cfg := defaultConfig()
	cfg.MaxRetries = 2
	h := newHarness(t, cfg, sharded, 4)
	h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: 4}, nil)
	for _, c := range []struct {
		path   string
		params url.Values
	}{
		{"/prometheus/api/v1/query_range", rangeParams(`sum by (job) (memory_bytes)`, 1800, 3600, 60)},
		{"/prometheus/api/v1/query", url.Values{"query": {`sum by (job) (memory_bytes)`}, "time": {"3600"}}},
	} {
		code, body := h.get(context.Background(), "t1", c.path, c.params)
		if code != http.StatusInternalServerError || !strings.Contains(body, "injected failure") {
			t.Errorf("%s with a failing shard: %d %s", c.path, code, body)
		}
		tries := 0
		for _, q := range sharded.asked() {
			if strings.Contains(q, failing) {
				tries++
			}
		}
		if tries != 2 {
			t.Errorf("%s: the failing shard was tried %d times, want 2 (-querier.max-retries-per-request)", c.path, tries)
		}
	}
	// Unsharded queries do not go near the failing shard.
	if code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(`sum(memory_bytes)`, 1800, 3600, 60)); code != 200 {
		t.Errorf("unsharded: %d %s", code, body)
	}
}

// TestShardAnalysis: the labels a query is sharded on.
func TestShardAnalysis(t *testing.T) {
	for _, c := range []struct {
		query  string
		by     bool
		labels []string
	}{
		{`sum by (job) (rate(x[5m]))`, true, []string{"job"}},
		{`sum without (instance) (x)`, false, []string{"instance"}},
		{`sum by (job) (sum without (instance) (x))`, true, []string{"job"}},
		{`sum without (instance) (sum by (job, instance) (x))`, true, []string{"job"}},
		{`histogram_quantile(0.9, sum by (job, le) (rate(x[5m])))`, true, []string{"job"}},
		{`sum by (job, __name__) (x)`, true, []string{"job"}},
		{`sum by (a) (x) / on (a, b) sum by (a, b) (y)`, true, []string{"a"}},
		{`sum by (instance) (label_replace(x, "dc", "$1", "instance", "(.*)"))`, true, []string{"instance"}},
		{`sum(x)`, true, nil},
		{`x`, true, nil},
		{`absent(sum by (job) (x))`, true, nil},
	} {
		expr, err := promqlParser.ParseExpr(c.query)
		if err != nil {
			t.Fatal(err)
		}
		a := analyzeSharding(expr)
		got := slices.Sorted(slices.Values(a.labels))
		if len(c.labels) == 0 {
			if a.shardable() {
				t.Errorf("%s: sharded on %v (by %v), want not shardable", c.query, got, a.by)
			}
			continue
		}
		if !slices.Equal(got, c.labels) || a.by != c.by {
			t.Errorf("%s: sharded on %v (by %v), want %v (by %v)", c.query, got, a.by, c.labels, c.by)
		}
	}
	// The shard queries keep everything but the added matcher.
	qs := shardQueries(promqlParser, `sum by (job) (rate(x{a="b"}[5m] offset 1m)) / on (job) sum by (job) (max_over_time(y[10m:1m]))`, 2)
	if len(qs) != 2 {
		t.Fatalf("%d shard queries", len(qs))
	}
	want := `sum by (job) (rate(x{__CORTEX_SHARDS__="{\"shard_index\":1,\"total_shards\":2,\"by\":true,\"labels\":[\"job\"]}",a="b"}[5m] offset 1m)) / on (job) sum by (job) (max_over_time(y{__CORTEX_SHARDS__="{\"shard_index\":1,\"total_shards\":2,\"by\":true,\"labels\":[\"job\"]}"}[10m:1m]))`
	if qs[1] != want {
		t.Errorf("shard query\n%s\nwant\n%s", qs[1], want)
	}
}

// TestQueryShardingInstantCorpus: instant queries of the corpus, sharded,
// answer the series and values the unsharded engine answers; the
// shardable ones as that many shard queries.
func TestQueryShardingInstantCorpus(t *testing.T) {
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	sharded := &shardingAPI{promAPI: api}
	const shards = 3
	h := newHarness(t, defaultConfig(), sharded, 4)
	h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: shards}, nil)
	for _, at := range []string{"3000", "7261.5"} {
		for _, c := range shardingCorpus {
			params := url.Values{"query": {c.query}, "time": {at}}
			code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query", params)
			asked := sharded.asked()
			if code != 200 {
				t.Fatalf("%s at %s: %d %s", c.query, at, code, got)
			}
			req := httptest.NewRequest("GET", "/prometheus/api/v1/query?"+params.Encode(), nil)
			rec := httptest.NewRecorder()
			sharded.ServeHTTP(rec, req.WithContext(tenant.Inject(req.Context(), "t1")))
			sharded.asked()
			if err := sameInstant(got, rec.Body.String(), 1e-9); err != nil {
				t.Errorf("%s at %s: %v\nsharded: %.400s\nwhole:   %.400s", c.query, at, err, got, rec.Body.String())
			}
			if want := map[bool]int{true: shards, false: 1}[c.sharded]; len(asked) != want {
				t.Errorf("%s: %d queries reached the queriers, want %d", c.query, len(asked), want)
			}
		}
	}
	// Without a time, every shard evaluates at the same one: time() and
	// each answer's timestamp agree across the shards.
	code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query", url.Values{"query": {`count by (job) (memory_bytes @ 3000) * 0 + time()`}})
	if n := len(sharded.asked()); code != 200 || n != shards {
		t.Fatalf("no time: %d %s, %d shard queries", code, got, n)
	}
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(got), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Data.Result) != 5 {
		t.Fatalf("no time: %d series, want 5 jobs: %s", len(r.Data.Result), got)
	}
	for _, s := range r.Data.Result {
		v, _ := strconv.ParseFloat(s.Value[1].(string), 64)
		if s.Value != r.Data.Result[0].Value || v != s.Value[0].(float64) {
			t.Fatalf("no time: shards evaluated at different times: %s", got)
		}
	}
}

// sameInstant compares two instant query answers: the same result type,
// and for vectors the same series (in any order) with values within a
// relative tol.
func sameInstant(got, want string, tol float64) error {
	type answer struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	var g, w answer
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		return err
	}
	if g.Status != "success" || g.Data.ResultType != w.Data.ResultType {
		return fmt.Errorf("result type %q, want %q", g.Data.ResultType, w.Data.ResultType)
	}
	if g.Data.ResultType != "vector" {
		if string(g.Data.Result) != string(w.Data.Result) {
			return fmt.Errorf("%s, want %s", g.Data.Result, w.Data.Result)
		}
		return nil
	}
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	byLabels := func(raw json.RawMessage) (map[string][2]any, error) {
		var ss []sample
		if err := json.Unmarshal(raw, &ss); err != nil {
			return nil, err
		}
		out := map[string][2]any{}
		for _, s := range ss {
			k, _ := json.Marshal(s.Metric)
			if _, dup := out[string(k)]; dup {
				return nil, fmt.Errorf("series %s twice", k)
			}
			out[string(k)] = s.Value
		}
		return out, nil
	}
	gs, err := byLabels(g.Data.Result)
	if err != nil {
		return err
	}
	ws, err := byLabels(w.Data.Result)
	if err != nil {
		return err
	}
	if len(gs) != len(ws) {
		return fmt.Errorf("%d series, want %d", len(gs), len(ws))
	}
	for k, wv := range ws {
		gv, ok := gs[k]
		if !ok {
			return fmt.Errorf("series %s missing", k)
		}
		a, _ := strconv.ParseFloat(gv[1].(string), 64)
		b, _ := strconv.ParseFloat(wv[1].(string), 64)
		if gv[0] != wv[0] || (a != b && !(math.IsNaN(a) && math.IsNaN(b)) && math.Abs(a-b) > tol*math.Max(math.Abs(a), math.Abs(b))) {
			return fmt.Errorf("series %s: %v, want %v", k, gv, wv)
		}
	}
	return nil
}
