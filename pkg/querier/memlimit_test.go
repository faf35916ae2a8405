package querier

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Subqueries over the limits are refused with 400 before evaluation, naming
// the limit and its flag; the others are evaluated.
func TestSubqueryLimits(t *testing.T) {
	const (
		stepsFlag   = "-querier.max-subquery-steps (max_subquery_steps)"
		samplesFlag = "-querier.max-samples (max_samples)"
	)
	day := url.Values{"start": {"1700000000"}, "end": {"1700086400"}, "step": {"3600"}}
	for _, tc := range []struct {
		name  string
		cfg   func(*Config)
		path  string // query or query_range
		query string
		form  url.Values
		code  int
		body  string // a substring of the answer
	}{
		{
			name: "the 1 ms subquery over a day", path: "query", query: "count_over_time(vector(1)[1d:1ms])",
			code: http.StatusBadRequest,
			body: `"errorType":"bad_data","error":"invalid parameter \"query\": the subquery [1d:1ms] has 86400000 steps (its range divided by its step), more than the 11000 points per series allowed by ` + stepsFlag + `: increase the subquery's step or shorten its range"`,
		},
		{
			name: "a subquery within the step limit", path: "query", query: "count_over_time(vector(1)[1h:1s])",
			code: http.StatusOK, body: `"value":[1700000060,"3600"]`,
		},
		{
			name: "a subquery without a step takes the default evaluation interval", path: "query", query: "max_over_time(vector(1)[12d:])",
			code: http.StatusBadRequest, body: "the subquery [12d:1m] has 17280 steps",
		},
		{
			name: "a lowered step limit", path: "query", query: "count_over_time(vector(1)[1h:1s])",
			cfg:  func(c *Config) { c.MaxSubquerySteps = 100 },
			code: http.StatusBadRequest, body: "the subquery [1h:1s] has 3600 steps (its range divided by its step), more than the 100 points per series allowed by " + stepsFlag,
		},
		{
			name: "the step limit off", path: "query", query: "count_over_time(vector(1)[1h:100ms])",
			cfg:  func(c *Config) { c.MaxSubquerySteps = 0 },
			code: http.StatusOK, body: `"value":[1700000060,"36000"]`,
		},
		{
			name: "nested subqueries evaluate the inner one over the outer one's range", path: "query",
			query: "max_over_time(count_over_time(vector(1)[10s:1ms])[1d:10s])",
			code:  http.StatusBadRequest,
			body:  "the query's subqueries evaluate 86418642 steps over the query's range, each held in memory like a sample, more than the limit of 50000000 samples set by " + samplesFlag,
		},
		{
			name: "a range query's subquery is evaluated over the query's range", path: "query_range",
			query: "max_over_time(vector(1)[5s:1ms])", form: day,
			code: http.StatusBadRequest,
			body: "the query's subqueries evaluate 86405001 steps over the query's range, each held in memory like a sample, more than the limit of 50000000 samples set by " + samplesFlag,
		},
		{
			name: "a subquery pinned by @ is evaluated once", path: "query_range",
			query: "max_over_time(vector(1)[5s:1ms] @ 1700000000)", form: day,
			code: http.StatusOK, body: `"values":[[1700000000,"1"]`,
		},
		{
			name: "a lowered sample limit", path: "query", query: "count_over_time(vector(1)[1h:1s])",
			cfg:  func(c *Config) { c.MaxSamples = 1000 },
			code: http.StatusBadRequest, body: "the query's subqueries evaluate 3601 steps over the query's range, each held in memory like a sample, more than the limit of 1000 samples set by " + samplesFlag,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := apiCluster(t, clusterOpts{cfg: tc.cfg})
			form := url.Values{"query": {tc.query}}
			if tc.path == "query" {
				form.Set("time", "1700000060")
			}
			for k, v := range tc.form {
				form[k] = v
			}
			code, body := post(t, srv, "/prometheus/api/v1/"+tc.path, form, "team-a")
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("got %d %s\nwant %d with %s", code, body, tc.code, tc.body)
			}
		})
	}
}

