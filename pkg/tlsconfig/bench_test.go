package tlsconfig

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/cortex-tls/cortex/pkg/certgen"
)

// BenchmarkMutualTLSRequest compares an HTTPS request with mutual TLS over
// a kept-alive connection, as every link between components makes them,
// with the same request paying a fresh handshake each time, and with
// plaintext.
func BenchmarkMutualTLSRequest(b *testing.B) {
	dir := b.TempDir()
	ca, err := certgen.NewCA(certgen.Options{CommonName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	write := func(name string, p *certgen.Pair) (string, string) {
		crt, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if err := os.WriteFile(crt, p.CertPEM, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(key, p.KeyPEM, 0o600); err != nil {
			b.Fatal(err)
		}
		return crt, key
	}
	leaf := func(cn string) *certgen.Pair {
		p, err := ca.Issue(certgen.Options{CommonName: cn, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	caPath, _ := write("root", ca)
	srvCrt, srvKey := write("server", leaf("server"))
	cliCrt, cliKey := write("client", leaf("client"))
	loader := NewLoader(slog.New(slog.DiscardHandler), nil)
	srv, err := NewServer("http", "server.http", ServerConfig{CertPath: srvCrt, KeyPath: srvKey, CAPath: caPath, ClientAuth: "RequireAndVerifyClientCert"}, ServerOptions{}, loader)
	if err != nil {
		b.Fatal(err)
	}
	cli, err := NewClient("bench", ClientConfig{CertPath: cliCrt, KeyPath: cliKey, CAPath: caPath, MinVersion: "VersionTLS12"}, loader)
	if err != nil {
		b.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	serve := func(l net.Listener) string {
		hs := &http.Server{Handler: handler}
		go func() { _ = hs.Serve(l) }()
		b.Cleanup(func() { _ = hs.Close() })
		return l.Addr().String()
	}
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	tlsAddr := serve(srv.Listener(listen(), []string{"http/1.1"}))
	plainAddr := serve(listen())

	run := func(b *testing.B, client *http.Client, url string) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("reused-connection", func(b *testing.B) {
		run(b, &http.Client{Transport: cli.HTTPTransport()}, "https://"+tlsAddr+"/")
	})
	b.Run("fresh-handshake", func(b *testing.B) {
		t := cli.HTTPTransport()
		t.DisableKeepAlives = true
		cli.cache = nil // no session resumption either: a full handshake each time
		run(b, &http.Client{Transport: t}, "https://"+tlsAddr+"/")
	})
	b.Run("plaintext", func(b *testing.B) {
		run(b, &http.Client{Transport: (*Client)(nil).HTTPTransport()}, "http://"+plainAddr+"/")
	})
}
