package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzhttp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tracing"
)

// maxPointsPerSeries is Prometheus's limit on the steps of a range query;
// queries beyond it go to a querier whole, so they fail exactly as there.
const maxPointsPerSeries = 11000

// defaultQueryParallelism bounds the parts of one split query in flight at
// once, and its shard queries, when the frontend has no tenant limits
// (-querier.max-query-parallelism's default).
const defaultQueryParallelism = 14

// hopHeaders are not forwarded to the querier: the frontend compresses
// its own answers and the parts are re-encoded as GET requests. Nor are
// the client's credentials: the querier does not need them (the tenant
// travels in X-Scope-OrgID), and any process holding a valid certificate
// can connect as a querier worker and read what it is sent.
var hopHeaders = append([]string{"Accept-Encoding", "Connection", "Content-Length", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Keep-Alive"},
	credentialHeaders...)

// credentialHeaders are refused in -frontend.forward-headers-list too.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

func (f *Frontend) newHandler() http.Handler {
	return gzhttp.GzipHandler(withClientEncoding(http.HandlerFunc(f.serveHTTP)))
}

func (f *Frontend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	if f.queryTimeout > 0 {
		// A query's answer may come up to -querier.timeout after it was
		// asked, later than -server.http-write-timeout would let it out.
		_ = http.NewResponseController(w).SetWriteDeadline(start.Add(f.queryTimeout + writeDeadlineMargin))
		// A querier that took the query and went away without its
		// scheduler telling this frontend leaves no one to answer: the
		// query ends before the write deadline, while a 503 can still be
		// written.
		wait := f.queryTimeout + writeDeadlineMargin/2
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, wait, fmt.Errorf("no querier answered within %s, -querier.timeout (%s) and %s more: %w",
			wait, f.queryTimeout, writeDeadlineMargin/2, context.DeadlineExceeded))
		defer cancel()
	}
	tenantID, ok := f.requestTenants(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.cfg.MaxBodySize))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "bad_data", fmt.Sprintf("reading the request body: %v", err))
		return
	}
	// Refused before anything here (splitting, caching) or on a querier
	// parses it: the parser's time grows with the square of the nesting.
	if err := f.checkExprs(tenantID, r.URL.Path, formValues(r, body)); err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	vals := formValues(r, body)
	if f.rejectQuery(r, vals, tenantID, start) {
		writeError(w, http.StatusUnprocessableEntity, "execution", queryRejectMessage)
		return
	}
	if priority, ok := f.queryPriority(r, vals, tenantID, start); ok {
		ctx = withPriority(ctx, priority)
	}
	header := f.forwardedHeaders(r)
	header.Set(tenant.HeaderName, tenantID)
	// The querier's span of the query continues this request's trace.
	tracing.InjectHeaders(ctx, header)
	ctx = f.withResponseSizeLimit(ctx, tenantID, r.URL.Path)
	var stats *queryStats
	if f.statsMetrics != nil {
		stats = &queryStats{}
		ctx = context.WithValue(ctx, statsKey{}, stats)
	}
	req := &frontendpb.HTTPRequest{Method: r.Method, Url: r.URL.RequestURI(), Headers: frontendpb.ToHeaders(header), Body: body}

	var resp *frontendpb.HTTPResponse
	if strings.HasSuffix(r.URL.Path, "/api/v1/query_range") {
		resp, err = f.queryRange(ctx, tenantID, r, header, body, req)
		code := "500"
		if err == nil {
			code = strconv.Itoa(int(resp.Code))
		}
		f.metrics.queryRange.WithLabelValues("split_by_interval_and_results_cache", code).Observe(time.Since(start).Seconds())
	} else {
		resp, err = f.roundTripOther(ctx, tenantID, r, header, body, req)
	}
	if errors.Is(err, context.DeadlineExceeded) && context.Cause(ctx) != nil {
		err = context.Cause(ctx)
	}
	took := time.Since(start)
	if stats != nil {
		w.Header().Set("Server-Timing", serverTiming(time.Duration(stats.wallTimeNanos.Load()), took))
	}
	code := f.write(w, resp, err)
	if stats != nil {
		f.reportQueryStats(ctx, r, formValues(r, body), tenantID, stats, took, code, resp, err)
	}
	if d := f.cfg.LogQueriesLongerThan; d != 0 && time.Since(start) > d {
		f.logger.Info("slow query detected", "tenant", tenantID, "method", r.Method, "path", r.URL.Path,
			"query", formValues(r, body).Get("query"), "time_taken", time.Since(start).String(), "status", code)
	}
}