func TestSubqueryLimitFlags(t *testing.T) {
	cfg := defaultConfig()
	if cfg.MaxSubquerySteps != 11000 {
		t.Fatalf("-querier.max-subquery-steps defaults to %d, want 11000", cfg.MaxSubquerySteps)
	}
	cfg.MaxSubquerySteps = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-querier.max-subquery-steps must not be negative") {
		t.Fatalf("negative step limit: %v", err)
	}
	cfg = defaultConfig()
	cfg.QueryProtection.Rejection.Threshold.HeapUtilization = 2
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-querier.query-protection.rejection.threshold.heap-utilization must be between 0 and 1") {
		t.Fatalf("threshold 2: %v", err)
	}
}

// Over the heap threshold, queries and label requests are answered 503
// naming the flag; under it they are answered.
func TestHeapProtection(t *testing.T) {
	old := debug.SetMemoryLimit(1 << 40)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	for _, tc := range []struct {
		threshold float64
		code      int
	}{
		// Any heap at all is over a millionth of a millionth of 1 TiB,
		// and none of a test's is near 99% of it.
		{1e-12, http.StatusServiceUnavailable},
		{0.99, http.StatusOK},
	} {
		_, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.QueryProtection.Rejection.Threshold.HeapUtilization = tc.threshold }})
		for _, path := range []string{"/prometheus/api/v1/query?query=up&time=1700000060", "/prometheus/api/v1/labels", "/prometheus/api/v1/series?match[]=up"} {
			code, body := get(t, srv, path, "team-a")
			if code != tc.code {
				t.Fatalf("threshold %v, %s: %d %s, want %d", tc.threshold, path, code, body, tc.code)
			}
			if code != http.StatusOK && !strings.Contains(body, `"errorType":"unavailable","error":"heap utilization limit reached: the heap holds `) ||
				code != http.StatusOK && !strings.Contains(body, "of the memory limit of 1099511627776 bytes (GOMEMLIMIT), at or above the threshold of 0.0% set by -querier.query-protection.rejection.threshold.heap-utilization") {
				t.Fatalf("threshold %v, %s: %s", tc.threshold, path, body)
			}
		}
	}
}

func TestFetchedLimits(t *testing.T) {
	three := func(c *testCluster) {
		for _, j := range []string{"a", "b", "c"} {
			c.add("t1", series(map[string]string{"__name__": "m", "job": j}, sample(1000, 1), sample(2000, 2)))
		}
	}
	ctx := tenant.Inject(context.Background(), "t1")
	for _, tc := range []struct {
		name   string
		stream bool // QueryStream instead of QueryStreamChunks
		limits func(*validation.Limits)
		err    string
	}{
		{"series at the limit", false, func(l *validation.Limits) { l.MaxFetchedSeriesPerQuery = 3 }, ""},
		{"series over the limit", false, func(l *validation.Limits) { l.MaxFetchedSeriesPerQuery = 2 }, "the query hit the max number of series fetched limit (limit: 2 series, set by -querier.max-fetched-series-per-query or max_fetched_series_per_query)"},
		{"chunk bytes within the limit", false, func(l *validation.Limits) { l.MaxFetchedChunkBytesPerQuery = 1 << 20 }, ""},
		{"chunk bytes over the limit", false, func(l *validation.Limits) { l.MaxFetchedChunkBytesPerQuery = 10 }, "the query hit the aggregated chunk size limit (limit: 10 bytes, set by -querier.max-fetched-chunk-bytes-per-query or max_fetched_chunk_bytes_per_query)"},
		{"samples carry no chunk bytes", true, func(l *validation.Limits) { l.MaxFetchedChunkBytesPerQuery = 10 }, ""},
		{"data bytes within the limit", false, func(l *validation.Limits) { l.MaxFetchedDataBytesPerQuery = 1 << 20 }, ""},
		{"data bytes over the limit", false, func(l *validation.Limits) { l.MaxFetchedDataBytesPerQuery = 50 }, "the query hit the aggregated data size limit (limit: 50 bytes, set by -querier.max-fetched-data-bytes-per-query or max_fetched_data_bytes_per_query)"},
		{"sample data bytes over the limit", true, func(l *validation.Limits) { l.MaxFetchedDataBytesPerQuery = 50 }, "the query hit the aggregated data size limit (limit: 50 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{limits: tc.limits})
			c.querier.queryable.streamSamples = tc.stream
			three(c)
			got, err := selectAll(ctx, c.querier.Queryable(), "m")
			if tc.err == "" {
				if err != nil || len(got) != 3 {
					t.Fatalf("got %d series, %v", len(got), err)
				}
				return
			}
			var le *limitError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want a limit error containing %q", err, tc.err)
			}
		})
	}
}

