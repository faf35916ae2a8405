package tlsconfig

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func expirySeries(flag, path string, c *certgen.Pair) string {
	return fmt.Sprintf("cortex_tls_certificate_expiry_timestamp_seconds{flag=%q,path=%q,serial=%q,subject=%q} %d\n",
		flag, path, serialOf(c.Cert), c.Cert.Subject.String(), c.Cert.NotAfter.Unix())
}

const expiryHeader = `# HELP cortex_tls_certificate_expiry_timestamp_seconds Time at which a loaded TLS certificate expires, by the flag and file it came from.
# TYPE cortex_tls_certificate_expiry_timestamp_seconds gauge
`

func TestExpiryMetric(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := testkit.NewCA(t, "ca one"), testkit.NewCA(t, "ca two")
	leaf := testkit.ServerLeaf(t, ca1, "server")
	cert, key := testkit.WritePair(t, dir, "server", leaf)
	bundle := testkit.WriteBundle(t, dir, "ca.crt", ca1, ca2)
	env := newTestEnv(t)
	if _, err := NewServer("grpc", "server.grpc", ServerConfig{CertPath: cert, KeyPath: key, CAPath: bundle}, ServerOptions{}, env.loader); err != nil {
		t.Fatal(err)
	}

	want := expiryHeader +
		expirySeries("server.grpc-tls-cert-path", cert, leaf) +
		expirySeries("server.grpc-tls-ca-path", bundle, ca1) +
		expirySeries("server.grpc-tls-ca-path", bundle, ca2)
	if err := testutil.GatherAndCompare(env.reg, strings.NewReader(want), "cortex_tls_certificate_expiry_timestamp_seconds"); err != nil {
		t.Error(err)
	}

	// ca one leaves the bundle: its series goes with it.
	testkit.WriteBundle(t, dir, "ca.crt", ca2)
	env.loader.Reload()
	want = expiryHeader +
		expirySeries("server.grpc-tls-cert-path", cert, leaf) +
		expirySeries("server.grpc-tls-ca-path", bundle, ca2)
	if err := testutil.GatherAndCompare(env.reg, strings.NewReader(want), "cortex_tls_certificate_expiry_timestamp_seconds"); err != nil {
		t.Error(err)
	}

	// A new leaf replaces the old one's series.
	next := testkit.ServerLeaf(t, ca2, "server")
	testkit.WritePair(t, dir, "server", next)
	env.loader.Reload()
	want = expiryHeader +
		expirySeries("server.grpc-tls-cert-path", cert, next) +
		expirySeries("server.grpc-tls-ca-path", bundle, ca2)
	if err := testutil.GatherAndCompare(env.reg, strings.NewReader(want), "cortex_tls_certificate_expiry_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

// TestHandshakesPerConnection checks that clients reuse connections: many
// requests, one handshake.
func TestHandshakesPerConnection(t *testing.T) {
	const requests = 50
	m := newMTLS(t)
	srvEnv, cliEnv := newTestEnv(t), newTestEnv(t)
	httpAddr := startHTTPServer(t, m.newServer(t, srvEnv, "http"))
	grpcAddr := startGRPCServer(t, m.newServer(t, srvEnv, "grpc"))
	newClient := func(prefix string) *Client {
		c, err := NewClient(prefix, ClientConfig{CertPath: m.clientCert, KeyPath: m.clientKey, CAPath: m.caPath}, cliEnv.loader)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	httpClient, grpcClient := newClient("alertmanager.configs"), newClient("ingester.client")

	tr := httpClient.HTTPTransport()
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: waitTimeout}
	for i := 0; i < requests; i++ {
		if _, err := httpGetWith(hc, httpAddr); err != nil {
			t.Fatalf("HTTP request %d: %v", i, err)
		}
	}
	conn, err := grpc.NewClient(grpcAddr, grpcClient.GRPCDialOption())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < requests; i++ {
		if _, err := grpcCheckWith(conn); err != nil {
			t.Fatalf("gRPC call %d: %v", i, err)
		}
	}

	const wantClient = `# HELP cortex_tls_client_handshakes_total TLS handshakes made by a client, by its flag prefix. One per connection, not per request.
# TYPE cortex_tls_client_handshakes_total counter
cortex_tls_client_handshakes_total{client="alertmanager.configs",result="failure"} 0
cortex_tls_client_handshakes_total{client="alertmanager.configs",result="success"} 1
cortex_tls_client_handshakes_total{client="ingester.client",result="failure"} 0
cortex_tls_client_handshakes_total{client="ingester.client",result="success"} 1
`
	if err := testutil.GatherAndCompare(cliEnv.reg, strings.NewReader(wantClient), "cortex_tls_client_handshakes_total"); err != nil {
		t.Error(err)
	}
	const wantServer = `# HELP cortex_tls_server_handshakes_total Successful TLS handshakes on a server. Compare with request counts to see connection reuse.
# TYPE cortex_tls_server_handshakes_total counter
cortex_tls_server_handshakes_total{server="grpc"} 1
cortex_tls_server_handshakes_total{server="http"} 1
`
	if err := testutil.GatherAndCompare(srvEnv.reg, strings.NewReader(wantServer), "cortex_tls_server_handshakes_total"); err != nil {
		t.Error(err)
	}
}

// TestClientHandshakeFailureCounted checks the failure side of the client counter.
func TestClientHandshakeFailureCounted(t *testing.T) {
	m := newMTLS(t)
	addr := startHTTPServer(t, m.newServer(t, newTestEnv(t), "http"))
	env := newTestEnv(t)
	other := testkit.WriteBundle(t, m.dir, "other-ca.crt", testkit.NewCA(t, "other"))
	c, err := NewClient("test.client", ClientConfig{CertPath: m.clientCert, KeyPath: m.clientKey, CAPath: other}, env.loader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := httpGet(c, addr); err == nil {
		t.Fatal("client accepted a server from a CA it does not trust")
	}
	if got := testutil.ToFloat64(env.loader.Metrics().clientHandshakes.WithLabelValues("test.client", "failure")); got != 1 {
		t.Errorf("failed client handshakes = %v, want 1", got)
	}
	if got := testutil.ToFloat64(env.loader.Metrics().clientHandshakes.WithLabelValues("test.client", "success")); got != 0 {
		t.Errorf("successful client handshakes = %v, want 0", got)
	}
}