// forwardedHeaders are the client headers a querier gets. A query or
// range query carries only -frontend.forward-headers-list (and the body's
// Content-Type and the format asked for, Accept), as Cortex's query codecs
// rebuild it: its split and shard
// queries, and its cached answers, must not depend on anything else. Other
// APIs pass the client's headers on, without hop-by-hop headers and
// credentials.
func (f *Frontend) forwardedHeaders(r *http.Request) http.Header {
	if isQueryPath(r.URL.Path) {
		header := http.Header{}
		for _, name := range f.cfg.ForwardHeaders {
			if v := r.Header.Values(name); len(v) > 0 {
				header[http.CanonicalHeaderKey(name)] = slices.Clone(v)
			}
		}
		for _, name := range []string{"Content-Type", "Accept"} {
			if v := r.Header.Get(name); v != "" {
				header.Set(name, v)
			}
		}
		return header
	}
	header := r.Header.Clone()
	for _, h := range hopHeaders {
		header.Del(h)
	}
	return header
}

// isQueryPath reports whether path is the query or query_range API.
func isQueryPath(path string) bool {
	return strings.HasSuffix(path, "/api/v1/query") || strings.HasSuffix(path, "/api/v1/query_range")
}

func (f *Frontend) write(w http.ResponseWriter, resp *frontendpb.HTTPResponse, err error) int {
	var tooLarge errResponseTooLarge
	switch {
	case errors.As(err, &tooLarge):
		writeResponseTooLarge(w, tooLarge)
		return http.StatusUnprocessableEntity
	case errors.Is(err, errTooManyRequests):
		writeError(w, http.StatusTooManyRequests, "too_many_requests", "too many outstanding requests")
		return http.StatusTooManyRequests
	case errors.Is(err, errStopped):
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "canceled", "query canceled by the client")
		return 499
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "timeout", err.Error())
		return http.StatusServiceUnavailable
	case err != nil:
		writeError(w, http.StatusBadGateway, "unavailable", "no querier could answer: "+err.Error())
		return http.StatusBadGateway
	}
	h := frontendpb.FromHeaders(resp.Headers)
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(int(resp.Code))
	_, _ = w.Write(resp.Body)
	return int(resp.Code)
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	b, _ := json.Marshal(map[string]string{"status": "error", "errorType": typ, "error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// formValues returns the request's parameters, the body's first for POST
// forms, as Prometheus's FormValue reads them.
func formValues(r *http.Request, body []byte) url.Values {
	vals := url.Values{}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if bv, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range bv {
				vals[k] = append(vals[k], v...)
			}
		}
	}
	for k, v := range r.URL.Query() {
		vals[k] = append(vals[k], v...)
	}
	return vals
}

// rangeQuery is a parsed query_range request, times in milliseconds.
type rangeQuery struct {
	query            string
	start, end, step int64
	params           url.Values // every other parameter, passed on
}

func parseRangeQuery(vals url.Values) (*rangeQuery, bool) {
	start, err1 := parseTimeMs(vals.Get("start"))
	end, err2 := parseTimeMs(vals.Get("end"))
	step, err3 := parseStepMs(vals.Get("step"))
	if err1 != nil || err2 != nil || err3 != nil || step <= 0 || end < start || vals.Get("query") == "" || vals.Get("limit") != "" {
		return nil, false
	}
	if (end-start)/step > maxPointsPerSeries {
		return nil, false
	}
	rq := &rangeQuery{query: vals.Get("query"), start: start, end: end, step: step, params: url.Values{}}
	for k, v := range vals {
		switch k {
		case "query", "start", "end", "step":
		default:
			rq.params[k] = v[:1]
		}
	}
	return rq, true
}

func parseTimeMs(s string) (int64, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return 0, errors.New("not a finite time")
		}
		return int64(math.Round(t * 1000)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

func parseStepMs(s string) (int64, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(d) || math.IsInf(d, 0) {
			return 0, errors.New("not a finite step")
		}
		return int64(math.Round(d * 1000)), nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return time.Duration(d).Milliseconds(), nil
}

func formatMs(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) }

// alignToStep rounds start and end down to multiples of step, as Cortex's
// -querier.align-querier-with-step does.
func alignToStep(rq *rangeQuery) {
	rq.start = rq.start / rq.step * rq.step
	rq.end = rq.end / rq.step * rq.step
}

// splitByInterval cuts [start, end] at multiples of interval, each part
// starting on the query's own step grid, so the parts evaluate exactly the
// steps the whole query would. As Cortex's split_by_interval.
func splitByInterval(start, end, step, interval int64) [][2]int64 {
	if interval <= 0 || start == end {
		return [][2]int64{{start, end}}
	}
	var parts [][2]int64
	for s := start; s <= end; s = nextIntervalBoundary(s, step, interval) + step {
		e := nextIntervalBoundary(s, step, interval)
		if e+step >= end || e >= end {
			e = end
		}
		parts = append(parts, [2]int64{s, e})
		if e == end {
			break
		}
	}
	return parts
}

func nextIntervalBoundary(t, step, interval int64) int64 {
	next := (t/interval + 1) * interval
	target := next - (next-t)%step
	if target == next {
		target -= step
	}
	return target
}

// promqlParser is the parser of a frontend given no parser options.
var promqlParser = parser.NewParser(parser.Options{})

// WithParserOptions parses the queries with the queriers' options
// (-querier.enable-promql-experimental-functions), so that the queries
// using experimental functions are split and sharded as any.
func WithParserOptions(o parser.Options) Option {
	return func(f *Frontend) { f.parser = parser.NewParser(o) }
}

