package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func parse(t *testing.T, args ...string) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlagsWithPrefix("ruler-storage.", fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFlagsAndValidate(t *testing.T) {
	c := parse(t)
	if c.Timeout != 5*time.Second || c.TLSPrefix() != "ruler-storage.configs" {
		t.Errorf("defaults: timeout %s, TLS prefix %q", c.Timeout, c.TLSPrefix())
	}
	if err := c.Validate(false); err != nil {
		t.Errorf("no URL, not required: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-ruler-storage.configs.url must be set"},
		{[]string{"-ruler-storage.configs.url=configs:80"}, `-ruler-storage.configs.url="configs:80": want http(s)://host:port`},
		{[]string{"-ruler-storage.configs.url=ftp://configs"}, `-ruler-storage.configs.url="ftp://configs": want http(s)://host:port`},
		{[]string{"-ruler-storage.configs.url=http://configs:80", "-ruler-storage.configs.tls-ca-path=/ca.crt"}, "-ruler-storage.configs.url=http://configs:80 is plain http:// but -ruler-storage.configs.tls-* flags are set: use https://"},
		{[]string{"-ruler-storage.configs.url=https://configs:80", "-ruler-storage.configs.client-timeout=0s"}, "-ruler-storage.configs.client-timeout=0s must be positive"},
	} {
		c := parse(t, tc.args...)
		if err := c.Validate(true); err == nil || err.Error() != tc.want {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// server is a TLS server of pki's requiring a client certificate of pki.
func server(t *testing.T, pki *testkit.PKI, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	leaf := pki.Server(t, "configs")
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA.Cert)
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests expect
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func TestGetSinceMutualTLS(t *testing.T) {
	pki := testkit.NewPKI(t, "configs CA")
	cl := pki.Client(t, "ruler")
	var gotQuery string
	s := server(t, pki, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != RulesPath {
			http.Error(w, "no route "+r.URL.Path, http.StatusNotFound)
			return
		}
		gotQuery = r.URL.RawQuery
		_, _ = io.WriteString(w, `{"configs":{"a":{"id":7,"config":{"rules_files":{"f.yaml":"groups: []\n"},"rule_format_version":"2"}},"b":{"id":3,"config":null,"deleted_at":"2026-01-02T03:04:05Z"}}}`)
	})
	c := parse(t, "-ruler-storage.configs.url="+s.URL, "-ruler-storage.configs.tls-ca-path="+pki.CAPath,
		"-ruler-storage.configs.tls-cert-path="+cl.CertPath, "-ruler-storage.configs.tls-key-path="+cl.KeyPath)
	client, err := NewFromConfig(c, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	// Two clients of one process share the histogram.
	reg := prometheus.NewPedanticRegistry()
	other := New(nil, time.Second, nil)
	if err := other.Instrument(reg); err != nil {
		t.Fatal(err)
	}
	if err := client.Instrument(reg); err != nil {
		t.Fatal(err)
	}
	var out Response[RulesConfig]
	if err := client.GetSince(context.Background(), RulesPath, 5, &out); err != nil {
		t.Fatal(err)
	}
	if gotQuery != "since=5" {
		t.Errorf("query %q, want since=5", gotQuery)
	}
	a, b := out.Configs["a"], out.Configs["b"]
	if a.ID != 7 || a.Config == nil || a.Config.RulesFiles["f.yaml"] != "groups: []\n" || a.Config.RuleFormatVersion != "2" || a.DeletedAt != "" {
		t.Errorf("tenant a: %+v", a)
	}
	if b.ID != 3 || b.Config != nil || b.DeletedAt != "2026-01-02T03:04:05Z" {
		t.Errorf("tenant b: %+v", b)
	}

	// A non-200 answer is quoted; the path is the service's.
	err = client.GetSince(context.Background(), AlertmanagerPath, 0, &out)
	if err == nil || err.Error() != "configs service answered 404 Not Found: no route "+AlertmanagerPath {
		t.Errorf("404: %v", err)
	}
	if got := requestCounts(t, reg); got != "GET 200: 1, GET 404: 1" {
		t.Errorf("cortex_configs_request_duration_seconds counts %q, want one 200 and one 404", got)
	}
}

func TestForeignCAAndMissingFiles(t *testing.T) {
	pki := testkit.NewPKI(t, "configs CA")
	foreign := testkit.NewPKI(t, "some other CA")
	cl := pki.Client(t, "ruler")
	s := server(t, pki, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"configs":{}}`) })
	c := parse(t, "-ruler-storage.configs.url="+s.URL, "-ruler-storage.configs.tls-ca-path="+foreign.CAPath,
		"-ruler-storage.configs.tls-cert-path="+cl.CertPath, "-ruler-storage.configs.tls-key-path="+cl.KeyPath)
	client, err := NewFromConfig(c, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	var out Response[RulesConfig]
	err = client.GetSince(context.Background(), RulesPath, 0, &out)
	if err == nil || !strings.Contains(err.Error(), "is not signed by a CA in -ruler-storage.configs.tls-ca-path="+foreign.CAPath) {
		t.Errorf("server of a foreign CA: %v; want the refusal naming -ruler-storage.configs.tls-ca-path", err)
	}

	missing := filepath.Join(t.TempDir(), "missing.crt")
	c.TLS.CAPath = missing
	if _, err := NewFromConfig(c, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil)); err == nil || !strings.Contains(err.Error(), "-ruler-storage.configs.tls-ca-path") || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing CA file: %v; want an error naming the flag and the path", err)
	}
}

// TestServerNameAndSkipVerify uses a server certificate valid only for
// configs.internal, dialled at 127.0.0.1.
func TestServerNameAndSkipVerify(t *testing.T) {
	pki := testkit.NewPKI(t, "configs CA")
	cl := pki.Client(t, "ruler")
	leaf := pki.Issue(t, "configs", certgen.Options{DNSNames: []string{"configs.internal"}})
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"configs":{}}`) }))
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	defer s.Close()

	get := func(extra ...string) error {
		c := parse(t, append([]string{"-ruler-storage.configs.url=" + s.URL, "-ruler-storage.configs.tls-ca-path=" + pki.CAPath,
			"-ruler-storage.configs.tls-cert-path=" + cl.CertPath, "-ruler-storage.configs.tls-key-path=" + cl.KeyPath}, extra...)...)
		client, err := NewFromConfig(c, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
		if err != nil {
			t.Fatal(err)
		}
		defer client.CloseIdleConnections()
		var out Response[RulesConfig]
		return client.GetSince(context.Background(), RulesPath, 0, &out)
	}
	if err := get(); err == nil || !strings.Contains(err.Error(), `server certificate is valid for configs.internal, not "127.0.0.1"; dial one of those names or set -ruler-storage.configs.tls-server-name`) {
		t.Errorf("without a server name: %v", err)
	}
	if err := get("-ruler-storage.configs.tls-server-name=configs.internal"); err != nil {
		t.Errorf("-ruler-storage.configs.tls-server-name=configs.internal: %v", err)
	}
	if err := get("-ruler-storage.configs.tls-insecure-skip-verify"); err != nil {
		t.Errorf("-ruler-storage.configs.tls-insecure-skip-verify: %v", err)
	}
}

// requestCounts lists the requests counted by
// cortex_configs_request_duration_seconds, by operation and status code.
func requestCounts(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "cortex_configs_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out = append(out, fmt.Sprintf("%s %s: %d", l["operation"], l["status_code"], m.GetHistogram().GetSampleCount()))
		}
	}
	return strings.Join(out, ", ")
}
