package frontend

import (
	"context"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// With -querier.max-shards-per-query a range query is split coarser, so
// that its parts times its vertical shards stay within the limit; its
// answer does not change.
func TestMaxShardsPerQuery(t *testing.T) {
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	sharded := &shardingAPI{promAPI: api}
	start, end, step := 1800.0, 4*3600.0, 300.0
	for _, tc := range []struct {
		maxShards, shardSize int
		query                string
		asked                int
	}{
		// Split hourly, 4 parts; 3 vertical shards each: 12 queries.
		{0, 3, "sum by (job) (rate(http_requests_total[5m]))", 12},
		// At most 6: 2 parts of 2h ([1800, 7200), [7200, 14400]) times 3.
		{6, 3, "sum by (job) (rate(http_requests_total[5m]))", 6},
		// At most 5: 1 part (2h cuts the range into 2, 3h too) times 3.
		{5, 3, "sum by (job) (rate(http_requests_total[5m]))", 3},
		// Not sharded: 4 parts fit in 6.
		{6, 1, "sum(rate(http_requests_total[5m]))", 4},
		// At most 2, a query that does not shard: 2 parts, whatever the
		// shard size.
		{2, 3, "sum(rate(http_requests_total[5m]))", 2},
	} {
		cfg := defaultConfig()
		cfg.SplitQueriesByInterval = time.Hour
		cfg.MaxShardsPerQuery = tc.maxShards
		h := newHarness(t, cfg, sharded, 4)
		h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: tc.shardSize}, nil)
		want := direct(api, tc.query, start, end, step)
		code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(tc.query, start, end, step))
		if code != 200 {
			t.Fatalf("max %d, shards %d: %d %s", tc.maxShards, tc.shardSize, code, got)
		}
		if err := sameMatrix(got, want, 1e-9); err != nil {
			t.Errorf("max %d, shards %d: %v", tc.maxShards, tc.shardSize, err)
		}
		if asked := len(sharded.asked()); asked != tc.asked {
			t.Errorf("max %d, shards %d: %d queries reached the queriers, want %d", tc.maxShards, tc.shardSize, asked, tc.asked)
		}
	}
	cfg := defaultConfig()
	cfg.MaxShardsPerQuery = -1
	if err := cfg.Validate(); err == nil || err.Error() != "-querier.max-shards-per-query must not be negative (0 disables), got -1" {
		t.Fatalf("negative: %v", err)
	}
}
