package tenant

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/grafana/dskit/tenant"
	"github.com/grafana/dskit/user"
)

// Separator joins the tenants of a query that reads several, as in Cortex.
const Separator = "|"

// IDs returns the tenants of a request context, sorted and without
// repeats: one, or several for a query that names them joined by '|'.
func IDs(ctx context.Context) ([]string, error) {
	org, err := user.ExtractOrgID(ctx)
	if err != nil {
		return nil, err
	}
	return parseIDs(org)
}

// OrgID returns the context's X-Scope-OrgID with its tenants sorted and
// without repeats: the one key of a query however its client ordered them.
func OrgID(ctx context.Context) (string, error) {
	ids, err := IDs(ctx)
	if err != nil {
		return "", err
	}
	return tenant.JoinTenantIDs(ids), nil
}

// ValidOrgID checks an X-Scope-OrgID of one tenant or of several joined
// by '|', each a valid tenant ID.
func ValidOrgID(org string) error {
	_, err := parseIDs(org)
	return err
}

func parseIDs(org string) ([]string, error) {
	parts := strings.Split(org, Separator)
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("%s %s names an empty tenant: join tenant IDs with a single '|'", HeaderName, quote(org))
		}
		if err := Valid(p); err != nil {
			return nil, err
		}
	}
	return tenant.NormalizeTenantIDs(parts), nil
}

// severalError is a request naming several tenants on an API that acts for one.
func severalError(org string) error {
	return fmt.Errorf("%s %s names several tenants: this API acts for one tenant (only queries may read several, with -tenant-federation.enabled=true)", HeaderName, quote(org))
}

// MultiTenantHTTPMiddleware is HTTPMiddleware for the query APIs, where
// X-Scope-OrgID may name several tenants joined by '|': each must be
// valid, and the context gets them sorted and without repeats. Whether a
// query may read them (-tenant-federation.*) is the query path's to judge.
func MultiTenantHTTPMiddleware(authEnabled bool, next http.Handler) http.Handler {
	single := HTTPMiddleware(authEnabled, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderName)
		if !authEnabled || !strings.Contains(id, Separator) {
			single.ServeHTTP(w, r)
			return
		}
		ids, err := parseIDs(id)
		if err != nil {
			http.Error(w, "invalid "+HeaderName+" "+quote(id)+": "+err.Error(), http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r.WithContext(user.InjectOrgID(r.Context(), tenant.JoinTenantIDs(ids))))
	})
}
