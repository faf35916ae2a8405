package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

func cert(cn string, uris ...string) *x509.Certificate {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{"localhost"}}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			panic(err)
		}
		c.URIs = append(c.URIs, parsed)
	}
	return c
}

func TestIdentityPrefersURISAN(t *testing.T) {
	if got := Identity(cert("querier", "spiffe://cluster/querier")); got != "spiffe://cluster/querier" {
		t.Errorf("identity %q, want the URI SAN", got)
	}
	if got := Identity(cert("tenant-a")); got != "tenant-a" {
		t.Errorf("identity %q, want the Common Name", got)
	}
	if got := PeerIdentity(&tls.ConnectionState{}); got != "" {
		t.Errorf("no certificate: identity %q", got)
	}
}

func writeFile(t *testing.T, dir, content string) string {
	t.Helper()
	name := filepath.Join(dir, "client-tenants.yaml")
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

const allowYAML = `
clients:
  spiffe://cluster/querier: ["*"]
  prometheus-a: [tenant-a]
  grafana: [tenant-a, tenant-b]
`

func newAuthorizer(t *testing.T, content string, fromCert bool) (*Authorizer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	a, err := New(Config{ClientTenantsFile: writeFile(t, t.TempDir(), content), ClientTenantsReloadPeriod: time.Second, TenantFromClientCert: fromCert}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	return a, reg
}

func TestCheck(t *testing.T) {
	a, _ := newAuthorizer(t, allowYAML, false)
	for _, c := range []struct {
		identity, orgID string
		refused         string // the tenant named in the refusal, "" if allowed
	}{
		{"spiffe://cluster/querier", "anyone", ""},
		{"prometheus-a", "tenant-a", ""},
		{"prometheus-a", "tenant-b", "tenant-b"},
		{"grafana", "tenant-a|tenant-b", ""},
		{"prometheus-a", "tenant-a|tenant-b", "tenant-b"},
		{"stranger", "tenant-a", "tenant-a"},
		{"", "tenant-a", "tenant-a"},
	} {
		err := a.Check(c.identity, c.orgID)
		if c.refused == "" {
			if err != nil {
				t.Errorf("%s for %s: %v", c.identity, c.orgID, err)
			}
			continue
		}
		fe, ok := err.(*ForbiddenError)
		if !ok || fe.Tenant != c.refused || fe.Identity != c.identity {
			t.Errorf("%s for %s: %v, want refused for %s", c.identity, c.orgID, err, c.refused)
			continue
		}
		if c.identity != "" && !strings.Contains(err.Error(), `client "`+c.identity+`" may not act for tenant "`+c.refused+`"`) {
			t.Errorf("refusal %q does not name identity and tenant", err)
		}
	}
	if got := testutil.ToFloat64(a.refusals); got != 4 {
		t.Errorf("refusals %v, want 4", got)
	}

	open, err := New(Config{}, nil, prometheus.NewRegistry())
	if err != nil || open.Check("anyone", "any-tenant") != nil {
		t.Fatalf("without a file every identity may act for every tenant: %v", err)
	}
}

func TestParseErrorsNameFileAndEntry(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"clients:\n  a: [tenant/a]\n":    `client "a": tenant ID "tenant/a" contains unsupported character '/'`,
		"client:\n  a: [tenant-a]\n":     "field client not found",
		"clients:\n  a: tenant-a\n":      "cannot unmarshal",
		"clients:\n  \"\": [tenant-a]\n": "an empty client identity",
	} {
		name := writeFile(t, dir, content)
		_, err := New(Config{ClientTenantsFile: name, ClientTenantsReloadPeriod: time.Second}, nil, prometheus.NewRegistry())
		if err == nil || !strings.Contains(err.Error(), "-auth.client-tenants-file="+name) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming the file and %q", content, err, want)
		}
	}
	_, err := New(Config{ClientTenantsFile: filepath.Join(dir, "missing.yaml"), ClientTenantsReloadPeriod: time.Second}, nil, prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// A new version of the file applies at the next reload; one that does not
// load keeps the last good list.
func TestReloadKeepsLastGoodList(t *testing.T) {
	a, reg := newAuthorizer(t, allowYAML, false)
	name := a.cfg.ClientTenantsFile
	if err := os.WriteFile(name, []byte("clients:\n  prometheus-a: [tenant-a, tenant-c]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.reload(); err != nil {
		t.Fatal(err)
	}
	if a.Check("prometheus-a", "tenant-c") != nil || a.Check("grafana", "tenant-a") == nil {
		t.Fatal("the new file did not replace the list")
	}
	if err := os.WriteFile(name, []byte("clients: [broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.reload(); err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("broken file: %v, want an error naming it", err)
	}
	if a.Check("prometheus-a", "tenant-c") != nil {
		t.Fatal("a broken file replaced the last good list")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP cortex_auth_client_tenants_reloads_total Loads of -auth.client-tenants-file, by result (success, failure).
# TYPE cortex_auth_client_tenants_reloads_total counter
cortex_auth_client_tenants_reloads_total{result="failure"} 1
cortex_auth_client_tenants_reloads_total{result="success"} 2
`), "cortex_auth_client_tenants_reloads_total"); err != nil {
		t.Fatal(err)
	}
}

func serve(a *Authorizer, authEnabled bool, identity *x509.Certificate, orgID string) (*httptest.ResponseRecorder, string) {
	var seen string
	h := a.HTTPMiddleware(authEnabled, tenant.HTTPMiddleware(authEnabled, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = tenant.ID(r.Context())
	})))
	r := httptest.NewRequest(http.MethodGet, "/api/v1/push", nil)
	if identity != nil {
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{identity}}
	}
	if orgID != "" {
		r.Header.Set(tenant.HeaderName, orgID)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, seen
}

func TestAllTenantsRoutes(t *testing.T) {
	a, _ := newAuthorizer(t, allowYAML, false)
	h := a.AllTenantsMiddleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for identity, want := range map[*x509.Certificate]int{
		cert("x", "spiffe://cluster/querier"): http.StatusOK,
		cert("grafana"):                       http.StatusForbidden,
	} {
		r := httptest.NewRequest(http.MethodGet, "/private/api/prom/configs/alertmanager", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{identity}}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want || (want == http.StatusForbidden && !strings.Contains(w.Body.String(), "/private/api/prom/configs/alertmanager")) {
			t.Errorf("%s: %d %s, want %d", Identity(identity), w.Code, w.Body, want)
		}
	}
}

func TestHTTPMiddleware(t *testing.T) {
	a, _ := newAuthorizer(t, allowYAML, true)
	w, seen := serve(a, true, cert("prometheus-a"), "tenant-a")
	if w.Code != http.StatusOK || seen != "tenant-a" {
		t.Fatalf("allowed tenant: %d %s, tenant %q", w.Code, w.Body, seen)
	}
	w, _ = serve(a, true, cert("prometheus-a"), "tenant-b")
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `client "prometheus-a" may not act for tenant "tenant-b"`) {
		t.Fatalf("other tenant: %d %s, want 403 naming identity and tenant", w.Code, w.Body)
	}
	// No header: the certificate's identity is the tenant, which the
	// list must allow it.
	w, _ = serve(a, true, cert("grafana"), "")
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `tenant "grafana"`) {
		t.Fatalf("grafana as its own tenant: %d %s", w.Code, w.Body)
	}
	w, _ = serve(a, true, cert("x", "spiffe://cluster/querier"), "")
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "-auth.tenant-from-client-cert") {
		t.Fatalf("a URI identity as tenant: %d %s, want 400 naming the flag", w.Code, w.Body)
	}

	// Without an allow-list, a Prometheus that cannot set headers writes
	// into its own tenant.
	open, err := New(Config{TenantFromClientCert: true}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w, seen = serve(open, true, cert("prometheus-a"), "")
	if w.Code != http.StatusOK || seen != "prometheus-a" {
		t.Fatalf("tenant from certificate: %d %s, tenant %q", w.Code, w.Body, seen)
	}
	// Without the flag, no header is still a 401.
	closed, _ := New(Config{}, nil, prometheus.NewRegistry())
	if w, _ = serve(closed, true, cert("prometheus-a"), ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("no header, no flag: %d", w.Code)
	}
	// -auth.enabled=false: the identity must be allowed the default tenant.
	if w, _ = serve(a, false, cert("prometheus-a"), ""); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), tenant.DefaultTenant) {
		t.Fatalf("auth disabled: %d %s", w.Code, w.Body)
	}
}

func TestGRPCCheck(t *testing.T) {
	a, _ := newAuthorizer(t, allowYAML, false)
	ctx := func(identity *x509.Certificate, orgID string) context.Context {
		c := context.Background()
		if identity != nil {
			c = peer.NewContext(c, &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{identity}}}})
		}
		if orgID != "" {
			c = metadata.NewIncomingContext(c, metadata.Pairs("x-scope-orgid", orgID))
		}
		return c
	}
	if err := a.checkGRPC(ctx(cert("x", "spiffe://cluster/querier"), "tenant-z")); err != nil {
		t.Fatalf("an internal caller: %v", err)
	}
	err := a.checkGRPC(ctx(cert("prometheus-a"), "tenant-b"))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `client "prometheus-a" may not act for tenant "tenant-b"`) {
		t.Fatalf("another tenant over gRPC: %v", err)
	}
	if err := a.checkGRPC(ctx(cert("prometheus-a"), "")); err != nil {
		t.Fatalf("a call naming no tenant is the service's to judge: %v", err)
	}
}

// A stream whose messages name their tenants gets the same check per
// message, through the Authorizer its stream interceptor put in the
// stream's context.
func TestCheckMessageTenant(t *testing.T) {
	a, _ := newAuthorizer(t, allowYAML, false)
	withPeer := func(identity *x509.Certificate) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{identity}}}})
	}
	var handled context.Context
	stream := &fakeServerStream{ctx: withPeer(cert("prometheus-a"))}
	err := a.streamInterceptor(nil, stream, &grpc.StreamServerInfo{FullMethod: "/cortex.Ingester/PushStream"}, func(_ any, ss grpc.ServerStream) error {
		handled = ss.Context()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckMessageTenant(handled, "tenant-a"); err != nil {
		t.Fatalf("prometheus-a's own tenant: %v", err)
	}
	err = CheckMessageTenant(handled, "tenant-b")
	if status.Code(err) != codes.PermissionDenied || err.Error() != `rpc error: code = PermissionDenied desc = client "prometheus-a" may not act for tenant "tenant-b" (-auth.client-tenants-file)` {
		t.Fatalf("another tenant's message: %v", err)
	}
	if err := CheckMessageTenant(withPeer(cert("prometheus-a")), "tenant-b"); err != nil {
		t.Fatalf("a stream of a server without the Authorizer's options: %v", err)
	}
}

type fakeServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeServerStream) Context() context.Context { return s.ctx }
