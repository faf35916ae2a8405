package tenantfederation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/auth"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func regexTestResolver(t *testing.T) (*RegexResolver, objstore.Bucket) {
	t.Helper()
	bkt := objstore.NewInMemBucket()
	for _, tn := range []string{"team-a", "team-b", "other"} {
		if err := bkt.Upload(context.Background(), tn+"/01J0000000000000000000000A/meta.json", strings.NewReader("{}")); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Enabled: true, RegexMatcherEnabled: true, UserSyncInterval: time.Hour}
	return NewRegexResolver(cfg, users.NewListScanner(bkt), nil, prometheus.NewPedanticRegistry()), bkt
}

func TestRegexResolve(t *testing.T) {
	ctx := context.Background()
	r, bkt := regexTestResolver(t)
	for orgID, want := range map[string]string{
		"team-.*":      "team-a|team-b",
		"team-a|other": "other|team-a",
		"team":         "team",   // no match, a valid tenant ID: itself
		"nobody.+":     "fake",   // no match, no tenant ID: a tenant of no data
		"team-a":       "team-a", // anchored: not team-ab
	} {
		got, err := r.Resolve(ctx, orgID)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", orgID, got, err, want)
		}
	}
	if _, err := r.Resolve(ctx, "team-(a"); err == nil || !IsRefused(err) || !strings.Contains(err.Error(), `X-Scope-OrgID "team-(a" is not a valid regular expression`) {
		t.Errorf("Resolve of an invalid expression: %v", err)
	}

	// A tenant new in the bucket is known once the known ones are
	// -tenant-federation.user-sync-interval old.
	if err := bkt.Upload(ctx, "team-c/01J0000000000000000000000A/meta.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Resolve(ctx, "team-.*"); got != "team-a|team-b" {
		t.Errorf("within the sync interval: %q, want the tenants known", got)
	}
	r.mu.Lock()
	r.syncedAt = time.Now().Add(-2 * time.Hour)
	r.mu.Unlock()
	if got, _ := r.Resolve(ctx, "team-.*"); got != "team-a|team-b|team-c" {
		t.Errorf("after the sync interval: %q, want team-c too", got)
	}
}

// The tenants a query's expression matches are each authorized against
// the client's (-auth.client-tenants-file): a client allowed only some of
// them is refused, naming one it may not read.
func TestRegexMatchedTenantsAuthorized(t *testing.T) {
	r, _ := regexTestResolver(t)
	pki := testkit.NewPKI(t, "cluster-ca")
	tenantsFile := filepath.Join(pki.Dir, "client-tenants.yaml")
	testkit.WriteFile(t, tenantsFile, []byte("clients:\n  reader-a: [team-a]\n  reader-ab: [team-a, team-b]\n"), 0o600)
	authz, err := auth.New(auth.Config{ClientTenantsFile: tenantsFile, ClientTenantsReloadPeriod: time.Minute}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	echo := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.WriteString(w, req.Header.Get(tenant.HeaderName))
	})
	h := r.HTTPMiddleware(authz.HTTPMiddleware(true, echo))
	serve := func(client *x509.Certificate, path, orgID string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set(tenant.HeaderName, orgID)
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{client}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	readerAB, readerA := pki.Client(t, "reader-ab").Cert, pki.Client(t, "reader-a").Cert
	if code, body := serve(readerAB, "/prometheus/api/v1/query", "team-.*"); code != http.StatusOK || body != "team-a|team-b" {
		t.Errorf("reader-ab querying team-.*: %d %q, want 200 and team-a|team-b", code, body)
	}
	if code, body := serve(readerA, "/prometheus/api/v1/query_range", "team-.*"); code != http.StatusForbidden || !strings.Contains(body, "team-b") {
		t.Errorf("reader-a querying team-.*: %d %q, want 403 naming team-b", code, body)
	}
	if code, body := serve(readerA, "/prometheus/api/v1/query", "team-(a"); code != http.StatusBadRequest || !strings.Contains(body, "not a valid regular expression") {
		t.Errorf("an invalid expression: %d %q, want 400", code, body)
	}
	// Paths reading one tenant take X-Scope-OrgID as a tenant ID.
	if code, body := serve(readerA, "/prometheus/api/v1/metadata", "team-a"); code != http.StatusOK || body != "team-a" {
		t.Errorf("reader-a's metadata of team-a: %d %q", code, body)
	}
	if code, _ := serve(readerAB, "/prometheus/api/v1/metadata", "team-.*"); code != http.StatusForbidden {
		t.Errorf("metadata of team-.*: %d, want the expression refused as a tenant", code)
	}
}

// -tenant-federation.regex-cache-size keeps that many expressions'
// answers, emptied when the tenants are listed again.
func TestRegexResolverCache(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	for _, tn := range []string{"team-a", "team-b"} {
		if err := bkt.Upload(ctx, tn+"/01J0000000000000000000000A/meta.json", strings.NewReader("{}")); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Enabled: true, RegexMatcherEnabled: true, UserSyncInterval: time.Hour, RegexCacheSize: 2}
	r := NewRegexResolver(cfg, users.NewListScanner(bkt), nil, prometheus.NewPedanticRegistry())
	for _, orgID := range []string{"team-.*", "team-a", ".*-b"} {
		if _, err := r.Resolve(ctx, orgID); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.resolved.Len(); n != 2 {
		t.Fatalf("%d expressions cached, want the cache size, 2", n)
	}
	if got, ok := r.resolved.Get(".*-b"); !ok || got != "team-b" {
		t.Fatalf("cached .*-b = %q, %v; want team-b", got, ok)
	}
	r.mu.Lock()
	r.syncedAt = time.Now().Add(-2 * time.Hour)
	r.mu.Unlock()
	if got, _ := r.Resolve(ctx, "team-a"); got != "team-a" || r.resolved.Len() != 1 {
		t.Fatalf("after the tenants were listed again: %q with %d cached, want team-a alone cached", got, r.resolved.Len())
	}
}
