package frontend

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// prioritized is limits whose query_priority gives critical queries 10,
// range queries 5, instant queries of the last hour 3, and others 1.
func prioritized(t *testing.T) *validation.Limits {
	t.Helper()
	l := *defaultLimits(nil).For("x")
	l.QueryPriority = validation.QueryPriority{Enabled: true, DefaultPriority: 1, Priorities: []validation.PriorityDef{
		{Priority: 10, QueryAttributes: []validation.QueryAttribute{{Regex: `.*critical.*`}}},
		{Priority: 5, QueryAttributes: []validation.QueryAttribute{{APIType: "query_range"}}},
		{Priority: 3, QueryAttributes: []validation.QueryAttribute{{APIType: "query", TimeWindow: validation.TimeWindow{Start: model.Duration(time.Hour)}}}},
	}}
	if err := l.QueryPriority.Validate(); err != nil {
		t.Fatal(err)
	}
	return &l
}

// TestQueryPriorityAttributes: a query gets the priority of the first
// definition one of whose attributes (regex, api type, time window)
// matches it, the default priority otherwise, none with priorities off.
func TestQueryPriorityAttributes(t *testing.T) {
	on := prioritized(t)
	off := *on
	off.QueryPriority.Enabled = false
	f, err := New(defaultConfig(), nil, nil, nil, WithLimits(defaultLimits(map[string]*validation.Limits{"on": on, "off": &off})))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(-d).Unix(), 10) }
	for _, c := range []struct {
		name   string
		tenant string
		path   string
		params url.Values
		want   int64
		ok     bool
	}{
		{"regex, before the api type", "on", "/prometheus/api/v1/query_range", url.Values{"query": {"rate(critical_errors[5m])"}, "start": {unix(time.Hour)}, "end": {unix(0)}, "step": {"60"}}, 10, true},
		{"api type", "on", "/prometheus/api/v1/query_range", url.Values{"query": {"up"}, "start": {unix(time.Hour)}, "end": {unix(0)}, "step": {"60"}}, 5, true},
		{"within the time window", "on", "/prometheus/api/v1/query", url.Values{"query": {"up"}, "time": {unix(10 * time.Minute)}}, 3, true},
		{"range selector beyond the time window", "on", "/prometheus/api/v1/query", url.Values{"query": {"rate(up[2h])"}, "time": {unix(0)}}, 1, true},
		{"before the time window", "on", "/prometheus/api/v1/query", url.Values{"query": {"up"}, "time": {unix(5 * time.Hour)}}, 1, true},
		{"metadata selector regex", "on", "/prometheus/api/v1/series", url.Values{"match[]": {`{__name__="critical_errors"}`}}, 10, true},
		{"metadata matching none", "on", "/prometheus/api/v1/labels", url.Values{}, 1, true},
		{"query that does not parse", "on", "/prometheus/api/v1/query", url.Values{"query": {"critical("}}, 1, true},
		{"priorities disabled", "off", "/prometheus/api/v1/query", url.Values{"query": {"critical"}}, 0, false},
	} {
		r := httptest.NewRequest(http.MethodGet, c.path+"?"+c.params.Encode(), nil)
		got, ok := f.queryPriority(r, c.params, c.tenant, now)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: priority %d (assigned %v), want %d (%v)", c.name, got, ok, c.want, c.ok)
		}
	}
}

// TestQueryPriorityOrdersTheQueue: queued behind a running query, the
// tenant's critical query is handed to the querier before the ones
// enqueued earlier, and the queue length is reported by priority.
func TestQueryPriorityOrdersTheQueue(t *testing.T) {
	var (
		mu      sync.Mutex
		order   []string
		release = make(chan struct{})
	)
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		order = append(order, r.FormValue("query"))
		mu.Unlock()
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	})
	h := newHarnessWith(t, querier, WithLimits(defaultLimits(map[string]*validation.Limits{"t": prioritized(t)})))
	old := url.Values{"time": {strconv.FormatInt(time.Now().Add(-5*time.Hour).Unix(), 10)}}
	var wg sync.WaitGroup
	ask := func(query string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			params := url.Values{"query": {query}, "time": old["time"]}
			if code, body := h.get(context.Background(), "t", "/prometheus/api/v1/query", params); code != 200 {
				t.Errorf("%s: %d %s", query, code, body)
			}
		}()
	}
	ask("running")
	testkit.Eventually(t, 10*time.Second, "the first query to reach the querier", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 1
	})
	ask("low_a")
	testkit.Eventually(t, 10*time.Second, "low_a queued", func() bool { return h.f.queue.len("t") == 1 })
	ask("low_b")
	testkit.Eventually(t, 10*time.Second, "low_b queued", func() bool { return h.f.queue.len("t") == 2 })
	ask("critical_alerts")
	testkit.Eventually(t, 10*time.Second, "critical_alerts queued", func() bool { return h.f.queue.len("t") == 3 })
	for _, c := range []struct {
		priority string
		want     float64
	}{{"10", 1}, {"1", 2}} {
		if v := testkit.MetricSum(t, h.reg, "cortex_query_frontend_queue_length", "user", "t", "priority", c.priority, "type", "priority"); v != c.want {
			t.Errorf(`cortex_query_frontend_queue_length{user="t",priority=%q,type="priority"} = %v, want %v`, c.priority, v, c.want)
		}
	}
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	want := []string{"running", "critical_alerts", "low_a", "low_b"}
	if len(order) != len(want) {
		t.Fatalf("the querier ran %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("the querier ran %v, want %v", order, want)
		}
	}
	if v := testkit.MetricSum(t, h.reg, "cortex_request_queue_requests_total", "user", "t", "priority", "10"); v != 1 {
		t.Errorf(`cortex_request_queue_requests_total{user="t",priority="10"} = %v, want 1`, v)
	}
}

// TestQueryPriorityLogged: the "query stats" line names the priority
// assigned, as Cortex's.
func TestQueryPriorityLogged(t *testing.T) {
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	})
	cfg := defaultConfig()
	cfg.QueryStatsEnabled = true
	h, logs := newLoggingHarness(t, cfg, querier, WithLimits(defaultLimits(map[string]*validation.Limits{"t": prioritized(t)})))
	if code, body := h.get(context.Background(), "t", "/prometheus/api/v1/query", url.Values{"query": {"critical_alerts"}}); code != 200 {
		t.Fatalf("query: %d %s", code, body)
	}
	if code, body := h.get(context.Background(), "other", "/prometheus/api/v1/query", url.Values{"query": {"critical_alerts"}}); code != 200 {
		t.Fatalf("query: %d %s", code, body)
	}
	stats := logs.records("query stats")
	if len(stats) != 2 || stats[0]["priority"] != 10.0 {
		t.Fatalf("query stats: %v, want priority 10 on the first", stats)
	}
	if p, ok := stats[1]["priority"]; ok {
		t.Fatalf("a tenant without query priorities logged priority %v", p)
	}
}
