package tenantfederation

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// unmatchedTenant is the tenant a regular expression that matches no
// known tenant, and is no tenant ID itself, resolves to, as in Cortex: a
// query of it reads nothing.
const unmatchedTenant = "fake"

// RegexResolver turns X-Scope-OrgID into the known tenants it matches as a
// regular expression (-tenant-federation.regex-matcher-enabled), as
// Cortex's regex resolver does. The known tenants are the blocks bucket's,
// active and being deleted, as the users scanner lists them, listed again
// once they are -tenant-federation.user-sync-interval old.
type RegexResolver struct {
	scanner  users.Scanner
	interval time.Duration
	logger   *slog.Logger

	mu       sync.Mutex
	known    []string
	syncedAt time.Time
	// resolved caches an expression's answer over the known tenants; it
	// is emptied when they are listed again. nil without a cache.
	resolved *lru.Cache[string, string]

	lastRun    prometheus.Gauge
	discovered prometheus.Gauge
}

// NewRegexResolver returns a resolver of the tenants scanner lists, with
// Cortex's cortex_regex_resolver_* metrics on reg.
func NewRegexResolver(cfg Config, scanner users.Scanner, logger *slog.Logger, reg prometheus.Registerer) *RegexResolver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var resolved *lru.Cache[string, string]
	if cfg.RegexCacheSize > 0 {
		resolved, _ = lru.New[string, string](cfg.RegexCacheSize) // errors only on a size <= 0
	}
	return &RegexResolver{
		resolved: resolved,
		scanner:  scanner,
		interval: cfg.UserSyncInterval,
		logger:   logger,
		lastRun: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "cortex_regex_resolver_last_update_run_timestamp_seconds",
			Help: "Unix timestamp of the last successful regex resolver update user run.",
		}),
		discovered: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "cortex_regex_resolver_discovered_users",
			Help: "Number of discovered users.",
		}),
	}
}

// knownTenants returns the known tenants, listing them again when they
// are older than the sync interval; a failed listing keeps the last ones.
func (r *RegexResolver) knownTenants(ctx context.Context) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.syncedAt.IsZero() && time.Since(r.syncedAt) < r.interval {
		return r.known
	}
	active, deleting, _, err := r.scanner.ScanUsers(ctx)
	if err != nil {
		r.logger.Error("failed to discover users from bucket", "err", err)
		return r.known
	}
	known := slices.Concat(active, deleting)
	slices.Sort(known)
	r.known, r.syncedAt = slices.Compact(known), time.Now()
	if r.resolved != nil {
		r.resolved.Purge()
	}
	r.lastRun.SetToCurrentTime()
	r.discovered.Set(float64(len(r.known)))
	return r.known
}

// Resolve returns the known tenants orgID matches as a regular expression
// (anchored, as PromQL's =~), joined by '|'. Matching none, it is orgID
// itself when that is a valid tenant ID, else a tenant of no data.
func (r *RegexResolver) Resolve(ctx context.Context, orgID string) (string, error) {
	known := r.knownTenants(ctx)
	if r.resolved != nil {
		if out, ok := r.resolved.Get(orgID); ok {
			return out, nil
		}
	}
	m, err := labels.NewFastRegexMatcher(orgID)
	if err != nil {
		return "", &RefusedError{fmt.Sprintf("%s %q is not a valid regular expression (-tenant-federation.regex-matcher-enabled): %v", tenant.HeaderName, orgID, err)}
	}
	var matched []string
	for _, id := range known {
		if m.MatchString(id) {
			matched = append(matched, id)
		}
	}
	out := strings.Join(matched, tenant.Separator)
	if len(matched) == 0 {
		out = unmatchedTenant
		if tenant.Valid(orgID) == nil {
			out = orgID
		}
	}
	if r.resolved != nil {
		r.resolved.Add(orgID, out)
	}
	return out, nil
}

// HTTPMiddleware rewrites X-Scope-OrgID of the requests that may read
// several tenants (FederatedPath) to the tenants it matches. It runs
// before the authorization, so that every matched tenant is checked
// against the client's (-auth.client-tenants-file) as if named.
func (r *RegexResolver) HTTPMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		orgID := req.Header.Get(tenant.HeaderName)
		if orgID == "" || !FederatedPath(req.URL.Path) {
			next.ServeHTTP(w, req)
			return
		}
		resolved, err := r.Resolve(req.Context(), orgID)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if resolved != orgID {
			req = req.Clone(req.Context())
			req.Header.Set(tenant.HeaderName, resolved)
		}
		next.ServeHTTP(w, req)
	})
}
