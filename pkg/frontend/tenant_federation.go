package frontend

import (
	"net/http"

	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
)

// WithTenantFederation lets queries name several tenants ("a|b"), as
// Cortex's -tenant-federation.* flags do. Such a query is queued, cached
// and limited under all its tenants together: its cache key and queue are
// those of "a|b", and each limit is the smallest of the tenants'.
func WithTenantFederation(cfg tenantfederation.Config) Option {
	return func(f *Frontend) { f.federation = cfg }
}

// requestTenants returns the request's tenants joined by '|', sorted and
// without repeats, or answers 400 for several tenants that one query may
// not read (401 for none).
func (f *Frontend) requestTenants(w http.ResponseWriter, r *http.Request) (string, bool) {
	org, err := f.federation.CheckRequest(r.Context(), r.URL.Path)
	switch {
	case tenantfederation.IsRefused(err):
		writeError(w, http.StatusBadRequest, "bad_data", err.Error())
		return "", false
	case err != nil:
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return "", false
	}
	return org, true
}
