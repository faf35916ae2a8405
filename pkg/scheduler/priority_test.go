package scheduler_test

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/frontend"
	"github.com/cortex-tls/cortex/pkg/scheduler"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// TestPriorityThroughScheduler: the priority the query-frontend assigns a
// query reaches the query-scheduler, whose queue hands the tenant's
// critical query to the next free querier before the earlier ones.
func TestPriorityThroughScheduler(t *testing.T) {
	var l validation.Limits
	l.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	l.QueryPriority = validation.QueryPriority{Enabled: true, Priorities: []validation.PriorityDef{
		{Priority: 10, QueryAttributes: []validation.QueryAttribute{{Regex: "critical.*"}}},
	}}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	overrides := validation.NewOverrides(l, nil)

	var (
		mu   sync.Mutex
		seen []string
	)
	tokens := make(chan struct{}, 10)
	top := newTopologyFrontendOpts(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.FormValue("query"))
		mu.Unlock()
		<-tokens
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}, func(*frontend.Config) {}, []frontend.Option{frontend.WithLimits(overrides)},
		scheduler.WithQueryPriority(func(tenant string) validation.QueryPriority { return overrides.For(tenant).QueryPriority }))
	api := tenant.HTTPMiddleware(true, top.front.Handler())
	seenCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	var wg sync.WaitGroup
	ask := func(query string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest(http.MethodGet, "/prometheus/api/v1/query?"+url.Values{"query": {query}}.Encode(), nil)
			req.Header.Set(tenant.HeaderName, "tenant-a")
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Errorf("%s: %d %s", query, rec.Code, rec.Body)
			}
		}()
	}
	// Both querier workers busy.
	ask("running_1")
	ask("running_2")
	testkit.Eventually(t, 10*time.Second, "both workers running a query", func() bool { return seenCount() == 2 })
	ask("low_a")
	testkit.Eventually(t, 10*time.Second, "low_a queued", func() bool { return top.sched.QueueLen("tenant-a") == 1 })
	ask("low_b")
	testkit.Eventually(t, 10*time.Second, "low_b queued", func() bool { return top.sched.QueueLen("tenant-a") == 2 })
	ask("critical_alerts")
	testkit.Eventually(t, 10*time.Second, "critical_alerts queued", func() bool { return top.sched.QueueLen("tenant-a") == 3 })
	if v := testkit.MetricSum(t, top.schedReg, "cortex_query_scheduler_queue_length", "user", "tenant-a", "priority", "10", "type", "priority"); v != 1 {
		t.Errorf(`cortex_query_scheduler_queue_length{user="tenant-a",priority="10",type="priority"} = %v, want 1`, v)
	}
	// One worker frees: it takes the critical query.
	tokens <- struct{}{}
	testkit.Eventually(t, 10*time.Second, "a third query on the querier", func() bool { return seenCount() == 3 })
	mu.Lock()
	third := seen[2]
	mu.Unlock()
	if third != "critical_alerts" {
		t.Errorf("the freed querier worker took %q, want critical_alerts", third)
	}
	for range 4 {
		tokens <- struct{}{}
	}
	wg.Wait()
	if v := testkit.MetricSum(t, top.schedReg, "cortex_request_queue_requests_total", "user", "tenant-a", "priority", "0"); v != 4 {
		t.Errorf(`cortex_request_queue_requests_total{user="tenant-a",priority="0"} = %v, want 4`, v)
	}
}
