package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier/codec"
	querierstats "github.com/cortex-tls/cortex/pkg/querier/stats"
)

// Sources of queries, as Cortex's requestmeta names them.
const (
	sourceAPI   = "api"
	sourceRuler = "ruler"
)

type sourceKey struct{}

// withRulerSource marks ctx as a ruler's query (-ruler.frontend-address).
func withRulerSource(ctx context.Context) context.Context {
	return context.WithValue(ctx, sourceKey{}, sourceRuler)
}

func querySource(ctx context.Context) string {
	if s, ok := ctx.Value(sourceKey{}).(string); ok {
		return s
	}
	return sourceAPI
}

// queryStats are what the frontend learns of one client query: how many
// requests reached the queriers and how long the queriers took.
type queryStats struct {
	querierRequests atomic.Int64
	wallTimeNanos   atomic.Int64
	// querier sums what the queriers counted (querierstats.Header): the
	// postings the store-gateways touched.
	querier querierstats.QueryStats
}

type statsKey struct{}

func statsFrom(ctx context.Context) *queryStats {
	s, _ := ctx.Value(statsKey{}).(*queryStats)
	return s
}

// queryStatsMetrics are Cortex's per-tenant query statistics metrics.
type queryStatsMetrics struct {
	querySeconds *prometheus.CounterVec
}

func newQueryStatsMetrics(reg prometheus.Registerer) *queryStatsMetrics {
	m := &queryStatsMetrics{
		querySeconds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cortex_query_seconds_total", Help: "Total amount of wall clock time spend processing queries."}, []string{"source", "user"}),
	}
	if reg != nil {
		reg.MustRegister(m.querySeconds)
	}
	return m
}

// takeQuerierWallTime removes a querier's wall time from its answer and
// adds it, and the request, to the query's statistics.
func takeQuerierWallTime(ctx context.Context, resp *frontendpb.HTTPResponse) {
	if resp == nil {
		return
	}
	var (
		wall    float64
		counted *querierstats.QueryStats
	)
	kept := resp.Headers[:0]
	for _, h := range resp.Headers {
		switch http.CanonicalHeaderKey(h.Key) {
		case frontendpb.QuerierWallTimeHeader:
			if len(h.Values) > 0 {
				wall, _ = strconv.ParseFloat(h.Values[0], 64)
			}
			continue
		case querierstats.Header:
			if len(h.Values) > 0 {
				counted, _ = querierstats.Decode(h.Values[0])
			}
			continue
		}
		kept = append(kept, h)
	}
	resp.Headers = kept
	if s := statsFrom(ctx); s != nil {
		s.querierRequests.Add(1)
		s.wallTimeNanos.Add(int64(wall * float64(time.Second)))
		s.querier.Merge(counted)
	}
}

// reportQueryStats logs the "query stats" line of a query, as Cortex's
// frontend does with -frontend.query-stats-enabled (a ruler's query only
// with -frontend.enabled-ruler-query-stats), and counts the querier wall
// time in cortex_query_seconds_total. The fetched series, chunks and
// samples Cortex's queriers report are not measured here.
func (f *Frontend) reportQueryStats(ctx context.Context, r *http.Request, vals url.Values, tenantID string, stats *queryStats, took time.Duration, code int, resp *frontendpb.HTTPResponse, err error) {
	source := querySource(ctx)
	wall := time.Duration(stats.wallTimeNanos.Load())
	f.statsMetrics.querySeconds.WithLabelValues(source, tenantID).Add(wall.Seconds())
	if source == sourceRuler && !f.cfg.EnabledRulerQueryStatsLog {
		return
	}
	size := 0
	if resp != nil && err == nil {
		size = len(resp.Body)
	}
	attrs := []any{
		"component", "query-frontend",
		"method", r.Method,
		"path", r.URL.Path,
		"response_time", took.String(),
		"query_wall_time_seconds", wall.Seconds(),
		"response_series_count", responseSeries(resp),
		"split_queries", stats.querierRequests.Load(),
		"status_code", code,
		"response_size", size,
		"tenant", tenantID,
		"source", source,
	}
	attrs = append(attrs, stats.querier.Fields()...)
	if q := vals.Get("query"); q != "" {
		attrs = append(attrs, "query_length", len(q))
	}
	if ua := r.Header.Get("User-Agent"); ua != "" {
		attrs = append(attrs, "user_agent", ua)
	}
	for _, h := range []struct{ header, field string }{{"X-Dashboard-Uid", "dashboard_uid"}, {"X-Panel-Id", "panel_id"}} {
		if v := r.Header.Get(h.header); v != "" {
			attrs = append(attrs, h.field, v)
		}
	}
	if p, ok := ctx.Value(priorityKey{}).(int64); ok {
		attrs = append(attrs, "priority", p)
	}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	for k, v := range vals {
		attrs = append(attrs, "param_"+k, v[0])
	}
	if err != nil || code >= 500 {
		f.logger.Error("query stats", attrs...)
		return
	}
	f.logger.Info("query stats", attrs...)
}

// responseSeries counts the series (or samples of a vector) of a
// Prometheus API answer; 0 for any other body.
func responseSeries(resp *frontendpb.HTTPResponse) int {
	if resp == nil || resp.Code != http.StatusOK {
		return 0
	}
	if ct := frontendpb.FromHeaders(resp.Headers).Get("Content-Type"); codec.IsProtobuf(ct) {
		return codec.ResultLen(resp.Body)
	}
	var body struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if json.Unmarshal(resp.Body, &body) != nil {
		return 0
	}
	return len(body.Data.Result)
}

// serverTiming is the Server-Timing header Cortex's frontend answers a
// query with when it tracks query statistics.
func serverTiming(wall, took time.Duration) string {
	return fmt.Sprintf("querier_wall_time;dur=%v, response_time;dur=%v", float64(wall)/float64(time.Millisecond), float64(took)/float64(time.Millisecond))
}
