package querier

import (
	"net/http"

	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
)

// WithTenantFederation lets queries name several tenants, as Cortex's
// -tenant-federation.* flags do: each read goes to every tenant named, at
// most cfg.MaxConcurrent at once, each series labelled __tenant_id__.
func WithTenantFederation(cfg tenantfederation.Config) Option {
	return func(q *Querier) {
		q.readable = tenantfederation.NewQueryable(q.readable, cfg)
	}
}

// withTenantCheck answers 400 to a request naming several tenants that it
// may not read at once: on a path that reads one tenant (exemplars,
// metadata, head statistics), without -tenant-federation.enabled, or over
// -tenant-federation.max-tenant; before any work is done for it.
func (q *Querier) withTenantCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := q.federation().CheckRequest(r.Context(), r.URL.Path); tenantfederation.IsRefused(err) {
			q.respondError(w, &apiError{errorBadData, err}, nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// federation returns the -tenant-federation.* settings of the querier's
// Queryable; a querier built without them reads one tenant per query.
func (q *Querier) federation() *tenantfederation.Config {
	if c, ok := q.readable.(interface {
		Config() *tenantfederation.Config
	}); ok {
		return c.Config()
	}
	return &tenantfederation.Config{}
}
