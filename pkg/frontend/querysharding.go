package frontend

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
)

// Vertical query sharding (-frontend.query-vertical-shard-size), as Cortex
// does it: a query whose every output series is computed from series that
// agree on some labels (an aggregation by or without labels, and what it
// is built of) runs as N shard queries. Shard i reads only the series
// whose sharding labels hash to i modulo N: a __CORTEX_SHARDS__ matcher
// added to each selector tells the querier, which keeps only those series.
// An output series is then computed whole in one shard, so the shard
// queries' answers are disjoint and their union is the query's answer: no
// re-aggregation, and no floating-point reordering.
//
// The analysis is Thanos' querysharding analyzer (pkg/querysharding,
// v0.42.0), rewritten over this module's PromQL parser: Thanos' package
// parses through its pkg/extpromql, which calls
// parser.NewParser(input, parser.WithFunctions(...)), an API that
// Prometheus v0.316.0 (the version here) replaced by
// parser.NewParser(parser.Options), so it does not compile with it; it also
// pulls in thanos-io/promql-engine. It adds what the analyzer misses:
// count_values' new label is treated like label_replace's, __name__ is
// never a label to shard by (functions drop it), and vector() and the
// sorting functions, whose answers do not join, are not sharded.

// shardAnalysis is the labels a query may be sharded on: by is true when
// the hash is of labels (only), false when it is of every label but them.
// nil labels: no constraint yet; empty labels: not shardable.
type shardAnalysis struct {
	labels []string
	by     bool
}

func (a shardAnalysis) shardable() bool { return len(a.labels) > 0 }

// scope narrows a to what also satisfies the constraint (ls, by).
func (a shardAnalysis) scope(ls []string, by bool) shardAnalysis {
	if by {
		ls = slices.DeleteFunc(slices.Clone(ls), func(l string) bool { return l == model.MetricNameLabel })
	}
	if ls == nil {
		ls = []string{}
	}
	switch {
	case a.labels == nil:
		return shardAnalysis{labels: ls, by: by}
	case a.by && by:
		return shardAnalysis{labels: intersectLabels(a.labels, ls), by: true}
	case !a.by && !by:
		return shardAnalysis{labels: unionLabels(a.labels, ls), by: false}
	case a.by:
		return shardAnalysis{labels: withoutLabels(a.labels, ls), by: true}
	default:
		return shardAnalysis{labels: withoutLabels(ls, a.labels), by: true}
	}
}

