package frontend

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// TestQueryRejection: with -frontend.query-rejection.enabled, a tenant's
// queries matching any of its limits.query_rejection.query_attributes are
// refused with 422 and Cortex's text before reaching a querier, and counted;
// queries matching none, and tenants without it, are answered.
func TestQueryRejection(t *testing.T) {
	var calls atomic.Int64
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/prometheus/api/v1/series" {
			_, _ = io.WriteString(w, `{"status":"success","data":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
	})
	rejecting := *defaultLimits(nil).For("x")
	rejecting.QueryRejection = validation.QueryRejection{Enabled: true, QueryAttributes: []validation.QueryAttribute{
		{Regex: `.*expensive.*`},
		{APIType: "query_range", QueryStepLimit: validation.QueryStepLimit{Max: model.Duration(time.Second)}},
		{APIType: "query_range", TimeRangeLimit: validation.TimeRangeLimit{Min: model.Duration(30 * 24 * time.Hour)}},
		{UserAgentRegex: "^curl/", DashboardUID: "dash-1"},
		{APIType: "series", Regex: `.*__name__=~".\*".*`},
		{APIType: "query", TimeWindow: validation.TimeWindow{Start: model.Duration(2 * time.Hour)}},
	}}
	if err := rejecting.QueryRejection.Validate(); err != nil {
		t.Fatal(err)
	}
	disabled := rejecting
	disabled.QueryRejection.Enabled = false
	h := newHarnessWith(t, querier, WithLimits(defaultLimits(map[string]*validation.Limits{"strict": &rejecting, "off": &disabled})))

	now := time.Now()
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(-d).Unix(), 10) }
	ask := func(tenantID, path string, params url.Values, headers ...string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil)
		req.Header.Set(tenant.HeaderName, tenantID)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		rec := httptest.NewRecorder()
		h.api.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	rangeQ := func(q string, start, end time.Duration, step string) url.Values {
		return url.Values{"query": {q}, "start": {unix(start)}, "end": {unix(end)}, "step": {step}}
	}
	const rejected = `{"error":"This query does not perform well and has been rejected by the service operator.","errorType":"execution","status":"error"}`
	for _, c := range []struct {
		name    string
		path    string
		params  url.Values
		headers []string
		refused bool
	}{
		{"regex", "/prometheus/api/v1/query", url.Values{"query": {"sum(expensive_metric)"}}, nil, true},
		{"step below 1s", "/prometheus/api/v1/query_range", rangeQ("up", time.Hour, 0, "0.5"), nil, true},
		{"range of 31 days", "/prometheus/api/v1/query_range", rangeQ("up", 31*24*time.Hour, 0, "3600"), nil, true},
		{"user agent and dashboard", "/prometheus/api/v1/query", url.Values{"query": {"up"}}, []string{"User-Agent", "curl/8", "X-Dashboard-Uid", "dash-1"}, true},
		{"user agent only", "/prometheus/api/v1/query", url.Values{"query": {"up"}, "time": {unix(5 * time.Hour)}}, []string{"User-Agent", "curl/8"}, false},
		{"series matcher", "/prometheus/api/v1/series", url.Values{"match[]": {`{__name__=~".*"}`}}, nil, true},
		{"recent instant query", "/prometheus/api/v1/query", url.Values{"query": {"up"}, "time": {unix(0)}}, nil, true},
		{"old instant query", "/prometheus/api/v1/query", url.Values{"query": {"up"}, "time": {unix(5 * time.Hour)}}, nil, false},
		{"ordinary range query", "/prometheus/api/v1/query_range", rangeQ("up", time.Hour, 0, "60"), nil, false},
	} {
		before := calls.Load()
		code, body := ask("strict", c.path, c.params, c.headers...)
		if c.refused && (code != http.StatusUnprocessableEntity || body != rejected || calls.Load() != before) {
			t.Errorf("%s: %d %s (%d querier calls), want refused", c.name, code, body, calls.Load()-before)
		}
		if !c.refused && code != http.StatusOK {
			t.Errorf("%s: %d %s, want answered", c.name, code, body)
		}
		if code, _ := ask("off", c.path, c.params, c.headers...); code != http.StatusOK {
			t.Errorf("%s, with query rejection disabled: %d", c.name, code)
		}
	}
	if v := testkit.MetricSum(t, h.reg, "cortex_query_frontend_rejected_queries_total", "user", "strict"); v != 6 {
		t.Fatalf("cortex_query_frontend_rejected_queries_total{user=\"strict\"} = %v, want 6", v)
	}
}

func TestQueryRejectionValidate(t *testing.T) {
	for _, c := range []struct {
		attr validation.QueryAttribute
		want string
	}{
		{validation.QueryAttribute{Regex: "("}, "query_rejection.query_attributes[0].regex: error parsing regexp: missing closing ): `(`"},
		{validation.QueryAttribute{APIType: "write"}, `query_rejection.query_attributes[0].api_type "write": want one of query, query_range, series, labels, label_values`},
	} {
		q := validation.QueryRejection{Enabled: true, QueryAttributes: []validation.QueryAttribute{c.attr}}
		if err := q.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %s", c.attr, err, c.want)
		}
	}
}
