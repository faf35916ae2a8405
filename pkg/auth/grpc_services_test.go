package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// A service guarded by AllTenantsGRPCServices (channelz) answers only
// identities given "*" in -auth.client-tenants-file; other services and a
// process without the file are untouched.
func TestAllTenantsGRPCServices(t *testing.T) {
	a, _ := newAuthorizer(t, allowYAML, false)
	unary := func(a *Authorizer, identity *x509.Certificate, method string) error {
		ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{identity}}}})
		called := false
		_, err := a.guardedUnary([]string{"grpc.channelz.v1.Channelz"})(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
			called = true
			return nil, nil
		})
		if err == nil && !called {
			t.Fatal("handler not called")
		}
		return err
	}
	const channelz = "/grpc.channelz.v1.Channelz/GetServers"
	if err := unary(a, cert("x", "spiffe://cluster/querier"), channelz); err != nil {
		t.Fatalf("an every-tenant identity: %v", err)
	}
	err := unary(a, cert("grafana"), channelz)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `client "grafana" may not call /grpc.channelz.v1.Channelz/GetServers`) {
		t.Fatalf("a tenant's identity: %v", err)
	}
	if err := unary(a, cert("grafana"), "/grpc.health.v1.Health/Check"); err != nil {
		t.Fatalf("another service: %v", err)
	}
	open, err := New(Config{}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := unary(open, cert("grafana"), channelz); err != nil {
		t.Fatalf("without -auth.client-tenants-file: %v", err)
	}
}
