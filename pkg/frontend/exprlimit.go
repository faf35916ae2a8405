package frontend

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/util/promqlcheck"
)

// writeDeadlineMargin is the time an answer that comes just within
// -querier.timeout gets to be written.
const writeDeadlineMargin = 10 * time.Second

// checkExprs applies the tenant's -query-frontend.max-query-expression-*
// limits to the PromQL of a Prometheus API request: the query of the
// query routes, the match[] selectors of the series and label routes.
func (f *Frontend) checkExprs(tenantID, path string, vals url.Values) error {
	if f.limits == nil {
		return nil
	}
	var what string
	var exprs []string
	switch {
	case strings.HasSuffix(path, "/api/v1/query"), strings.HasSuffix(path, "/api/v1/query_range"), strings.HasSuffix(path, "/api/v1/query_exemplars"):
		what, exprs = "query", vals["query"]
	case strings.HasSuffix(path, "/api/v1/series"), strings.HasSuffix(path, "/api/v1/labels"), strings.Contains(path, "/api/v1/label/"):
		what, exprs = "match[]", vals["match[]"]
	default:
		return nil
	}
	l := f.limits.For(tenantID)
	for _, e := range exprs {
		if err := promqlcheck.Check(what, e, l.MaxQueryExpressionSizeBytes, l.MaxQueryExpressionDepth); err != nil {
			return err
		}
	}
	return nil
}

// queryTimedOut reports a querier's answer that the query ran out of
// -querier.timeout: another try would take as long again, so it is not
// retried, or a 2 m timeout would take 10 m to answer.
func queryTimedOut(resp *frontendpb.HTTPResponse) bool {
	return resp.Code == http.StatusServiceUnavailable && bytes.Contains(resp.Body, []byte(`"errorType":"timeout"`))
}