// promql is the frontend's PromQL parser.
func (f *Frontend) promql() parser.Parser {
	if f.parser != nil {
		return f.parser
	}
	return promqlParser
}

// pinStartEnd replaces "@ start()" and "@ end()" by the whole query's
// start and end, which the parts would otherwise read as their own.
func pinStartEnd(p parser.Parser, query string, start, end int64) string {
	if !strings.Contains(query, "start()") && !strings.Contains(query, "end()") {
		return query
	}
	expr, err := p.ParseExpr(query)
	if err != nil {
		return query
	}
	changed := false
	pin := func(se *parser.ItemType, ts **int64) {
		switch *se {
		case parser.START:
			v := start
			*ts = &v
		case parser.END:
			v := end
			*ts = &v
		default:
			return
		}
		*se = 0
		changed = true
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			pin(&n.StartOrEnd, &n.Timestamp)
		case *parser.SubqueryExpr:
			pin(&n.StartOrEnd, &n.Timestamp)
		}
		return nil
	})
	if !changed {
		return query
	}
	return expr.String()
}

// queryRange splits a range query by interval, answers the parts from the
// results cache or the queriers, in parallel, and merges them.
func (f *Frontend) queryRange(ctx context.Context, tenantID string, r *http.Request, header http.Header, body []byte, whole *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
	rq, ok := parseRangeQuery(formValues(r, body))
	if !ok {
		// Unusual or invalid: the querier answers it whole, with its errors.
		return f.RoundTrip(ctx, tenantID, whole)
	}
	if f.cfg.AlignQueriesWithStep {
		alignToStep(rq)
	}
	query := pinStartEnd(f.promql(), rq.query, rq.start, rq.end)
	clientStats := rq.params.Get("stats")
	f.rangeStatsParam(rq.params)
	interval, shards := f.splitInterval(tenantID, query, rq.start, rq.end, rq.step)
	if shards > 0 {
		ctx = withShardSize(ctx, shards)
	}
	parts := splitByInterval(rq.start, rq.end, rq.step, interval)
	f.metrics.splitQueries.Add(float64(len(parts)))

	partHeader := header.Clone()
	partHeader.Del("Content-Type")
	extra := rq.params.Encode()
	resps := make([]*frontendpb.HTTPResponse, len(parts))
	errs := make([]error, len(parts))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, f.queryParallelism(tenantID))
	var wg sync.WaitGroup
	freshBefore := time.Now().Add(-f.cfg.MaxCacheFreshness).UnixMilli()
	ctx = f.withShardSlots(ctx, tenantID)
	fetch := func(ctx context.Context, start, end int64) (*frontendpb.HTTPResponse, error) {
		vals := url.Values{"query": {query}, "start": {formatMs(start)}, "end": {formatMs(end)}, "step": {formatMs(rq.step)}}
		return f.roundTripRange(ctx, tenantID, r.URL.Path, vals, extra, partHeader)
	}
	// The cached parts are read at once: memcached answers them in
	// -frontend.memcached.batchsize batches rather than a call per part.
	var keys []string
	var cached map[string][]byte
	if f.cache != nil {
		keys = make([]string, len(parts))
		var want []string
		for i, p := range parts {
			if p[0] <= freshBefore {
				keys[i] = partCacheKey(tenantID, r.URL.Path, query, rq.step, p[0], interval, rq.params)
				want = append(want, keys[i])
			}
		}
		if len(want) > 0 {
			cached = f.cache.fetch(ctx, want)
			f.metrics.cacheFetched.Add(float64(len(want)))
			f.metrics.cacheHits.Add(float64(len(cached)))
		}
	}
	for i, p := range parts {
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
			if keys != nil && keys[i] != "" {
				resps[i], errs[i] = f.cachedPart(ctx, keys[i], cached[keys[i]], p[0], p[1], rq.step, freshBefore, fetch)
			} else {
				resps[i], errs[i] = fetch(ctx, p[0], p[1])
			}
			if errs[i] != nil || resps[i].Code != http.StatusOK {
				cancel() // one part failed: so does the whole query
			}
		}()
	}
	wg.Wait()
	// The first real failure wins over the cancellations it caused.
	for i := range parts {
		if errs[i] == nil && resps[i].Code != http.StatusOK {
			return resps[i], nil
		}
	}
	for i := range parts {
		if errs[i] != nil && !errors.Is(errs[i], context.Canceled) {
			return nil, errs[i]
		}
	}
	for i := range parts {
		if errs[i] != nil {
			return nil, errs[i]
		}
	}
	if len(resps) == 1 {
		return f.answerStats(resps[0], clientStats)
	}
	merged, err := mergeMatrices(resps)
	if err != nil {
		return nil, err
	}
	return f.answerStats(&frontendpb.HTTPResponse{Code: http.StatusOK, Body: merged, Headers: jsonHeaders}, clientStats)
}

var jsonHeaders = []*frontendpb.Header{{Key: "Content-Type", Values: []string{"application/json"}}}
