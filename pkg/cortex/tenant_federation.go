package cortex

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
)

// tenantMiddleware is what a route carrying a tenant runs first: the
// authorization of the client's tenants, preceded, with
// -tenant-federation.regex-matcher-enabled, by the resolution of a query's
// X-Scope-OrgID into the tenants it matches, so that each is authorized.
func (t *Cortex) tenantMiddleware() (func(http.Handler) http.Handler, error) {
	authorize := func(h http.Handler) http.Handler { return t.authorizer.HTTPMiddleware(t.Cfg.AuthEnabled, h) }
	fed := t.Cfg.TenantFederation
	if !fed.Enabled || !fed.RegexMatcherEnabled || !t.Cfg.AuthEnabled || !t.Cfg.runs(Querier, QueryFrontend) {
		return authorize, nil
	}
	// The known tenants are the blocks bucket's, as the store-gateways
	// list them (-blocks-storage.users-scanner.*).
	bkt, err := bucket.NewClient(context.Background(), t.Cfg.BlocksStorage.Bucket, "regex-resolver", t.TLS, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	t.closers = append(t.closers, bkt)
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"component": "regex-resolver"}, t.Registry)
	scanner, err := users.NewScanner(t.Cfg.BlocksStorage.UsersScanner, bkt, t.Logger, reg)
	if err != nil {
		return nil, err
	}
	r := tenantfederation.NewRegexResolver(fed, scanner, t.Logger.With("component", "regex-resolver"), t.Registry)
	return func(h http.Handler) http.Handler { return r.HTTPMiddleware(authorize(h)) }, nil
}
