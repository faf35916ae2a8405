package frontend

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
)

// responseSizeLimiter sums the bytes of the querier answers to one client
// query, over its split and shard queries, against the tenant's
// -frontend.max-query-response-size, as Cortex's limiter.ResponseSizeLimiter.
type responseSizeLimiter struct {
	limit int64
	total atomic.Int64
}

type responseSizeKey struct{}

// errResponseTooLarge is a query whose answers passed the tenant's limit.
type errResponseTooLarge struct{ limit int64 }

func (e errResponseTooLarge) Error() string {
	return fmt.Sprintf("the query response size exceeds limit (limit: %d bytes)", e.limit)
}

// withResponseSizeLimit bounds the answers of a query or query_range
// request of tenantID, when the tenant has a limit.
func (f *Frontend) withResponseSizeLimit(ctx context.Context, tenantID, path string) context.Context {
	if f.limits == nil || !isQueryPath(path) {
		return ctx
	}
	limit := f.limits.For(tenantID).MaxQueryResponseSize
	if limit <= 0 {
		return ctx
	}
	return context.WithValue(ctx, responseSizeKey{}, &responseSizeLimiter{limit: limit})
}

// countResponse adds an answer of a querier to its query's total, and
// fails the query once the total passes its limit.
func countResponse(ctx context.Context, resp *frontendpb.HTTPResponse) error {
	l, ok := ctx.Value(responseSizeKey{}).(*responseSizeLimiter)
	if !ok || resp == nil {
		return nil
	}
	if l.total.Add(int64(len(resp.Body))) > l.limit {
		return errResponseTooLarge{limit: l.limit}
	}
	return nil
}

// writeResponseTooLarge answers a query over its size limit as Cortex
// does: 422.
func writeResponseTooLarge(w http.ResponseWriter, err errResponseTooLarge) {
	writeError(w, http.StatusUnprocessableEntity, "execution", err.Error())
}