// The bytes of every replica's answer count: one answer fits the limit,
// the quorum's two do not.
func TestFetchedBytesCountEveryReplica(t *testing.T) {
	ctx := tenant.Inject(context.Background(), "t1")
	ts := series(map[string]string{"__name__": "m", "job": "a"}, sample(1000, 1), sample(2000, 2))
	cs, err := encodeChunks(ts, 120)
	if err != nil {
		t.Fatal(err)
	}
	one := (&prompb.ChunkedSeries{Labels: cs.Labels, Chunks: cs.Chunks}).Size()
	c := newCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxFetchedDataBytesPerQuery = one + 1 }})
	c.add("t1", ts)
	if _, err := selectAll(ctx, c.querier.Queryable(), "m"); err == nil || !strings.Contains(err.Error(), "aggregated data size limit") {
		t.Fatalf("two replicas of %d bytes under a limit of %d: %v", one, one+1, err)
	}
	c = newCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxFetchedDataBytesPerQuery = 3 * one }})
	c.add("t1", ts)
	if _, err := selectAll(ctx, c.querier.Queryable(), "m"); err != nil {
		t.Fatalf("every replica within the limit: %v", err)
	}
}

var noopQueryable = storage.QueryableFunc(func(int64, int64) (storage.Querier, error) { return storage.NoopQuerier(), nil })

// LimitEngine gives another evaluator (the ruler's engine) the querier's
// subquery checks and the querier's flags.
func TestLimitEngineRefusesOversizedSubqueries(t *testing.T) {
	cfg := Config{MaxSubquerySteps: 11000, MaxSamples: 50000000, DefaultEvaluationInterval: time.Minute}
	e := LimitEngine(promql.NewEngine(promql.EngineOpts{MaxSamples: cfg.MaxSamples, Timeout: time.Minute}), cfg)
	_, err := e.NewInstantQuery(context.Background(), noopQueryable, nil, "count_over_time(vector(1)[1d:1ms])", time.Now())
	if err == nil || !strings.Contains(err.Error(), "-querier.max-subquery-steps (max_subquery_steps)") {
		t.Fatalf("got %v, want a refusal naming -querier.max-subquery-steps", err)
	}
	if _, err := e.NewInstantQuery(context.Background(), noopQueryable, nil, "count_over_time(vector(1)[1h:1m])", time.Now()); err != nil {
		t.Fatalf("a 60-step subquery: %v", err)
	}
}

// BenchmarkCheckSubqueries measures what the subquery checks add to a
// query's construction: a second parse of the expression and a walk of it.
func BenchmarkCheckSubqueries(b *testing.B) {
	e := &limitedEngine{parser: parser.NewParser(parser.Options{}), maxSubquerySteps: 11000, maxSamples: 50000000, defaultStep: 60000}
	for _, q := range []string{
		`sum by (job) (rate(http_requests_total{job=~"api|web", code!~"5.."}[5m]))`,
		`max_over_time(sum by (job) (rate(http_requests_total{job=~"api|web"}[5m]))[1h:1m]) / on (job) group_left avg_over_time(up[1h:30s])`,
	} {
		b.Run(strconv.Itoa(len(q))+"B", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := e.checkSubqueries(q, 3600000); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
