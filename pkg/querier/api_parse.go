package querier

import (
	"net/http"
)

// format_query and parse_query, as Prometheus's web/api/v1 answers them:
// Grafana's query editor formats PromQL through format_query, and
// Prometheus's UI (and tools built on it) draws the tree of parse_query.
// Both apply the tenant's expression size and depth limits first, as the
// query routes do, so a deep expression is refused before it is parsed.

func (q *Querier) formatQuery(r *http.Request) apiResult {
	query := r.FormValue("query")
	if apiErr := q.checkExprs(r.Context(), "query", query); apiErr != nil {
		return apiResult{err: apiErr}
	}
	expr, err := q.parser.ParseExpr(query)
	if err != nil {
		return invalidParamError(err, "query")
	}
	return apiResult{data: expr.Pretty(0)}
}

func (q *Querier) parseQuery(r *http.Request) apiResult {
	query := r.FormValue("query")
	if apiErr := q.checkExprs(r.Context(), "query", query); apiErr != nil {
		return apiResult{err: apiErr}
	}
	expr, err := q.parser.ParseExpr(query)
	if err != nil {
		return invalidParamError(err, "query")
	}
	return apiResult{data: translateAST(expr)}
}
