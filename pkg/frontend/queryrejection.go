package frontend

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// queryRejectMessage is Cortex's answer to a rejected query.
const queryRejectMessage = "This query does not perform well and has been rejected by the service operator."

func newRejectedQueries(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cortex_query_frontend_rejected_queries_total", Help: "Total number of queries that were rejected."}, []string{"op", "user"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// queryOperation is Cortex's name of the API a path serves.
func queryOperation(path string) string {
	switch {
	case strings.HasSuffix(path, "/query"):
		return "query"
	case strings.HasSuffix(path, "/query_range"):
		return "query_range"
	case strings.HasSuffix(path, "/series"):
		return "series"
	case strings.HasSuffix(path, "/labels"):
		return "labels"
	case strings.HasSuffix(path, "/values"):
		return "label_values"
	}
	return "other"
}

// rejectQuery reports whether the tenant's limits.query_rejection refuses
// the query, as Cortex's query-frontend matches its query attributes.
func (f *Frontend) rejectQuery(r *http.Request, vals url.Values, tenantID string, now time.Time) bool {
	if f.limits == nil {
		return false
	}
	rej := f.limits.For(tenantID).QueryRejection
	if !rej.Enabled || len(rej.QueryAttributes) == 0 {
		return false
	}
	op, match := f.attributeMatcher(r, vals, now)
	if match != nil && slices.ContainsFunc(rej.QueryAttributes, match) {
		f.rejected.WithLabelValues(op, tenantID).Inc()
		return true
	}
	return false
}

// attributeMatcher returns the request's operation and whether a query
// attribute describes it; match is nil for the requests no attribute
// describes (other APIs, queries that do not parse).
func (f *Frontend) attributeMatcher(r *http.Request, vals url.Values, now time.Time) (op string, match func(validation.QueryAttribute) bool) {
	op = queryOperation(r.URL.Path)
	switch op {
	case "query", "query_range":
		query := vals.Get("query")
		expr, err := f.promql().ParseExpr(query)
		if query == "" || err != nil {
			return op, nil // the querier answers it with its error
		}
		minT, maxT := f.selectedRange(op, vals, expr, now)
		return op, func(a validation.QueryAttribute) bool { return matchExprQuery(a, op, r, vals, query, now, minT, maxT) }
	case "series", "labels", "label_values":
		return op, func(a validation.QueryAttribute) bool { return matchMetadataQuery(a, op, r, vals, now) }
	}
	return op, nil
}

// selectedRange is the data a query selects, in milliseconds: its time
// range widened by its range selectors, offsets and the lookback delta.
func (f *Frontend) selectedRange(op string, vals url.Values, expr parser.Expr, now time.Time) (int64, int64) {
	var start, end int64
	if op == "query" {
		start = now.UnixMilli()
		if t := vals.Get("time"); t != "" {
			var err error
			if start, err = parseTimeMs(t); err != nil {
				return 0, 0
			}
		}
		end = start
	} else {
		s, err1 := parseTimeMs(vals.Get("start"))
		e, err2 := parseTimeMs(vals.Get("end"))
		if err1 != nil || err2 != nil {
			return 0, 0
		}
		start, end = s, e
	}
	return promql.FindMinMaxTime(&parser.EvalStmt{Expr: expr, Start: time.UnixMilli(start), End: time.UnixMilli(end), LookbackDelta: f.lookbackDelta()})
}

func regexMatches(pattern string, compiled *regexp.Regexp, s string) bool {
	if compiled == nil {
		var err error
		if compiled, err = regexp.Compile(pattern); err != nil {
			return false
		}
	}
	return compiled.MatchString(s)
}

func matchExprQuery(a validation.QueryAttribute, op string, r *http.Request, vals url.Values, query string, now time.Time, minT, maxT int64) bool {
	matched := false
	if a.APIType != "" {
		matched = true
		if a.APIType != op {
			return false
		}
	}
	if a.Regex != "" {
		matched = true
		if a.Regex != ".*" && a.Regex != ".+" && !regexMatches(a.Regex, a.CompiledRegex, query) {
			return false
		}
	}
	if a.TimeWindow.Start != 0 || a.TimeWindow.End != 0 {
		matched = true
		if !withinTimeWindow(a.TimeWindow, now, minT, maxT) {
			return false
		}
	}
	if a.TimeRangeLimit.Min != 0 || a.TimeRangeLimit.Max != 0 {
		matched = true
		if !withinTimeRange(a.TimeRangeLimit, minT, maxT) {
			return false
		}
	}
	if op == "query_range" && (a.QueryStepLimit.Min != 0 || a.QueryStepLimit.Max != 0) {
		matched = true
		step, err := parseStepMs(vals.Get("step"))
		if err != nil || (a.QueryStepLimit.Min != 0 && time.Duration(a.QueryStepLimit.Min).Milliseconds() > step) ||
			(a.QueryStepLimit.Max != 0 && time.Duration(a.QueryStepLimit.Max).Milliseconds() < step) {
			return false
		}
	}
	if a.UserAgentRegex != "" {
		matched = true
		if a.UserAgentRegex != ".*" && !regexMatches(a.UserAgentRegex, a.CompiledUserAgentRegex, r.Header.Get("User-Agent")) {
			return false
		}
	}
	if a.DashboardUID != "" {
		matched = true
		if a.DashboardUID != r.Header.Get("X-Dashboard-Uid") {
			return false
		}
	}
	if a.PanelID != "" {
		matched = true
		if a.PanelID != r.Header.Get("X-Panel-Id") {
			return false
		}
	}
	return matched
}

func matchMetadataQuery(a validation.QueryAttribute, op string, r *http.Request, vals url.Values, now time.Time) bool {
	matched := false
	if a.APIType != "" {
		matched = true
		if a.APIType != op {
			return false
		}
	}
	if a.Regex != "" {
		matched = true
		if a.Regex != ".*" && !slices.ContainsFunc(vals["match[]"], func(m string) bool { return regexMatches(a.Regex, a.CompiledRegex, m) }) {
			return false
		}
	}
	start, _ := parseTimeMs(vals.Get("start"))
	end, _ := parseTimeMs(vals.Get("end"))
	if a.TimeWindow.Start != 0 || a.TimeWindow.End != 0 {
		matched = true
		if !withinTimeWindow(a.TimeWindow, now, start, end) {
			return false
		}
	}
	if a.TimeRangeLimit.Min != 0 || a.TimeRangeLimit.Max != 0 {
		matched = true
		if !withinTimeRange(a.TimeRangeLimit, start, end) {
			return false
		}
	}
	if a.UserAgentRegex != "" {
		matched = true
		if a.UserAgentRegex != ".*" && !regexMatches(a.UserAgentRegex, a.CompiledUserAgentRegex, r.Header.Get("User-Agent")) {
			return false
		}
	}
	return matched
}

// withinTimeWindow: the selected data starts no earlier than Start ago and
// ends no later than End ago, each rounded out to the minute, as in Cortex.
func withinTimeWindow(w validation.TimeWindow, now time.Time, start, end int64) bool {
	if w.Start != 0 {
		threshold := now.Add(-time.Duration(w.Start).Abs()).Add(-time.Minute).Truncate(time.Minute).UnixMilli()
		if start == 0 || start < threshold {
			return false
		}
	}
	if w.End != 0 {
		threshold := now.Add(-time.Duration(w.End).Abs()).Add(time.Minute).Truncate(time.Minute).UnixMilli()
		if end == 0 || end > threshold {
			return false
		}
	}
	return true
}

func withinTimeRange(l validation.TimeRangeLimit, start, end int64) bool {
	if start == 0 || end == 0 {
		return false
	}
	d := end - start
	if l.Min != 0 && time.Duration(l.Min).Milliseconds() > d {
		return false
	}
	if l.Max != 0 && time.Duration(l.Max).Milliseconds() < d {
		return false
	}
	return true
}
