package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// A TLS 1.3 server refuses a client certificate after the client's side
// of the handshake is done, as etcd does: the client learns it when a write
// fails on the closed connection, and the error names the certificate's
// flag from the alert the server sent, not "broken pipe".
func TestClientWriteAfterRefusedCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, foreign := testkit.NewCA(t, "root"), testkit.NewCA(t, "foreign")
	caPath, _ := testkit.WritePair(t, dir, "root", ca)
	certPath, keyPath := testkit.WritePair(t, dir, "client", testkit.ClientLeaf(t, foreign, "client"))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	serverCert := testkit.ServerLeaf(t, ca, "server").TLSCertificate()

	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake() // sends the alert, then the connection is closed
				_ = c.Close()
			}()
		}
	}()

	client, err := NewClient("test.client", ClientConfig{CertPath: certPath, KeyPath: keyPath, CAPath: caPath, CommonNameFallback: true}, NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := client.DialContext(ctx, "tcp", lis.Addr().String(), nil)
	if err != nil {
		t.Fatalf("the client's side of a TLS 1.3 handshake failed: %v", err)
	}
	defer conn.Close()
	// Write until the refusal arrives: the first writes may be buffered
	// before the server has closed.
	var werr error
	testkit.Eventually(t, 10*time.Second, "a write to fail", func() bool {
		_, werr = conn.Write(make([]byte, 1024))
		return werr != nil
	})
	if _, ok := werr.(*ClientError); !ok {
		t.Fatalf("write error %T %q, want the server's alert explained", werr, werr)
	}
	mustContain(t, "write error", werr.Error(), "-test.client: server at "+lis.Addr().String(), "the client certificate -test.client.tls-cert-path="+certPath)
}
