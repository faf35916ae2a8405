package tlsconfig

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// guideScript is the certificate script of the TLS guide
// (spec/tls-guide.txt), copied verbatim.
const guideScript = `
# Refer: github.com/cortexproject/cortex/integration/certs/genCerts.sh

# keys
openssl genrsa -out root.key
openssl genrsa -out client.key
openssl genrsa -out server.key

# root cert / certifying authority
openssl req -x509 -new -nodes -key root.key -subj "/C=US/ST=KY/O=Org/CN=root" -sha256 -days 100000 -out root.crt

# csrs - certificate signing requests
openssl req -new -sha256 -key client.key -subj "/C=US/ST=KY/O=Org/CN=client" -out client.csr
openssl req -new -sha256 -key server.key -subj "/C=US/ST=KY/O=Org/CN=localhost" -out server.csr

# certificates
openssl x509 -req -in client.csr -CA root.crt -CAkey root.key -CAcreateserial -out client.crt -days 100000 -sha256
openssl x509 -req -in server.csr -CA root.crt -CAkey root.key -CAcreateserial -out server.crt -days 100000 -sha256
`

// runGuideScript runs every command of the guide's script in a new
// directory, each as written, and returns the directory.
func runGuideScript(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not in PATH; the guide's script needs it")
	}
	dir := t.TempDir()
	for _, line := range strings.Split(guideScript, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
	}
	return dir
}

// TestGuideVerbatim follows spec/tls-guide.txt exactly: its openssl
// certificates (no subjectAltName) on both servers with
// RequireAndVerifyClientCert, and its client flags.
func TestGuideVerbatim(t *testing.T) {
	dir := runGuideScript(t)
	p := func(name string) string { return filepath.Join(dir, name) }

	srvEnv := newTestEnv(t)
	addrs := map[string]string{}
	for _, name := range []string{"http", "grpc"} {
		srv, err := NewServer(name, "server."+name, ServerConfig{
			CertPath:   p("server.crt"),
			KeyPath:    p("server.key"),
			ClientAuth: "RequireAndVerifyClientCert",
			CAPath:     p("root.crt"),
		}, ServerOptions{}, srvEnv.loader)
		if err != nil {
			t.Fatalf("NewServer(%s) with the guide's files: %v", name, err)
		}
		if name == "http" {
			addrs[name] = startHTTPServer(t, srv)
		} else {
			addrs[name] = startGRPCServer(t, srv)
		}
	}
	// The server warns that its certificate has no subjectAltName.
	mustContain(t, "server log", srvEnv.logs.String(), "-server.grpc-tls-cert-path="+p("server.crt")+" has no subjectAltName", "cortex certs generate")

	guideClient := func(t *testing.T, cfg ClientConfig) (*Client, *testEnv) {
		t.Helper()
		cfg.CertPath, cfg.KeyPath, cfg.CAPath = p("client.crt"), p("client.key"), p("root.crt")
		env := newTestEnv(t)
		c, err := NewClient("querier.frontend-client", cfg, env.loader)
		if err != nil {
			t.Fatalf("NewClient with the guide's files: %v", err)
		}
		return c, env
	}
	clientSerial := func(t *testing.T) string {
		pair, err := certgen.LoadPair(p("client.crt"), p("client.key"))
		if err != nil {
			t.Fatal(err)
		}
		return serialOf(pair.Cert)
	}(t)

	// host replaces 127.0.0.1 in an address.
	withHost := func(addr, host string) string { return strings.Replace(addr, "127.0.0.1", host, 1) }

	t.Run("common name fallback", func(t *testing.T) {
		client, env := guideClient(t, ClientConfig{CommonNameFallback: true}) // the flag's default
		for _, host := range []string{"127.0.0.1", "localhost"} {
			if seen, err := httpGet(client, withHost(addrs["http"], host)); err != nil || seen != clientSerial {
				t.Errorf("HTTP to %s: server saw %q, err %v; want the guide's client certificate %s", host, seen, err, clientSerial)
			}
			if seen, err := grpcCheck(client, withHost(addrs["grpc"], host)); err != nil || seen != clientSerial {
				t.Errorf("gRPC to %s: server saw %q, err %v; want the guide's client certificate %s", host, seen, err, clientSerial)
			}
		}
		logs := env.logs.String()
		mustContain(t, "client log", logs, "level=WARN", `server \"127.0.0.1\" presented a certificate without subjectAltName (CN=\"localhost\")`,
			`server \"localhost\"`, "legacy Common Name fallback", "-querier.frontend-client.tls-common-name-fallback=false")
		// Once per server name and certificate, not once per connection.
		if n := strings.Count(logs, "legacy Common Name fallback"); n != 2 {
			t.Errorf("fallback warning logged %d times, want 2 (once per name):\n%s", n, logs)
		}
	})

	t.Run("fallback off", func(t *testing.T) {
		client, _ := guideClient(t, ClientConfig{CommonNameFallback: false})
		_, err := httpGet(client, addrs["http"])
		if err == nil {
			t.Fatal("HTTP: a certificate without subjectAltName was accepted with the fallback off")
		}
		mustContain(t, "HTTP error", err.Error(), "has no subjectAltName", `Common Name "localhost" does not match "127.0.0.1"`, "-querier.frontend-client.tls-common-name-fallback=true")
		_, err = grpcCheck(client, withHost(addrs["grpc"], "localhost"))
		if err == nil {
			t.Fatal("gRPC: a certificate without subjectAltName was accepted with the fallback off")
		}
		mustContain(t, "gRPC error", err.Error(), "subjectAltName", "tls-common-name-fallback")
	})

	t.Run("other name refused", func(t *testing.T) {
		client, _ := guideClient(t, ClientConfig{CommonNameFallback: true, ServerName: "example.com"})
		_, err := httpGet(client, addrs["http"])
		if err == nil {
			t.Fatal("HTTP: CN=localhost accepted for example.com")
		}
		mustContain(t, "HTTP error", err.Error(), `Common Name "localhost" does not match "example.com"`)
		if _, err := grpcCheck(client, addrs["grpc"]); err == nil {
			t.Fatal("gRPC: CN=localhost accepted for example.com")
		}
	})
}

// TestNoFallbackWithSANs checks that a certificate with a subjectAltName
// extension is never matched by its Common Name, whatever the fallback flag.
func TestNoFallbackWithSANs(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, "ca")
	caPath := testkit.WriteBundle(t, dir, "ca.crt", ca)
	cert, key := testkit.WritePair(t, dir, "server", testkit.Issue(t, ca, certgen.Options{CommonName: "localhost", DNSNames: []string{"other.example"}}))
	srv, err := NewServer("http", "server.http", ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{}, newTestEnv(t).loader)
	if err != nil {
		t.Fatal(err)
	}
	addr := startHTTPServer(t, srv)
	env := newTestEnv(t)
	client, err := NewClient("test.client", ClientConfig{CAPath: caPath, CommonNameFallback: true}, env.loader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = httpGet(client, strings.Replace(addr, "127.0.0.1", "localhost", 1))
	if err == nil {
		t.Fatal("a certificate with SANs was matched by its Common Name")
	}
	mustContain(t, "error", err.Error(), `server certificate is valid for other.example, not "localhost"`, "-test.client.tls-server-name")
	if strings.Contains(env.logs.String(), "fallback") {
		t.Errorf("fallback warning logged for a certificate with SANs:\n%s", env.logs.String())
	}
}
