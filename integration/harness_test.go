// Package integration starts the real cortex binary with real certificates
// and talks to it over loopback. Every process binds ports the kernel
// chooses and tells them in its log, so tests run in parallel.
package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// certDir writes a CA (root.crt, root.key), a server and a client
// certificate, both valid on loopback (a member serves gossip with the
// client one), and a stranger: a client certificate of a foreign CA.
func certDir(t *testing.T) string {
	t.Helper()
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	testkit.WritePair(t, p.Dir, "stranger", testkit.ClientLeaf(t, testkit.NewCA(t, "foreign"), "client"))
	return p.Dir
}

// tenantACerts issues certDir's server and client certificates and one
// for the identity tenant-a, and writes an -auth.client-tenants-file giving
// client every tenant and tenant-a the tenants listed (YAML flow items).
func tenantACerts(t *testing.T, tenantATenants string) (certs, clientTenantsFile string) {
	t.Helper()
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "tenant-a", certgen.Options{DNSNames: []string{"localhost"}})
	clientTenantsFile = filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(clientTenantsFile, []byte("clients:\n  client: ['*']\n  tenant-a: ["+tenantATenants+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p.Dir, clientTenantsFile
}

func mtlsFlags(dir string) []string {
	var flags []string
	for _, srv := range []string{"http", "grpc"} {
		flags = append(flags,
			"-server."+srv+"-tls-cert-path="+filepath.Join(dir, "server.crt"),
			"-server."+srv+"-tls-key-path="+filepath.Join(dir, "server.key"),
			"-server."+srv+"-tls-client-auth=RequireAndVerifyClientCert",
			"-server."+srv+"-tls-ca-path="+filepath.Join(dir, "root.crt"))
	}
	return flags
}

// ingesterClientFlags are the -ingester.client.tls-* flags of a client
// presenting the client certificate.
func ingesterClientFlags(dir string) []string {
	return []string{
		"-ingester.client.tls-cert-path=" + filepath.Join(dir, "client.crt"),
		"-ingester.client.tls-key-path=" + filepath.Join(dir, "client.key"),
		"-ingester.client.tls-ca-path=" + filepath.Join(dir, "root.crt"),
	}
}

func clientConfig(dir, leaf string) tlsconfig.ClientConfig {
	return tlsconfig.ClientConfig{
		CertPath: filepath.Join(dir, leaf+".crt"),
		KeyPath:  filepath.Join(dir, leaf+".key"),
		CAPath:   filepath.Join(dir, "root.crt"),
	}
}

// tlsClient builds a client of the project's own TLS package, as a
// component would, from a prefix-style config.
func tlsClient(t *testing.T, cfg tlsconfig.ClientConfig) *tlsconfig.Client {
	t.Helper()
	cfg.CommonNameFallback = true
	if cfg.MinVersion == "" {
		cfg.MinVersion = "VersionTLS12"
	}
	c, err := tlsconfig.NewClient("test.client", cfg, tlsconfig.NewLoader(discard(), nil))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func httpClient(c *tlsconfig.Client) *http.Client {
	return &http.Client{Transport: c.HTTPTransport(), Timeout: 10 * time.Second}
}

// waitReady waits until p's /ready answers 200 to client.
func waitReady(p *testkit.Cortex, client *http.Client) {
	p.WaitReady(client, "https://"+p.HTTPAddr+"/ready")
}

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// do sends a request as tenantID (none when empty) with a JSON body: a
// string is sent as it is ("" for none), any other non-nil value marshalled.
func do(t *testing.T, c *http.Client, method, url, tenantID string, body any) (int, string) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if tenantID != "" {
		req.Header.Set("X-Scope-OrgID", tenantID)
	}
	if len(raw) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tryGet is get for polling: an error is an answer, not a failure.
func tryGet(client *http.Client, u string) (int, string) {
	resp, err := client.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// metricOf returns the value of the first sample of p's /metrics whose
// line starts with prefix, or 0.
func metricOf(t *testing.T, client *http.Client, p *testkit.Cortex, prefix string) float64 {
	t.Helper()
	_, body := get(t, client, "https://"+p.HTTPAddr+"/metrics")
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, prefix)), 64)
			return v
		}
	}
	return 0
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func itoa(i int) string { return strconv.Itoa(i) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// readGuide returns the user's guide: the shared specification beside the
// checkout, or the copy in testdata when the checkout stands alone.
func readGuide(t *testing.T) []byte {
	t.Helper()
	for _, path := range []string{"../../shared/spec/tls-guide.txt", "testdata/tls-guide.txt"} {
		if b, err := os.ReadFile(path); err == nil {
			return b
		}
	}
	t.Fatal("the TLS guide is in neither ../../shared/spec nor testdata")
	return nil
}
