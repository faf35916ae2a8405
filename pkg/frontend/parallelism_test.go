package frontend

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// concurrencyAPI answers queries with next, each held until over+1 are in
// flight together (or 250ms pass), and records the most in flight.
type concurrencyAPI struct {
	next http.Handler
	over int

	mu       sync.Mutex
	cond     *sync.Cond
	inFlight int
	most     int
}

func (a *concurrencyAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.inFlight++
	a.most = max(a.most, a.inFlight)
	a.cond.Broadcast()
	deadline := time.AfterFunc(250*time.Millisecond, func() { a.mu.Lock(); a.cond.Broadcast(); a.mu.Unlock() })
	start := time.Now()
	for a.inFlight <= a.over && time.Since(start) < 250*time.Millisecond {
		a.cond.Wait()
	}
	deadline.Stop()
	a.mu.Unlock()
	// The queriers' engine answers as one tenant, whichever the query names.
	a.next.ServeHTTP(w, r.WithContext(tenant.Inject(r.Context(), "t1")))
	a.mu.Lock()
	a.inFlight--
	a.mu.Unlock()
}

func (a *concurrencyAPI) mostInFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.most
}

// TestMaxQueryParallelism: the split parts and shard queries of one client
// query in flight at once never exceed the tenant's
// -querier.max-query-parallelism, for several tenants the smallest of
// theirs, though the queriers could take more.
func TestMaxQueryParallelism(t *testing.T) {
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	cfg := defaultConfig()
	cfg.SplitQueriesByInterval = time.Hour
	for _, c := range []struct {
		tenant, query string
		limit         int
	}{
		{"t1", `memory_bytes`, 2},                   // split parts
		{"t1", `sum by (job) (memory_bytes)`, 2},    // split parts, each in shards
		{"t3", `sum by (job) (memory_bytes)`, 3},    // one part, shards only
		{"t1|t3", `sum by (job) (memory_bytes)`, 2}, // several tenants: the smallest
	} {
		held := &concurrencyAPI{next: &shardingAPI{promAPI: api}, over: c.limit}
		held.cond = sync.NewCond(&held.mu)
		h := newHarness(t, cfg, held, 8)
		WithTenantFederation(tenantfederation.Config{Enabled: true, MaxConcurrent: 16})(h.f)
		h.api = tenant.MultiTenantHTTPMiddleware(true, h.f.Handler())
		perTenant := map[string]*validation.Limits{
			"t1": {MaxOutstandingPerTenant: 100, QueryVerticalShardSize: 4, MaxQueryParallelism: 2},
			"t3": {MaxOutstandingPerTenant: 100, QueryVerticalShardSize: 4, MaxQueryParallelism: 3},
		}
		h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100}, func() map[string]*validation.Limits { return perTenant })
		start, end := 1800.0, 4*3600.0
		if c.tenant == "t3" {
			start, end = 3600, 3600+1800
		}
		code, body := h.get(context.Background(), c.tenant, "/prometheus/api/v1/query_range", rangeParams(c.query, start, end, 300))
		if code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", c.tenant, c.query, code, body)
		}
		if got := held.mostInFlight(); got != c.limit {
			t.Errorf("%s %s: %d queries in flight at most, want %d (-querier.max-query-parallelism)", c.tenant, c.query, got, c.limit)
		}
	}
}
