package querier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/grafana/dskit/ring"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// The TSDB status (<prefix>/api/v1/status/tsdb) of a tenant is the
// statistics of its TSDB heads, as Prometheus's API answers them for its
// own head. Each ingester computes them for the tenant's head
// (cortex.Ingester/TSDBStatus); the querier asks every ingester of the ring
// and merges, as Mimir's cardinality APIs do:
//   - every count is summed per name across the ingesters, then divided by
//     the replication factor (or by the number of ingesters when there are
//     fewer), since each series is held by that many ingesters. Counts of
//     distinct values (numLabelPairs, labelValueCountByLabelName) are
//     approximated the same way: a value held by series on more ingesters
//     than the replication factor counts more than once;
//   - each ingester answers its own top limit entries, so an entry just
//     below the limit on every ingester may be missing from the merged top
//     limit;
//   - minTime and maxTime are the earliest and latest of the heads.
// Blocks in long-term storage are not counted, as Prometheus counts only
// its head.

const (
	tsdbStatusPath     = "/api/v1/status/tsdb"
	defaultTSDBLimit   = 10
	maxTSDBStatusLimit = 10000
)

// tsdbStat is one {name, value} entry of Prometheus's TSDBStatus.
type tsdbStat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

type tsdbHeadStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int    `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

// tsdbStatus is Prometheus's TSDBStatus (web/api/v1).
type tsdbStatus struct {
	HeadStats                   tsdbHeadStats `json:"headStats"`
	SeriesCountByMetricName     []tsdbStat    `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []tsdbStat    `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []tsdbStat    `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []tsdbStat    `json:"seriesCountByLabelValuePair"`
}

// isTSDBStatusPath reports whether path, under a prefix's /api/v1/, is
// status/tsdb.
func isTSDBStatusPath(path string) bool {
	return strings.HasSuffix(path, tsdbStatusPath)
}

// tsdbStatus answers GET <prefix>/api/v1/status/tsdb?limit=N for the
// request's tenant.
func (q *Querier) tsdbStatus(r *http.Request) apiResult {
	limit := defaultTSDBLimit
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return invalidParamError(fmt.Errorf("limit must be a positive number, got %q", s), "limit")
		}
		if n > maxTSDBStatusLimit {
			return invalidParamError(fmt.Errorf("limit must not exceed %d, got %d", maxTSDBStatusLimit, n), "limit")
		}
		limit = n
	}
	ctx, cancel := q.withTimeout(r)
	defer cancel()
	res, err := q.queryable.tsdbStatus(ctx, limit)
	if err != nil {
		return apiResult{err: apiErrorFor(err)}
	}
	return apiResult{data: res}
}

// tsdbStatus asks every ingester of the ring for the head statistics of
// the tenant in ctx and merges them. Every ingester must answer: a missing
// one would leave its series out of the counts. An ingester that does not
// serve TSDBStatus (an older version, during a rolling upgrade) counts as
// empty.
func (q *ingesterQueryable) tsdbStatus(ctx context.Context, limit int) (*tsdbStatus, error) {
	if _, err := tenant.ID(ctx); err != nil {
		return nil, err
	}
	rs, err := q.ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		return nil, &unavailableError{ringError(q.ring, err)}
	}
	req := &client.TSDBStatusRequest{Limit: int32(limit)}
	answers := make([]*client.TSDBStatusResponse, len(rs.Instances))
	errs := make([]error, len(rs.Instances))
	var wg sync.WaitGroup
	for i := range rs.Instances {
		addr := rs.Instances[i].Addr
		wg.Go(func() {
			c, err := q.pool.Get(addr)
			if err != nil {
				errs[i] = fmt.Errorf("ingester %s: %w", addr, err)
				return
			}
			res, err := c.TSDBStatus(ctx, req)
			switch {
			case status.Code(err) == codes.Unimplemented:
				answers[i] = &client.TSDBStatusResponse{}
			case err != nil:
				errs[i] = fmt.Errorf("ingester %s: %w", addr, err)
			default:
				answers[i] = res
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("querying ingesters: %w", ctx.Err())
		}
		return nil, &unavailableError{fmt.Errorf("the TSDB status needs every ingester's answer: %w", err)}
	}
	return mergeTSDBStatus(answers, q.ring.ReplicationFactor(), limit), nil
}

// mergeTSDBStatus sums the ingesters' answers per name, divides by the
// number of ingesters holding each series (rf, at most the number of
// answers) and keeps the top limit of each list.
func mergeTSDBStatus(answers []*client.TSDBStatusResponse, rf, limit int) *tsdbStatus {
	rf = max(min(rf, len(answers)), 1)
	div := func(v uint64) uint64 { return (v + uint64(rf)/2) / uint64(rf) }
	out := &tsdbStatus{HeadStats: tsdbHeadStats{MinTime: math.MaxInt64, MaxTime: math.MinInt64}}
	var series, pairs, chunks uint64
	byMetric, byLabel, memory, byPair := map[string]uint64{}, map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
	for _, a := range answers {
		series += a.NumSeries
		pairs += a.NumLabelPairs
		chunks += a.ChunkCount
		if a.NumSeries > 0 && a.MinTime <= a.MaxTime {
			out.HeadStats.MinTime = min(out.HeadStats.MinTime, a.MinTime)
			out.HeadStats.MaxTime = max(out.HeadStats.MaxTime, a.MaxTime)
		}
		sumStats(byMetric, a.SeriesCountByMetricName)
		sumStats(byLabel, a.LabelValueCountByLabelName)
		sumStats(memory, a.MemoryInBytesByLabelName)
		sumStats(byPair, a.SeriesCountByLabelValuePair)
	}
	out.HeadStats.NumSeries = div(series)
	out.HeadStats.NumLabelPairs = int(min(div(pairs), math.MaxInt32))
	out.HeadStats.ChunkCount = int64(min(div(chunks), math.MaxInt64))
	out.SeriesCountByMetricName = topStats(byMetric, div, limit)
	out.LabelValueCountByLabelName = topStats(byLabel, div, limit)
	out.MemoryInBytesByLabelName = topStats(memory, div, limit)
	out.SeriesCountByLabelValuePair = topStats(byPair, div, limit)
	return out
}

func sumStats(into map[string]uint64, stats []*client.TSDBStat) {
	for _, s := range stats {
		into[s.Name] += s.Value
	}
}

// topStats is the limit largest of sums after div, largest first, equal
// values by name.
func topStats(sums map[string]uint64, div func(uint64) uint64, limit int) []tsdbStat {
	out := make([]tsdbStat, 0, len(sums))
	for name, v := range sums {
		out = append(out, tsdbStat{Name: name, Value: div(v)})
	}
	slices.SortFunc(out, func(a, b tsdbStat) int {
		if c := cmp.Compare(b.Value, a.Value); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out[:min(len(out), limit)]
}
