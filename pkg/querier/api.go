package querier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	promstats "github.com/prometheus/prometheus/util/stats"

	"github.com/cortex-tls/cortex/pkg/querier/codec"
	"github.com/cortex-tls/cortex/pkg/util/version"
)

// The Prometheus HTTP API, answering as Prometheus's web/api/v1 does: same
// parameters, same JSON, same error types and status codes, so Grafana's
// Prometheus data source and promtool work unchanged.

type apiResult struct {
	data      any
	err       *apiError
	warnings  annotations.Annotations
	finalizer func()
}

type apiFunc func(r *http.Request) apiResult

// response is Prometheus's envelope, used as is for errors; successes are
// written by respond so big results skip reflection.
type response struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

// Handler serves the Prometheus API under -http.prometheus-http-prefix and
// under /api/prom, at <prefix>/api/v1/... The tenant must already be in
// the request context.
func (q *Querier) Handler() http.Handler {
	mux := http.NewServeMux()
	prefixes := []string{q.cfg.PrometheusHTTPPrefix}
	if q.cfg.PrometheusHTTPPrefix != legacyPrefix {
		prefixes = append(prefixes, legacyPrefix)
	}
	getPost := []string{http.MethodGet, http.MethodPost}
	get := []string{http.MethodGet}
	routes := []struct {
		methods []string
		path    string
		f       apiFunc
	}{
		{getPost, "/query", q.query},
		{getPost, "/query_range", q.queryRange},
		{getPost, "/query_exemplars", q.queryExemplars},
		{getPost, "/labels", q.labelNames},
		{get, "/label/{name}/values", q.labelValues},
		{getPost, "/series", q.series},
		{get, "/metadata", q.metricMetadata},
		{get, "/status/buildinfo", q.buildInfo},
		{getPost, "/format_query", q.formatQuery},
		{getPost, "/parse_query", q.parseQuery},
	}
	// known answers 405 for a served path asked with another method.
	known := http.NewServeMux()
	for _, prefix := range prefixes {
		base := prefix + "/api/v1"
		for _, rt := range routes {
			h := q.wrap(routeName(base+rt.path), rt.f)
			for _, m := range rt.methods {
				mux.Handle(m+" "+base+rt.path, h)
			}
			known.Handle(base+rt.path, methodNotAllowed(rt.methods))
		}
		known.Handle(base+"/read", methodNotAllowed([]string{http.MethodPost}))
		// CORS preflight, answered as Prometheus does.
		mux.HandleFunc(http.MethodOptions+" "+base+"/", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})
		// Any other path: 404 not_found, not the mux's 405.
		mux.Handle(base+"/", q.notFound(known))
	}
	// Prometheus compresses its API responses; range queries shrink
	// tenfold. The query-frontend asks for -querier.response-compression.
	return q.withTenantCheck(q.withRemoteRead(prefixes, codec.CompressionHandler(mux)))
}

var nonAlnum = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// routeName is the route label of a path, made as Cortex makes it.
func routeName(path string) string {
	return strings.ToLower(strings.Trim(nonAlnum.ReplaceAllString(path, "_"), "_"))
}

func (q *Querier) wrap(route string, f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The answer may take up to -querier.timeout, which is longer
		// than the server's -server.http-write-timeout by default.
		q.extendWriteDeadline(w, start)
		res := f(r)
		if res.finalizer != nil {
			defer res.finalizer()
		}
		var code int
		switch {
		case res.err != nil:
			code = q.respondError(w, res.err, res.data)
		case res.data != nil:
			code = q.respondNegotiated(w, r, res.data, res.warnings)
		default:
			code = http.StatusNoContent
			w.WriteHeader(code)
		}
		q.metrics.requestDuration.WithLabelValues(r.Method, route, strconv.Itoa(code), "false").Observe(time.Since(start).Seconds())
	})
}

