package frontend

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/auth"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestHTTPOverGRPCQueriesForTheCallsTenant: a query sent to the frontend
// as httpgrpc.HTTP/Handle over mutual TLS reaches a querier worker for the
// call's tenant (not the carried request's header), a client certificate
// not bound to that tenant is refused with PermissionDenied, and a call
// naming no tenant gets the frontend's 401.
func TestHTTPOverGRPCQueriesForTheCallsTenant(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := tenant.ID(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		fmt.Fprintf(w, `{"status":"success","data":{"tenant":%q,"path":%q,"query":%q}}`, id, r.URL.Path, r.Form.Get("query"))
	})
	h := newHarness(t, defaultConfig(), echo, 1)

	pki := testkit.NewPKI(t, "cluster-ca")
	srvLeaf := pki.Server(t, "query-frontend")
	tenantsFile := filepath.Join(pki.Dir, "client-tenants.yaml")
	testkit.WriteFile(t, tenantsFile, []byte("clients:\n  ruler: [\"*\"]\n  app-b: [tenant-b]\n"), 0o600)
	authz, err := auth.New(auth.Config{ClientTenantsFile: tenantsFile, ClientTenantsReloadPeriod: time.Minute}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	loader := tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil)
	tlsSrv, err := tlsconfig.NewServer("grpc", "server.grpc", tlsconfig.ServerConfig{
		CertPath: srvLeaf.CertPath, KeyPath: srvLeaf.KeyPath, CAPath: pki.CAPath, ClientAuth: "RequireAndVerifyClientCert",
	}, tlsconfig.ServerOptions{}, loader)
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]grpc.ServerOption{grpc.Creds(tlsSrv.GRPCCredentials()), grpc.ForceServerCodecV2(grpccodec.Codec{})}, tenant.ServerInterceptors()...)
	gs := grpc.NewServer(append(opts, authz.GRPCServerOptions()...)...)
	h.f.RegisterHTTPOverGRPC(gs)
	ln := testkit.Listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})

	dial := func(name string, interceptors ...grpc.DialOption) httpgrpc.HTTPClient {
		leaf := pki.Client(t, name)
		tc, err := tlsconfig.NewClient("ruler.frontendClient", tlsconfig.ClientConfig{CertPath: leaf.CertPath, KeyPath: leaf.KeyPath, CAPath: pki.CAPath}, loader)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(ln.Addr().String(), append([]grpc.DialOption{tc.GRPCDialOption(), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{}))}, interceptors...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return httpgrpc.NewHTTPClient(cc)
	}
	query := &httpgrpc.HTTPRequest{
		Method: http.MethodPost,
		Url:    "/prometheus/api/v1/query",
		Body:   []byte("query=sum%28up%29&time=1700000000"),
		Headers: []*httpgrpc.Header{
			{Key: "Content-Type", Values: []string{"application/x-www-form-urlencoded"}},
			{Key: tenant.HeaderName, Values: []string{"tenant-b"}},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := dial("ruler", tenant.ClientInterceptors()...).Handle(tenant.Inject(ctx, "tenant-a"), query)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"status":"success","data":{"tenant":"tenant-a","path":"/prometheus/api/v1/query","query":"sum(up)"}}`; resp.Code != 200 || string(resp.Body) != want {
		t.Fatalf("got %d %s, want 200 %s", resp.Code, resp.Body, want)
	}

	_, err = dial("app-b", tenant.ClientInterceptors()...).Handle(tenant.Inject(ctx, "tenant-a"), query)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "-auth.client-tenants-file") {
		t.Fatalf("app-b asking for tenant-a: %v", err)
	}

	// Without the tenant interceptors, the call carries no tenant.
	resp, err = dial("ruler").Handle(ctx, query)
	if err != nil || resp.Code != http.StatusUnauthorized {
		t.Fatalf("a call naming no tenant: %v %v", resp, err)
	}
}
