package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestSessionResumption checks that a server without client certificate
// verification lets clients resume sessions (cheaper reconnects), and that a
// server verifying client certificates never does, so a CA dropped from its
// bundle takes effect on the next connection.
func TestSessionResumption(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mutual     bool
		wantResume bool
	}{
		{"server-only TLS resumes", false, true},
		{"mutual TLS never resumes", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			dir := t.TempDir()
			ca := testkit.NewCA(t, "root")
			certPath, keyPath := testkit.WritePair(t, dir, "server", testkit.ServerLeaf(t, ca, "server"))
			clientCert, clientKey := testkit.WritePair(t, dir, "client", testkit.ClientLeaf(t, ca, "client"))
			caPath := testkit.WriteBundle(t, dir, "root.crt", ca)
			cfg := ServerConfig{CertPath: certPath, KeyPath: keyPath}
			if tc.mutual {
				cfg.CAPath = caPath
			}
			srv, err := NewServer("http", "server.http", cfg, ServerOptions{}, env.loader)
			if err != nil {
				t.Fatal(err)
			}
			addr := startHTTPServer(t, srv)

			pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.Cert)
			clientCfg := &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{pair},
				ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			var resumed []bool
			for range 3 {
				conn, err := tls.Dial("tcp", addr, clientCfg)
				if err != nil {
					t.Fatal(err)
				}
				// TLS 1.3 tickets arrive after the handshake: read to receive them.
				_, _ = conn.Write([]byte("GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
				buf := make([]byte, 512)
				_, _ = conn.Read(buf)
				resumed = append(resumed, conn.ConnectionState().DidResume)
				conn.Close()
			}
			if resumed[0] {
				t.Fatal("first connection claims to resume")
			}
			if resumed[2] != tc.wantResume {
				t.Fatalf("third connection resumed=%v, want %v", resumed[2], tc.wantResume)
			}
		})
	}
}