func (q *Querier) respond(w http.ResponseWriter, data any, warnings annotations.Annotations, query string) int {
	warn, info := warnings.AsStrings(query, 10, 10)
	b := make([]byte, 0, 512)
	b = append(b, `{"status":"success","data":`...)
	var err error
	if a, ok := data.(appender); ok {
		b, err = a.appendJSON(b)
	} else {
		var raw []byte
		raw, err = json.Marshal(data)
		b = append(b, raw...)
	}
	if err == nil && len(warn) > 0 {
		b, err = appendField(b, "warnings", warn)
	}
	if err == nil && len(info) > 0 {
		b, err = appendField(b, "infos", info)
	}
	if err != nil {
		q.logger.Error("error marshaling response", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	b = append(b, '}')
	w.Header().Set("Content-Type", "application/json")
	// The answer's size before any compression, as Cortex's query API
	// tells it: the query-frontend sizes its decompression by it.
	w.Header().Set("X-Uncompressed-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(b); err != nil {
		q.logger.Debug("error writing response", "err", err)
	}
	return http.StatusOK
}

func appendField(b []byte, name string, v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return append(b, raw...), nil
}

func (q *Querier) respondError(w http.ResponseWriter, apiErr *apiError, data any) int {
	b, err := json.Marshal(&response{Status: "error", ErrorType: string(apiErr.typ), Error: apiErr.err.Error(), Data: data})
	if err != nil {
		q.logger.Error("error marshaling json response", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	code := apiErr.code()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		q.logger.Debug("error writing response", "err", err)
	}
	return code
}

// queryTimeout parses the optional "timeout" parameter.
func queryTimeout(r *http.Request) (time.Duration, *apiError) {
	v := r.FormValue("timeout")
	if v == "" {
		return 0, nil
	}
	timeout, err := parseDuration(v)
	if err != nil {
		return 0, &apiError{errorBadData, fmt.Errorf("invalid parameter %q: %w", "timeout", err)}
	}
	if timeout <= 0 {
		return 0, &apiError{errorBadData, fmt.Errorf("invalid parameter %q: timeout must be positive, got %s", "timeout", timeout)}
	}
	return timeout, nil
}

func extractQueryOpts(r *http.Request) (promql.QueryOpts, error) {
	var lookback time.Duration
	if s := r.FormValue("lookback_delta"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("error parsing lookback delta duration: %w", err)
		}
		lookback = d
	}
	// Per-step statistics are computed only when the engine enables them
	// (-querier.per-step-stats-enabled), as in Prometheus.
	return promql.NewPrometheusQueryOpts(r.FormValue("stats") == "all", lookback, nil), nil
}

func (q *Querier) query(r *http.Request) (result apiResult) {
	limit, err := parseLimitParam(r.FormValue("limit"))
	if err != nil {
		return invalidParamError(err, "limit")
	}
	ts, err := parseTimeParam(r, "time", time.Now())
	if err != nil {
		return invalidParamError(err, "time")
	}
	ctx, cancel, apiErr := q.queryContext(r)
	if apiErr != nil {
		return apiResult{err: apiErr}
	}
	defer cancel()
	opts, err := extractQueryOpts(r)
	if err != nil {
		return apiResult{err: &apiError{errorBadData, err}}
	}
	query := r.FormValue("query")
	if apiErr := q.checkExprs(ctx, "query", query); apiErr != nil {
		return apiResult{err: apiErr}
	}
	qry, err := q.engine.NewInstantQuery(ctx, q.readable, opts, query, ts)
	if err != nil {
		return apiResult{err: queryConstructionError(err)}
	}
	if err := contextDone(ctx, "query parsing"); err != nil {
		qry.Close()
		return apiResult{err: apiErrorFor(err)}
	}
	return q.exec(ctx, qry, limit, r.FormValue("stats"))
}

func (q *Querier) queryRange(r *http.Request) apiResult {
	limit, err := parseLimitParam(r.FormValue("limit"))
	if err != nil {
		return invalidParamError(err, "limit")
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return invalidParamError(err, "start")
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return invalidParamError(err, "end")
	}
	if end.Before(start) {
		return invalidParamError(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return invalidParamError(err, "step")
	}
	if step <= 0 {
		return invalidParamError(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	// For safety, limit the number of returned points per timeseries, as Prometheus does.
	if end.Sub(start)/step > 11000 {
		return apiResult{err: &apiError{errorBadData, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")}}
	}
	ctx, cancel, apiErr := q.queryContext(r)
	if apiErr != nil {
		return apiResult{err: apiErr}
	}
	defer cancel()
	opts, err := extractQueryOpts(r)
	if err != nil {
		return apiResult{err: &apiError{errorBadData, err}}
	}
	query := r.FormValue("query")
	if apiErr := q.checkExprs(ctx, "query", query); apiErr != nil {
		return apiResult{err: apiErr}
	}
	qry, err := q.engine.NewRangeQuery(ctx, q.readable, opts, query, start, end, step)
	if err != nil {
		return apiResult{err: queryConstructionError(err)}
	}
	if err := contextDone(ctx, "query parsing"); err != nil {
		qry.Close()
		return apiResult{err: apiErrorFor(err)}
	}
	return q.exec(ctx, qry, limit, r.FormValue("stats"))
}

// exec runs a query; the result is closed once written, as its matrices
// are pooled by the engine.
func (q *Querier) exec(ctx context.Context, qry promql.Query, limit int, statsParam string) apiResult {
	res := qry.Exec(ctx)
	if res.Err != nil {
		err := res.Err
		// Storage calls cut by the deadline fail with their own errors
		// (a gRPC DeadlineExceeded status, "expanding series: ..."):
		// out of time is out of time, answered as Prometheus does.
		if ctxErr := contextDone(ctx, "expression evaluation"); ctxErr != nil {
			err = ctxErr
		}
		return apiResult{err: apiErrorFor(err), warnings: res.Warnings, finalizer: qry.Close}
	}
	warnings := res.Warnings
	if limit > 0 {
		truncated := false
		switch v := res.Value.(type) {
		case promql.Matrix:
			if len(v) > limit {
				res.Value, truncated = v[:limit], true
			}
		case promql.Vector:
			if len(v) > limit {
				res.Value, truncated = v[:limit], true
			}
		}
		if truncated {
			warnings = warnings.Add(errors.New("results truncated due to limit"))
		}
	}
	data := queryData{v: res.Value}
	// Any stats parameter asks for the query's statistics, as Prometheus'
	// default stats renderer answers.
	if statsParam != "" {
		data.stats = promstats.NewQueryStats(qry.Stats())
	}
	return apiResult{data: data, warnings: warnings, finalizer: qry.Close}
}

func (q *Querier) queryExemplars(r *http.Request) apiResult {
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return invalidParamError(err, "start")
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return invalidParamError(err, "end")
	}
	if end.Before(start) {
		return apiResult{err: &apiError{errorBadData, errors.New("end timestamp must not be before start timestamp")}}
	}
	if apiErr := q.checkExprs(r.Context(), "query", r.FormValue("query")); apiErr != nil {
		return apiResult{err: apiErr}
	}
	expr, err := q.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return apiResult{err: &apiError{errorBadData, err}}
	}
	return q.exemplars(r, timestamp.FromTime(start), timestamp.FromTime(end), expr)
}

// withTimeout bounds the calls that do not go through the engine, whose
// own timeout covers queries.
func (q *Querier) withTimeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), q.cfg.Timeout)
}

func (q *Querier) labelNames(r *http.Request) apiResult {
	return q.labelStrings(r, func(ctx context.Context, querier storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return querier.LabelNames(ctx, hints, ms...)
	})
}

func (q *Querier) labelValues(r *http.Request) apiResult {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return apiResult{err: &apiError{errorBadData, fmt.Errorf("invalid label name: %q", name)}}
	}
	return q.labelStrings(r, func(ctx context.Context, querier storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return querier.LabelValues(ctx, name, hints, ms...)
	})
}

// labelStrings answers /labels and /label/{name}/values as Prometheus does:
// parse limit, start, end and match[], take the sorted union over the
// matcher sets, and truncate to the limit with a warning.
func (q *Querier) labelStrings(r *http.Request, fetch func(context.Context, storage.Querier, *storage.LabelHints, []*labels.Matcher) ([]string, annotations.Annotations, error)) apiResult {
	limit, start, end, bad := parseLimitAndRange(r)
	if bad != nil {
		return *bad
	}
	if apiErr := q.checkExprs(r.Context(), "match[]", r.Form["match[]"]...); apiErr != nil {
		return apiResult{err: apiErr}
	}
	matcherSets, err := q.parseMatchersParam(r.Form["match[]"])
	if err != nil {
		return apiResult{err: &apiError{errorBadData, err}}
	}
	ctx, cancel := q.withTimeout(r)
	defer cancel()
	hints := &storage.LabelHints{Limit: toHintLimit(limit)}
	querier, err := q.readable.Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: apiErrorFor(err)}
	}
	defer querier.Close()

	var (
		out      []string
		warnings annotations.Annotations
	)
	if len(matcherSets) > 1 {
		set := map[string]struct{}{}
		for _, matchers := range matcherSets {
			vals, ws, err := fetch(ctx, querier, hints, matchers)
			if err != nil {
				return apiResult{err: apiErrorFor(err), warnings: warnings}
			}
			warnings.Merge(ws)
			for _, v := range vals {
				set[v] = struct{}{}
			}
		}
		out = make([]string, 0, len(set))
		for v := range set {
			out = append(out, v)
		}
	} else {
		var matchers []*labels.Matcher
		if len(matcherSets) == 1 {
			matchers = matcherSets[0]
		}
		out, warnings, err = fetch(ctx, querier, hints, matchers)
		if err != nil {
			return apiResult{err: apiErrorFor(err), warnings: warnings}
		}
	}
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return apiResult{data: out, warnings: warnings}
}

