package querier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/grafana/dskit/ring"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// UserStats is a tenant's ingestion as Cortex's /api/v1/user_stats answers
// it, with Cortex's JSON names: summed over the ingesters, divided by the
// replication factor (each series is held that many times).
type UserStats struct {
	IngestionRate     float64 `json:"ingestionRate"`
	NumSeries         uint64  `json:"numSeries"`
	APIIngestionRate  float64 `json:"APIIngestionRate"`
	RuleIngestionRate float64 `json:"RuleIngestionRate"`
}

// UserStatsHandler serves Cortex's /api/v1/user_stats (and the legacy
// <-http.prefix>/user_stats) for the request's tenant. Every ingester of
// the ring must answer, as for the TSDB status: a missing one would leave
// its series out.
func (q *Querier) UserStatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := q.withTimeout(r)
		defer cancel()
		stats, err := q.queryable.userStats(ctx)
		if err != nil {
			code := http.StatusInternalServerError
			var unavailable *unavailableError
			if errors.As(err, &unavailable) {
				code = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(stats)
	})
}

func (q *ingesterQueryable) userStats(ctx context.Context) (*UserStats, error) {
	if _, err := tenant.ID(ctx); err != nil {
		return nil, err
	}
	rs, err := q.ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		return nil, &unavailableError{ringError(q.ring, err)}
	}
	var (
		mu    sync.Mutex
		total UserStats
		errs  = make([]error, len(rs.Instances))
		wg    sync.WaitGroup
	)
	for i := range rs.Instances {
		addr := rs.Instances[i].Addr
		wg.Go(func() {
			c, err := q.pool.Get(addr)
			if err != nil {
				errs[i] = fmt.Errorf("ingester %s: %w", addr, err)
				return
			}
			res, err := c.UserStats(ctx, &client.UserStatsRequest{})
			if err != nil {
				errs[i] = fmt.Errorf("ingester %s: %w", addr, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			total.IngestionRate += res.IngestionRate
			total.NumSeries += res.NumSeries
			total.APIIngestionRate += res.ApiIngestionRate
			total.RuleIngestionRate += res.RuleIngestionRate
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("querying ingesters: %w", ctx.Err())
		}
		return nil, &unavailableError{fmt.Errorf("the tenant's stats need every ingester's answer: %w", err)}
	}
	factor := min(q.ring.ReplicationFactor(), len(rs.Instances))
	if factor > 1 {
		total.IngestionRate /= float64(factor)
		total.NumSeries /= uint64(factor)
		total.APIIngestionRate /= float64(factor)
		total.RuleIngestionRate /= float64(factor)
	}
	return &total, nil
}