func intersectLabels(a, b []string) []string {
	out := []string{}
	for _, l := range a {
		if slices.Contains(b, l) && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func unionLabels(a, b []string) []string {
	out := slices.Clone(a)
	for _, l := range b {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func withoutLabels(a, b []string) []string {
	out := []string{}
	for _, l := range a {
		if !slices.Contains(b, l) && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// nonShardableFuncs answer something other than the union of their
// answers over disjoint sets of series, or answer in an order the union
// loses.
var nonShardableFuncs = map[string]bool{
	"absent": true, "absent_over_time": true, "scalar": true, "vector": true,
	"sort": true, "sort_desc": true, "sort_by_label": true, "sort_by_label_desc": true,
	"info": true,
}

var errNotShardable = errors.New("not shardable")

// analyzeSharding returns how expr may be sharded.
func analyzeSharding(expr parser.Expr) shardAnalysis {
	var (
		a       shardAnalysis
		dynamic []string // labels the query writes
	)
	var err error
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.Call:
			if n.Func == nil {
				return nil
			}
			switch name := n.Func.Name; {
			case nonShardableFuncs[name]:
				err = errNotShardable
				return err
			case name == "label_replace" || name == "label_join":
				l, ok := stringArg(n.Args, 1)
				if !ok {
					err = errNotShardable
					return err
				}
				dynamic = append(dynamic, l)
			case name == "histogram_quantile" || name == "histogram_fraction":
				a = a.scope([]string{model.BucketLabel}, false)
			}
		case *parser.BinaryExpr:
			if m := n.VectorMatching; m != nil {
				ls := slices.Clone(m.MatchingLabels)
				if !m.On {
					ls = append(ls, model.MetricNameLabel)
				}
				a = a.scope(ls, m.On)
			}
		case *parser.AggregateExpr:
			if n.Op == parser.COUNT_VALUES {
				l, ok := stringLiteral(n.Param)
				if !ok {
					err = errNotShardable
					return err
				}
				dynamic = append(dynamic, l)
			}
			a = a.scope(n.Grouping, !n.Without)
		}
		return nil
	})
	if err != nil {
		return shardAnalysis{labels: []string{}}
	}
	if len(dynamic) > 0 {
		a = a.scope(dynamic, false)
	}
	if a.labels == nil {
		// No aggregation: nothing to gain.
		return shardAnalysis{labels: []string{}}
	}
	return a
}

func stringArg(args parser.Expressions, i int) (string, bool) {
	if i >= len(args) {
		return "", false
	}
	return stringLiteral(args[i])
}

func stringLiteral(e parser.Expr) (string, bool) {
	for {
		switch v := e.(type) {
		case *parser.ParenExpr:
			e = v.Expr
		case *parser.StepInvariantExpr:
			e = v.Expr
		case *parser.StringLiteral:
			return v.Val, true
		default:
			return "", false
		}
	}
}

// shardQueries returns the n shard queries of query, or nil when it is
// not shardable.
func shardQueries(p parser.Parser, query string, n int) []string {
	expr, err := p.ParseExpr(query)
	if err != nil {
		return nil
	}
	a := analyzeSharding(expr)
	if !a.shardable() {
		return nil
	}
	ls := slices.Clone(a.labels)
	slices.Sort(ls)
	out := make([]string, n)
	for i := range n {
		m := querysharding.ShardInfo{ShardIndex: int64(i), TotalShards: int64(n), By: a.by, Labels: ls}.Matcher()
		// Each shard gets its own tree: Inspect visits every selector,
		// those of subqueries and matrix selectors included.
		e, err := p.ParseExpr(query)
		if err != nil {
			return nil
		}
		parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
			if vs, ok := node.(*parser.VectorSelector); ok {
				vs.LabelMatchers = append(slices.DeleteFunc(vs.LabelMatchers, func(m *labels.Matcher) bool { return m.Name == querysharding.LabelName }), m)
			}
			return nil
		})
		out[i] = e.String()
	}
	return out
}

type shardingMetrics struct {
	attempted prometheus.Counter
	succeeded prometheus.Counter
	queries   prometheus.Counter
	perQuery  prometheus.Histogram
}

// newShardingMetrics registers the sharding metrics, with Mimir's names
// (Cortex has none for it).
func newShardingMetrics(reg prometheus.Registerer) *shardingMetrics {
	m := &shardingMetrics{
		attempted: prometheus.NewCounter(prometheus.CounterOpts{Name: "cortex_frontend_query_sharding_rewrites_attempted_total", Help: "Total number of queries the query-frontend tried to shard (the tenant's -frontend.query-vertical-shard-size above 1)."}),
		succeeded: prometheus.NewCounter(prometheus.CounterOpts{Name: "cortex_frontend_query_sharding_rewrites_succeeded_total", Help: "Total number of queries the query-frontend ran as shard queries."}),
		queries:   prometheus.NewCounter(prometheus.CounterOpts{Name: "cortex_frontend_sharded_queries_total", Help: "Total number of shard queries run."}),
		perQuery:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cortex_frontend_sharded_queries_per_query", Help: "Number of shard queries run for one sharded query.", Buckets: prometheus.ExponentialBuckets(2, 2, 7)}),
	}
	if reg != nil {
		reg.MustRegister(m.attempted, m.succeeded, m.queries, m.perQuery)
	}
	return m
}

// shardQueries returns the tenant's n shard queries of query, or nil when
// it is not shardable or a shard query would be longer than the tenant's
// -query-frontend.max-query-expression-size-bytes, which the queriers
// check too: the shard matchers add about 90 bytes per selector.
func (f *Frontend) shardQueries(tenantID, query string, n int) []string {
	queries := shardQueries(f.promql(), query, n)
	if limit := f.limits.For(tenantID).MaxQueryExpressionSizeBytes; limit > 0 {
		for _, q := range queries {
			if len(q) > limit {
				return nil
			}
		}
	}
	return queries
}

// shardSize is the tenant's -frontend.query-vertical-shard-size.
func (f *Frontend) shardSize(tenantID string) int {
	if f.limits == nil {
		return 0
	}
	return f.limits.For(tenantID).QueryVerticalShardSize
}

type shardSemKey struct{}

// withShardSlots bounds the shard queries of one client query in flight
// at once, whatever the number of its split parts, so that one query does
// not fill the tenant's queue.
func (f *Frontend) withShardSlots(ctx context.Context, tenantID string) context.Context {
	return context.WithValue(ctx, shardSemKey{}, make(chan struct{}, f.queryParallelism(tenantID)))
}

// roundTripRange runs one range query (or split part of one) on the
// queriers: as the tenant's shard queries, joined, when it is shardable,
// otherwise whole. vals are its parameters; extra the client's others.
func (f *Frontend) roundTripRange(ctx context.Context, tenantID, path string, vals url.Values, extra string, header http.Header) (*frontendpb.HTTPResponse, error) {
	build := func(query string) *frontendpb.HTTPRequest {
		v := url.Values{}
		for k, vs := range vals {
			v[k] = vs
		}
		v.Set("query", query)
		u := path + "?" + v.Encode()
		if extra != "" {
			u += "&" + extra
		}
		return &frontendpb.HTTPRequest{Method: http.MethodGet, Url: u, Headers: frontendpb.ToHeaders(header)}
	}
	n := f.rangeShardSize(ctx, tenantID)
	if n <= 1 {
		return f.RoundTrip(ctx, tenantID, build(vals.Get("query")))
	}
	f.sharding.attempted.Inc()
	queries := f.shardQueries(tenantID, vals.Get("query"), n)
	if queries == nil {
		return f.RoundTrip(ctx, tenantID, build(vals.Get("query")))
	}
	f.sharding.succeeded.Inc()
	f.sharding.queries.Add(float64(n))
	f.sharding.perQuery.Observe(float64(n))
	resps, failed, err := f.runShards(ctx, tenantID, queries, build)
	if failed != nil || err != nil {
		return failed, err
	}
	merged, err := mergeMatrices(resps)
	if err != nil {
		return nil, err
	}
	return &frontendpb.HTTPResponse{Code: http.StatusOK, Body: merged, Headers: jsonHeaders}, nil
}

// runShards runs the shard queries in parallel, each through the queue
// (so on whichever querier takes it), and returns their answers; or the
// first failure: a shard's non-200 answer as failed, or its error.
func (f *Frontend) runShards(ctx context.Context, tenantID string, queries []string, build func(string) *frontendpb.HTTPRequest) (resps []*frontendpb.HTTPResponse, failed *frontendpb.HTTPResponse, err error) {
	sem, _ := ctx.Value(shardSemKey{}).(chan struct{})
	if sem == nil {
		sem = make(chan struct{}, f.queryParallelism(tenantID))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resps = make([]*frontendpb.HTTPResponse, len(queries))
	errs := make([]error, len(queries))
	var wg sync.WaitGroup
	for i, q := range queries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			resps[i], errs[i] = f.RoundTrip(ctx, tenantID, build(q))
			if errs[i] != nil || resps[i].Code != http.StatusOK {
				cancel() // one shard failed: so does the query
			}
		}()
	}
	wg.Wait()
	// The first real failure wins over the cancellations it caused.
	for i := range queries {
		if errs[i] == nil && resps[i].Code != http.StatusOK {
			return nil, resps[i], nil
		}
	}
	for i := range queries {
		if errs[i] != nil && !errors.Is(errs[i], context.Canceled) {
			return nil, nil, errs[i]
		}
	}
	for i := range queries {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
	}
	return resps, nil, nil
}