func (q *Querier) series(r *http.Request) apiResult {
	if err := r.ParseForm(); err != nil {
		return apiResult{err: &apiError{errorBadData, fmt.Errorf("error parsing form values: %w", err)}}
	}
	if len(r.Form["match[]"]) == 0 {
		return apiResult{err: &apiError{errorBadData, errors.New("no match[] parameter provided")}}
	}
	limit, start, end, bad := parseLimitAndRange(r)
	if bad != nil {
		return *bad
	}
	if apiErr := q.checkExprs(r.Context(), "match[]", r.Form["match[]"]...); apiErr != nil {
		return apiResult{err: apiErr}
	}
	matcherSets, err := q.parseMatchersParam(r.Form["match[]"])
	if err != nil {
		return invalidParamError(err, "match[]")
	}
	ctx, cancel := q.withTimeout(r)
	defer cancel()
	querier, err := q.readable.Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: apiErrorFor(err)}
	}
	defer querier.Close()

	hints := &storage.SelectHints{
		Start: timestamp.FromTime(start),
		End:   timestamp.FromTime(end),
		Func:  "series", // Prometheus's token for selects that need no samples.
		Limit: toHintLimit(limit),
	}
	var set storage.SeriesSet
	if len(matcherSets) > 1 {
		sets := make([]storage.SeriesSet, 0, len(matcherSets))
		for _, ms := range matcherSets {
			sets = append(sets, querier.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	} else {
		set = querier.Select(ctx, false, hints, matcherSets[0]...)
	}
	metrics := seriesData{}
	warnings := set.Warnings()
	for set.Next() {
		metrics = append(metrics, set.At().Labels())
		if limit > 0 && len(metrics) > limit {
			metrics = metrics[:limit]
			warnings = warnings.Add(errors.New("results truncated due to limit"))
			return apiResult{data: metrics, warnings: warnings}
		}
	}
	if err := set.Err(); err != nil {
		return apiResult{err: apiErrorFor(err), warnings: warnings}
	}
	return apiResult{data: metrics, warnings: warnings}
}

func (q *Querier) metricMetadata(r *http.Request) apiResult {
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil {
			return apiResult{err: &apiError{errorBadData, errors.New("limit must be a number")}}
		}
	}
	limitPerMetric := -1
	if s := r.FormValue("limit_per_metric"); s != "" {
		var err error
		if limitPerMetric, err = strconv.Atoi(s); err != nil {
			return apiResult{err: &apiError{errorBadData, errors.New("limit_per_metric must be a number")}}
		}
	}
	ctx, cancel := q.withTimeout(r)
	defer cancel()
	res, err := q.queryable.metadata(ctx, r.FormValue("metric"), limit, limitPerMetric)
	if err != nil {
		return apiResult{err: apiErrorFor(err)}
	}
	return apiResult{data: res}
}

func (q *Querier) buildInfo(*http.Request) apiResult {
	return apiResult{data: version.Get()}
}

// parseLimitAndRange reads the limit, start and end parameters shared by
// the series and label endpoints; a bad one is answered as Prometheus does.
func parseLimitAndRange(r *http.Request) (limit int, start, end time.Time, bad *apiResult) {
	var err error
	if limit, err = parseLimitParam(r.FormValue("limit")); err != nil {
		res := invalidParamError(err, "limit")
		return 0, start, end, &res
	}
	if start, err = parseTimeParam(r, "start", minTime); err != nil {
		res := invalidParamError(err, "start")
		return 0, start, end, &res
	}
	if end, err = parseTimeParam(r, "end", maxTime); err != nil {
		res := invalidParamError(err, "end")
		return 0, start, end, &res
	}
	return limit, start, end, nil
}
