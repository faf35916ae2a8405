// Package tenantfederation lets one query read several tenants, as
// Cortex's tenant federation does: X-Scope-OrgID "a|b|c" reads the series
// of each tenant named, each series labelled __tenant_id__ with its
// tenant, and a __tenant_id__ matcher picks the tenants read.
package tenantfederation

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// Config is Cortex's tenant_federation block.
type Config struct {
	Enabled       bool `yaml:"enabled"`
	MaxConcurrent int  `yaml:"max_concurrent"`
	MaxTenant     int  `yaml:"max_tenant"`
	// AllowPartialData answers a federated query from the tenants that
	// could be read, each failure a warning, rather than failing it.
	AllowPartialData bool `yaml:"allow_partial_data"`
	// RegexMatcherEnabled reads X-Scope-OrgID of a query as a regular
	// expression over the known tenants (RegexResolver), listed again
	// every UserSyncInterval.
	RegexMatcherEnabled bool          `yaml:"regex_matcher_enabled"`
	UserSyncInterval    time.Duration `yaml:"user_sync_interval"`
	// RegexCacheSize is how many expressions keep their matched tenants
	// until the tenants are listed again; 0 or less, none.
	RegexCacheSize int `yaml:"regex_cache_size"`
}

// RegisterFlags registers Cortex's -tenant-federation.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "tenant-federation.enabled", false, "Let a query read several tenants: X-Scope-OrgID names them separated by '|', every series read gets a __tenant_id__ label with its tenant, and a __tenant_id__ matcher selects tenants. Applies to queries (instant, range, remote read), series, label names and values; writes, rules and alerts stay single-tenant.")
	f.IntVar(&c.MaxConcurrent, "tenant-federation.max-concurrent", 16, "Most tenants of one federated query read at once (ingesters and store-gateways are asked per tenant).")
	f.BoolVar(&c.AllowPartialData, "tenant-federation.allow-partial-data", false, "If enabled, query errors from individual tenants are treated as warnings, allowing partial results to be returned: a federated query answers from the tenants that could be read, with a warning naming each tenant that failed.")
	f.BoolVar(&c.RegexMatcherEnabled, "tenant-federation.regex-matcher-enabled", false, "[Experimental] If enabled, the `X-Scope-OrgID` header value can accept a regex and the matched tenantIDs are automatically involved. The regex matching rule follows the Prometheus, see the detail: https://prometheus.io/docs/prometheus/latest/querying/basics/#time-series-selectors. The user discovery is based on scanning block storage, so new users can get queries after uploading a block (generally 2h).")
	f.IntVar(&c.RegexCacheSize, "tenant-federation.regex-cache-size", 1000, "[Experimental] Cache size of regex match results used by regex resolver. Each cache entry includes both regex patterns (e.g. `user-.+`) and resolved tenant IDs (e.g. `user-1`). Set to 0 or less to disable caching. The cache is emptied whenever the tenants are listed again.")
	f.DurationVar(&c.UserSyncInterval, "tenant-federation.user-sync-interval", 5*time.Minute, "[Experimental] If the regex matcher is enabled, it specifies how frequently to scan users. The scanned users are used to calculate matched tenantIDs. The scanning strategy depends on the `-blocks-storage.users-scanner.strategy`.")
	f.IntVar(&c.MaxTenant, "tenant-federation.max-tenant", 0, "Most tenants one query may name; a query naming more is refused with 400. 0 means no limit.")
}

// Validate refuses settings that cannot work.
func (c *Config) Validate() error {
	if c.MaxConcurrent < 1 {
		return fmt.Errorf("-tenant-federation.max-concurrent=%d: must be at least 1", c.MaxConcurrent)
	}
	if c.MaxTenant < 0 {
		return fmt.Errorf("-tenant-federation.max-tenant=%d: must be 0 (no limit) or more", c.MaxTenant)
	}
	if c.RegexMatcherEnabled && !c.Enabled {
		return errors.New("-tenant-federation.regex-matcher-enabled needs -tenant-federation.enabled: the tenants a regular expression matches are read by one federated query")
	}
	if c.RegexMatcherEnabled && c.UserSyncInterval <= 0 {
		return fmt.Errorf("-tenant-federation.user-sync-interval=%s: must be positive", c.UserSyncInterval)
	}
	return nil
}

// RefusedError is a request naming tenants that this configuration does
// not let one query read: the client's to fix (HTTP 400).
type RefusedError struct{ msg string }

func (e *RefusedError) Error() string { return e.msg }

// IsRefused says whether err is, or wraps, a RefusedError.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// Tenants returns the tenants of the request context, sorted and without
// repeats, refusing several tenants without -tenant-federation.enabled and
// more than -tenant-federation.max-tenant.
func (c *Config) Tenants(ctx context.Context) ([]string, error) {
	ids, err := tenant.IDs(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) < 2 {
		return ids, nil
	}
	if !c.Enabled {
		return nil, &RefusedError{fmt.Sprintf("%s %q names %d tenants but tenant federation is off: a query reads one tenant unless -tenant-federation.enabled=true", tenant.HeaderName, strings.Join(ids, "|"), len(ids))}
	}
	if c.MaxTenant > 0 && len(ids) > c.MaxTenant {
		return nil, &RefusedError{fmt.Sprintf("%s %q names %d tenants, more than -tenant-federation.max-tenant=%d allows one query", tenant.HeaderName, strings.Join(ids, "|"), len(ids), c.MaxTenant)}
	}
	return ids, nil
}

// federatedPaths are the Prometheus API paths that read several tenants
// when the request names them: those that read through a Queryable.
// Exemplars, metadata and head statistics read one tenant.
var federatedPaths = []string{"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels", "/api/v1/read"}

// FederatedPath says whether a request to path may read several tenants.
func FederatedPath(path string) bool {
	for _, p := range federatedPaths {
		if strings.HasSuffix(path, p) {
			return true
		}
	}
	return strings.Contains(path, "/api/v1/label/") && strings.HasSuffix(path, "/values")
}

// CheckRequest refuses a request naming several tenants on a path that
// reads one, or that this configuration does not let one query read; it
// returns the request's tenants joined by '|', sorted and without repeats.
func (c *Config) CheckRequest(ctx context.Context, path string) (string, error) {
	ids, err := tenant.IDs(ctx)
	if err != nil || len(ids) < 2 {
		return strings.Join(ids, tenant.Separator), err
	}
	org := strings.Join(ids, tenant.Separator)
	if !FederatedPath(path) {
		return "", &RefusedError{fmt.Sprintf("%s %q names several tenants: %s reads one tenant", tenant.HeaderName, org, path)}
	}
	if _, err := c.Tenants(ctx); err != nil {
		return "", err
	}
	return org, nil
}
