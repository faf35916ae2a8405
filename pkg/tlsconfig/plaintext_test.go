package tlsconfig

import (
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// tlsServerAndClient returns a TLS server (mutual TLS) and a client it trusts.
func tlsServerAndClient(t *testing.T, name string) (*testEnv, *Server, *Client) {
	t.Helper()
	dir := t.TempDir()
	ca := testkit.NewCA(t, "ca")
	caPath := testkit.WriteBundle(t, dir, "ca.crt", ca)
	sc, sk := testkit.WritePair(t, dir, "server", testkit.ServerLeaf(t, ca, "server"))
	cc, ck := testkit.WritePair(t, dir, "client", testkit.ClientLeaf(t, ca, "distributor"))
	env := newTestEnv(t)
	srv, err := NewServer(name, "server."+name, ServerConfig{CertPath: sc, KeyPath: sk, CAPath: caPath}, ServerOptions{}, env.loader)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient("test.client", ClientConfig{CertPath: cc, KeyPath: ck, CAPath: caPath}, newTestEnv(t).loader)
	if err != nil {
		t.Fatal(err)
	}
	return env, srv, client
}

func TestPlaintextHTTPClientToTLSServer(t *testing.T) {
	env, srv, client := tlsServerAndClient(t, "http")
	addr := startHTTPServer(t, srv)

	// Sanity: the TLS client is served.
	if _, err := httpGet(client, addr); err != nil {
		t.Fatalf("TLS client refused: %v", err)
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: waitTimeout}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("plaintext request got no answer, want 400: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400", resp.StatusCode)
	}
	mustContain(t, "response body", string(body), "Client sent an HTTP request to an HTTPS server")

	testkit.Eventually(t, waitTimeout, "the plaintext failure", func() bool { return handshakeFailures(t, env.reg, "http")["plaintext"] == 1 })
	if f := handshakeFailures(t, env.reg, "http"); len(f) != 1 {
		t.Errorf("handshake failures = %v, want only plaintext=1", f)
	}
	testkit.Eventually(t, waitTimeout, "the log line", func() bool { return containsAll(env.logs.String(), "reason=plaintext") })
	mustContain(t, "server log", env.logs.String(), "plaintext HTTP request to this TLS port; use https://", "server=http")
}

func TestPlaintextGRPCClientToTLSServer(t *testing.T) {
	env, srv, client := tlsServerAndClient(t, "grpc")
	addr := startGRPCServer(t, srv)

	if _, err := grpcCheck(client, addr); err != nil {
		t.Fatalf("TLS client refused: %v", err)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = grpcCheckWith(conn)
	// The call fails at once (not at its deadline), saying why.
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext gRPC call: err = %v, want code Unavailable", err)
	}
	mustContain(t, "client error", status.Convert(err).Message(), "this port requires TLS", "tls-* flags")
	testkit.Eventually(t, waitTimeout, "the plaintext failure", func() bool { return handshakeFailures(t, env.reg, "grpc")["plaintext"] == 1 })
	if f := handshakeFailures(t, env.reg, "grpc"); len(f) != 1 || f["plaintext"] != 1 {
		t.Errorf("handshake failures = %v, want only plaintext=1", f)
	}
	testkit.Eventually(t, waitTimeout, "the log line", func() bool { return containsAll(env.logs.String(), "reason=plaintext") })
	mustContain(t, "server log", env.logs.String(), "plaintext HTTP/2 (likely a gRPC client without TLS)", "tls-* flags")
}

func TestTLSClientToPlaintextServer(t *testing.T) {
	_, _, client := tlsServerAndClient(t, "http")

	t.Run("http", func(t *testing.T) {
		addr := startHTTPServer(t, nil)
		_, err := httpGet(client, addr)
		if err == nil {
			t.Fatal("TLS request to a plaintext server succeeded")
		}
		mustContain(t, "client error", err.Error(), "-test.client: server at "+addr+" does not speak TLS", "-server.*-tls-cert-path")
	})
	t.Run("grpc", func(t *testing.T) {
		addr := startGRPCServer(t, nil)
		_, err := grpcCheck(client, addr)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want code Unavailable", err)
		}
		mustContain(t, "client error", err.Error(), "-test.client: server at "+addr+" does not speak TLS")
	})
}
