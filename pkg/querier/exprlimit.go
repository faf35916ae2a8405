package querier

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/promqlcheck"
)

// checkExprs refuses, before any parsing, expressions over the tenant's
// -query-frontend.max-query-expression-size-bytes or
// -query-frontend.max-query-expression-depth. what names the parameter.
func (q *Querier) checkExprs(ctx context.Context, what string, exprs ...string) *apiError {
	if q.queryable == nil || q.queryable.limits == nil {
		return nil
	}
	// No tenant: the defaults apply; several: the smallest of theirs.
	tenantID, _ := tenant.OrgID(ctx)
	l := q.queryable.limits.For(tenantID)
	for _, e := range exprs {
		if err := promqlcheck.Check(what, e, l.MaxQueryExpressionSizeBytes, l.MaxQueryExpressionDepth); err != nil {
			return &apiError{errorBadData, err}
		}
	}
	return nil
}

// writeDeadlineMargin is the time a query answered just within
// -querier.timeout gets to be written.
const writeDeadlineMargin = 10 * time.Second

// extendWriteDeadline lets the answer of a request that started at start
// be written until -querier.timeout plus a margin, where the server's
// -server.http-write-timeout (30 s by default, below the 2 m query
// timeout) would cut a long query's answer with no error text.
func (q *Querier) extendWriteDeadline(w http.ResponseWriter, start time.Time) {
	// Writers that cannot move their deadline (test recorders, the
	// querier worker's in-memory writer) have none to move.
	_ = http.NewResponseController(w).SetWriteDeadline(start.Add(q.cfg.Timeout + writeDeadlineMargin))
}

// queryContext bounds a query, from parsing to the end of evaluation, by
// -querier.timeout, or by the request's timeout parameter when shorter.
func (q *Querier) queryContext(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	timeout, apiErr := queryTimeout(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	if timeout <= 0 || timeout > q.cfg.Timeout {
		timeout = q.cfg.Timeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	return ctx, cancel, nil
}

// contextDone returns the engine's error for a context that ended during
// env: "query timed out in <env>" or "query was canceled in <env>".
// A deadline already past counts even before the context's own timer has
// fired: a gRPC call's deadline, taken from the same context, may end the
// call a moment earlier.
func contextDone(ctx context.Context, env string) error {
	err := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		err = context.DeadlineExceeded
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return promql.ErrQueryTimeout(env)
	default:
		return promql.ErrQueryCanceled(env)
	}
}
