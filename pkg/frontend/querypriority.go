package frontend

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// priorityKey holds a query's priority in its context, from the handler
// to the queue (or the query-scheduler) its parts are enqueued to.
type priorityKey struct{}

// withPriority returns ctx carrying the query's priority.
func withPriority(ctx context.Context, priority int64) context.Context {
	return context.WithValue(ctx, priorityKey{}, priority)
}

// priorityOf is the priority of the query ctx runs; 0 when none was
// assigned.
func priorityOf(ctx context.Context) int64 {
	p, _ := ctx.Value(priorityKey{}).(int64)
	return p
}

// queryPriority assigns a query its tenant's priority, as Cortex's
// query-frontend: with limits.query_priority enabled, the priority of the
// first definition one of whose query_attributes matches the query (the
// same matching as limits.query_rejection's), default_priority otherwise;
// 0 with priorities disabled. ok is false when none is assigned.
func (f *Frontend) queryPriority(r *http.Request, vals url.Values, tenantID string, now time.Time) (priority int64, ok bool) {
	if f.limits == nil {
		return 0, false
	}
	prio := f.limits.For(tenantID).QueryPriority
	if !prio.Enabled {
		return 0, false
	}
	if len(prio.Priorities) == 0 {
		return prio.DefaultPriority, true
	}
	if _, match := f.attributeMatcher(r, vals, now); match != nil {
		for _, p := range prio.Priorities {
			if slices.ContainsFunc(p.QueryAttributes, match) {
				return p.Priority, true
			}
		}
	}
	return prio.DefaultPriority, true
}
