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

// -querier.max-fetched-data-duration-per-query counts each selector's own
// share of the range once and what it reads before each part (its range,
// lookback, offsets) once per part.
func TestMaxFetchedDataDurationPerQuery(t *testing.T) {
	hour := time.Hour.Milliseconds()
	for _, tc := range []struct {
		query       string
		maxDuration time.Duration
		interval    int64
	}{
		// 5h of range (intervals 0 to 4) plus 1h per part for [5m]:
		// (8h-5h)/1h = 3 parts, which 2h intervals give.
		{"rate(up[5m])", 8 * time.Hour, 2 * hour},
		// (6h-5h)/1h: one part, which 4h gives.
		{"rate(up[5m])", 6 * time.Hour, 4 * hour},
		// Two selectors: 10h of range, 2h per part: (14h-10h)/2h = 2
		// parts: [0, 2h) and [2h, 4h].
		{"rate(up[5m]) / rate(down[5m])", 14 * time.Hour, 2 * hour},
		// An offset moves both ends of the range read: it adds nothing,
		// (7h-5h)/1h = 2 parts.
		{"rate(up[5m] offset 1d)", 7 * time.Hour, 2 * hour},
		// A subquery's range is read again before each part: 1d and 5m,
		// 25h per part; within 30h one part.
		{"max_over_time(rate(up[5m])[1d:5m])", 30 * time.Hour, 4 * hour},
		// Selectors reading nothing before the step but the lookback:
		// 1h per part as well.
		{"up", 8 * time.Hour, 2 * hour},
		// No selector: the limit over the interval, 8 parts: the base.
		{"vector(1)", 8 * time.Hour, hour},
		{"rate(up[5m])", 0, hour},
	} {
		cfg := defaultConfig()
		cfg.SplitQueriesByInterval = time.Hour
		cfg.MaxFetchedDataDurationPerQuery = tc.maxDuration
		f := &Frontend{cfg: cfg}
		if got, _ := f.splitInterval("t1", tc.query, 0, 4*hour, 300_000); got != tc.interval {
			t.Errorf("%s within %s: interval %s, want %s", tc.query, tc.maxDuration, time.Duration(got)*time.Millisecond, time.Duration(tc.interval)*time.Millisecond)
		}
	}

	// Through the frontend, with 3 vertical shards the limit is divided
	// between them: 15h/3 = 5h, all of the range's 5h: one part of 3
	// shards.
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	sharded := &shardingAPI{promAPI: api}
	cfg := defaultConfig()
	cfg.SplitQueriesByInterval = time.Hour
	cfg.MaxFetchedDataDurationPerQuery = 15 * time.Hour
	h := newHarness(t, cfg, sharded, 4)
	h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: 3}, nil)
	query := "sum by (job) (rate(http_requests_total[5m]))"
	want := direct(api, query, 1800, 4*3600, 300)
	code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(query, 1800, 4*3600, 300))
	if code != 200 {
		t.Fatalf("%d %s", code, got)
	}
	if err := sameMatrix(got, want, 1e-9); err != nil {
		t.Error(err)
	}
	if asked := len(sharded.asked()); asked != 3 {
		t.Errorf("%d queries reached the queriers, want 3 (one part of 3 shards)", asked)
	}
	cfg.MaxFetchedDataDurationPerQuery = -time.Second
	if err := cfg.Validate(); err == nil || err.Error() != "-querier.max-fetched-data-duration-per-query must not be negative (0 disables), got -1s" {
		t.Fatalf("negative: %v", err)
	}
}

// With -querier.enable-dynamic-vertical-sharding the frontend weighs every
// vertical shard size up to the tenant's with the split interval the
// limits then allow, and runs the combination making the most queries.
func TestDynamicVerticalSharding(t *testing.T) {
	api := newPromAPIWith(t, shardingData())
	api.st = querysharding.Queryable{Queryable: api.st}
	const query = "sum by (job) (rate(http_requests_total[5m]))"
	start, end, step := 1800.0, 4*3600.0, 300.0
	want := direct(api, query, start, end, step)
	for _, tc := range []struct {
		name        string
		maxShards   int
		maxDuration time.Duration
		dynamic     bool
		asked       int
		shards      int
	}{
		// 15h over 3 shards leaves 5h per shard, the range's own 5h: one
		// part of 3 shards. In 1 shard, (15h-5h)/1h allows 10 parts: the
		// 4 hourly parts; in 2, (7.5h-5h)/1h two parts of 2 shards: 4
		// too, and the fewer shards win.
		{"max fetched duration", 0, 15 * time.Hour, false, 3, 3},
		{"max fetched duration, dynamic", 0, 15 * time.Hour, true, 4, 1},
		// At most 5 queries: one part of 3 shards (3), or 4 hourly
		// parts unsharded (4).
		{"max shards", 5, 0, false, 3, 3},
		{"max shards, dynamic", 5, 0, true, 4, 1},
		// At most 6: 2 parts of 3 shards make 6, more than 4 hourly parts.
		{"max shards, dynamic, sharded", 6, 0, true, 6, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sharded := &shardingAPI{promAPI: api}
			cfg := defaultConfig()
			cfg.SplitQueriesByInterval = time.Hour
			cfg.MaxShardsPerQuery = tc.maxShards
			cfg.MaxFetchedDataDurationPerQuery = tc.maxDuration
			cfg.EnableDynamicVerticalSharding = tc.dynamic
			h := newHarness(t, cfg, sharded, 4)
			h.f.limits = validation.NewOverrides(validation.Limits{MaxOutstandingPerTenant: 100, QueryVerticalShardSize: 3}, nil)
			code, got := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", rangeParams(query, start, end, step))
			if code != 200 {
				t.Fatalf("%d %s", code, got)
			}
			if err := sameMatrix(got, want, 1e-9); err != nil {
				t.Error(err)
			}
			if asked := len(sharded.asked()); asked != tc.asked {
				t.Errorf("%d queries reached the queriers, want %d", asked, tc.asked)
			}
			if _, shards := h.f.splitInterval("t1", query, 1800_000, 4*3600_000, 300_000); shards != tc.shards {
				t.Errorf("vertical shard size %d, want %d", shards, tc.shards)
			}
		})
	}
}
