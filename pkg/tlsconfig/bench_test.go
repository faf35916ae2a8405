package tlsconfig

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// BenchmarkMutualTLSRequest compares an HTTPS request with mutual TLS over
// a kept-alive connection, as every link between components makes them,
// with the same request paying a fresh handshake each time, and with
// plaintext.
func BenchmarkMutualTLSRequest(b *testing.B) {
	p := testkit.NewPKI(b, "bench")
	srvCrt, srvKey := p.Server(b, "server").Files()
	cliCrt, cliKey := p.Server(b, "client").Files()
	caPath := p.CAPath
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
	tlsAddr := serve(srv.Listener(testkit.Listen(b), []string{"http/1.1"}))
	plainAddr := serve(testkit.Listen(b))

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
