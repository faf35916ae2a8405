package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// grpcHealth makes a health check with c's TLS settings on a new connection.
func grpcHealth(t *testing.T, c *tlsconfig.Client, addr string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	t.Helper()
	return healthCheck(t, addr, c.GRPCDialOption())
}

// healthCheck makes a health check on a new connection dialled with opt.
func healthCheck(t *testing.T, addr string, opt grpc.DialOption) (healthpb.HealthCheckResponse_ServingStatus, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return 0, err
	}
	return resp.Status, nil
}

// probePort returns a loopback port for -server.health-listen-port, which
// cannot be 0 (0 turns the probe listener off) and whose address no log
// line names: a port below Linux's ephemeral range (32768 and up) that was
// free a moment ago, so outgoing connections cannot take it meanwhile.
func probePort(t *testing.T) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12768)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free loopback port found between 20000 and 32767")
	return 0
}

// TestMutualTLSBinary starts the binary with mutual TLS on both servers and
// checks every endpoint, the refusals, the probe listener and SIGTERM.
func TestMutualTLSBinary(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	healthPort := probePort(t)
	p := testkit.StartCortex(t, append(mtlsFlags(dir), "-ingester.min-ready-duration=0s",
		"-server.health-listen-address=127.0.0.1", "-server.health-listen-port="+itoa(healthPort))...)
	client := tlsClient(t, clientConfig(dir, "client"))
	hc := httpClient(client)
	waitReady(p, hc)

	if status, err := grpcHealth(t, client, p.GRPCAddr); err != nil || status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health over mutual TLS: status %v, err %v", status, err)
	}

	code, body := get(t, hc, "https://"+p.HTTPAddr+"/config")
	if code != 200 || !strings.Contains(body, "client_auth_type: RequireAndVerifyClientCert") || !strings.Contains(body, "cert_file: "+filepath.Join(dir, "server.crt")) {
		t.Fatalf("/config: %d\n%s", code, body)
	}
	code, body = get(t, hc, "https://"+p.HTTPAddr+"/metrics")
	for _, want := range []string{
		`cortex_tls_certificate_expiry_timestamp_seconds{flag="server.grpc-tls-cert-path",path="` + filepath.Join(dir, "server.crt") + `"`,
		"go_gc_gogc_percent 75", // -server.gogc's default
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, body)
		}
	}
	// One handshake per connection, not per request: the process's own
	// clients' connections and the test's health check, each once.
	own := metricSum(body, "cortex_tls_client_handshakes_total", `result="success"`)
	if got := metricSum(body, "cortex_tls_server_handshakes_total", `server="grpc"`); own < 1 || got != own+1 {
		t.Fatalf("gRPC server handshakes %v, want the process's own client handshakes (%v) plus the test's one:\n%s", got, own, grepLines(body, "handshakes_total"))
	}

	// No client certificate: refused on both servers, with a reason.
	anon := tlsClient(t, tlsconfig.ClientConfig{CAPath: filepath.Join(dir, "root.crt")})
	if _, err := httpClient(anon).Get("https://" + p.HTTPAddr + "/ready"); err == nil || !strings.Contains(err.Error(), "requires a client certificate") {
		t.Fatalf("HTTP without client certificate: got %v, want a refusal explaining a certificate is required", err)
	}
	if _, err := grpcHealth(t, anon, p.GRPCAddr); err == nil || !strings.Contains(err.Error(), "requires a client certificate") {
		t.Fatalf("gRPC without client certificate: got %v", err)
	}
	// A certificate from a foreign CA: refused.
	stranger := tlsClient(t, clientConfig(dir, "stranger"))
	if _, err := grpcHealth(t, stranger, p.GRPCAddr); err == nil || !strings.Contains(err.Error(), "does not trust") {
		t.Fatalf("gRPC with a foreign certificate: got %v", err)
	}
	p.WaitLog("presented no certificate; this server requires one (-server.grpc-tls-client-auth=RequireAndVerifyClientCert)")
	p.WaitLog(`which no CA in -server.grpc-tls-ca-path=` + filepath.Join(dir, "root.crt") + ` signed`)
	// Plain HTTP to the TLS port gets a readable answer.
	code, body = get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+p.HTTPAddr+"/ready")
	if code != 400 || !strings.Contains(body, "HTTP request to an HTTPS server") {
		t.Fatalf("plain HTTP to the TLS port: %d %q", code, body)
	}

	// A plaintext gRPC client is told the port requires TLS.
	if _, err := healthCheck(t, p.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil || !strings.Contains(err.Error(), "this port requires TLS") {
		t.Fatalf("plaintext gRPC to the TLS port: got %v, want an error saying the port requires TLS", err)
	}

	// The probe listener serves /ready and /healthz without TLS, nothing else.
	plain := &http.Client{Timeout: 5 * time.Second}
	for path, want := range map[string]int{"/ready": 200, "/healthz": 200, "/metrics": 404, "/config": 404} {
		if code, _ := get(t, plain, "http://127.0.0.1:"+itoa(healthPort)+path); code != want {
			t.Errorf("probe listener %s: %d, want %d", path, code, want)
		}
	}

	p.Stop()
	if err := p.ExitErr(); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0", err)
	}
	if !strings.Contains(p.Output(), "cortex stopped") {
		t.Fatalf("no clean shutdown in the log:\n%s", p.Output())
	}
}

// TestGuideVerbatim runs the guide's openssl script exactly as written and
// starts the binary with the guide's server flags.
func TestGuideVerbatim(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed; .ci/run installs it")
	}
	t.Parallel()
	dir := guideCerts(t)
	p := testkit.StartCortex(t, append(mtlsFlags(dir), "-ingester.min-ready-duration=0s")...)
	p.WaitLog("has no subjectAltName")
	for _, addr := range []string{p.HTTPAddr, strings.Replace(p.HTTPAddr, "127.0.0.1", "localhost", 1)} {
		client := tlsClient(t, clientConfig(dir, "client"))
		p.WaitReady(httpClient(client), "https://"+addr+"/ready")
	}
	client := tlsClient(t, clientConfig(dir, "client"))
	if status, err := grpcHealth(t, client, p.GRPCAddr); err != nil || status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health with the guide's certificates: %v %v", status, err)
	}

	// With the fallback off, the guide's server certificate is refused and
	// the error says why and which flag changes it.
	strict := clientConfig(dir, "client")
	strictClient, err := tlsconfig.NewClient("ingester.client", strict, tlsconfig.NewLoader(discard(), nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = grpcHealth(t, strictClient, p.GRPCAddr)
	if err == nil || !strings.Contains(err.Error(), "no subjectAltName") || !strings.Contains(err.Error(), "-ingester.client.tls-common-name-fallback=true") {
		t.Fatalf("strict client with the guide's certificate: %v", err)
	}
}

// guideCerts runs the guide's openssl script, verbatim, once per test run
// (its 4096-bit RSA keys take seconds), and returns the directory. Tests
// only read the files.
func guideCerts(t *testing.T) string {
	t.Helper()
	guideOnce.Do(func() { guideDir, guideErr = runGuideScript(t, testkit.SharedDir(t, "guide-certs")) })
	if guideErr != nil {
		t.Fatal(guideErr)
	}
	return guideDir
}

var (
	guideOnce sync.Once
	guideDir  string
	guideErr  error
)

func runGuideScript(t *testing.T, dir string) (string, error) {
	var script []string
	for _, line := range strings.Split(string(readGuide(t)), "\n") {
		if strings.HasPrefix(line, "openssl ") {
			script = append(script, line)
		}
	}
	if len(script) != 8 {
		return "", fmt.Errorf("found %d openssl commands in the guide, want 8", len(script))
	}
	for _, line := range script {
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %v\n%s", line, err, out)
		}
	}
	return dir, nil
}

// TestGuideCertificatesGossip: two ingesters gossip over mutual TLS with the
// guide's server certificate (CN=localhost, no subjectAltName) and
// -memberlist.tls-server-name=localhost: every member serves and dials with it.
func TestGuideCertificatesGossip(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed; .ci/run installs it")
	}
	t.Parallel()
	dir := guideCerts(t)
	var seed string
	var ingesters []*testkit.Cortex
	for i := range 2 {
		flags := append(mtlsFlags(dir), "-target=ingester", "-ingester.lifecycler.ID=ingester-"+itoa(i),
			"-ingester.lifecycler.addr=127.0.0.1", "-ingester.join-after=0s", "-ingester.min-ready-duration=0s", "-blocks-storage.tsdb.dir="+filepath.Join(t.TempDir(), "tsdb"),
			"-ring.store=memberlist", "-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port=0",
			"-memberlist.tls-cert-path="+filepath.Join(dir, "server.crt"), "-memberlist.tls-key-path="+filepath.Join(dir, "server.key"),
			"-memberlist.tls-ca-path="+filepath.Join(dir, "root.crt"), "-memberlist.tls-server-name=localhost")
		if seed != "" {
			flags = append(flags, "-memberlist.join="+seed)
		}
		p := testkit.StartCortex(t, flags...)
		if seed == "" {
			seed = p.GossipAddr()
		}
		ingesters = append(ingesters, p)
	}
	hc := httpClient(tlsClient(t, clientConfig(dir, "client")))
	ingesters[1].EventuallyNil(30*time.Second, "the two ingesters to see each other", func() error {
		if _, page := tryGet(hc, "https://"+ingesters[1].HTTPAddr+"/memberlist"); strings.Count(page, "\n") != 4 {
			return fmt.Errorf("/memberlist:\n%s", page)
		}
		return nil
	})
}

// TestStartupErrors checks that bad TLS settings stop the binary at once
// with a message naming the flag, the file and the fix.
func TestStartupErrors(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	cases := []struct {
		name  string
		flags []string
		want  []string
	}{
		{"missing certificate", []string{"-server.grpc-tls-cert-path=" + dir + "/nope.crt", "-server.grpc-tls-key-path=" + dir + "/server.key"},
			[]string{"-server.grpc-tls-cert-path=" + dir + "/nope.crt: file does not exist", "cortex certs generate"}},
		{"key does not match", []string{"-server.http-tls-cert-path=" + dir + "/server.crt", "-server.http-tls-key-path=" + dir + "/client.key"},
			[]string{"-server.http-tls-key-path=" + dir + "/client.key: private key does not match the certificate in -server.http-tls-cert-path=" + dir + "/server.crt"}},
		{"swapped", []string{"-server.http-tls-cert-path=" + dir + "/server.key", "-server.http-tls-key-path=" + dir + "/server.crt"},
			[]string{"-server.http-tls-cert-path=" + dir + "/server.key: holds no certificate", "swap"}},
		{"bad client auth", append(mtlsFlags(dir), "-server.http-tls-client-auth=Always"),
			[]string{`-server.http-tls-client-auth="Always" is not a client auth mode; valid values: NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert`}},
		{"verify without CA", []string{"-server.grpc-tls-cert-path=" + dir + "/server.crt", "-server.grpc-tls-key-path=" + dir + "/server.key", "-server.grpc-tls-client-auth=RequireAndVerifyClientCert"},
			[]string{"-server.grpc-tls-client-auth=RequireAndVerifyClientCert verifies client certificates but -server.grpc-tls-ca-path is empty"}},
		{"missing memberlist certificate, without -memberlist.tls-enabled", []string{"-target=ingester", "-ring.store=memberlist", "-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port=0",
			"-memberlist.tls-cert-path=" + dir + "/nope.crt", "-memberlist.tls-key-path=" + dir + "/client.key"},
			[]string{"-memberlist.tls-cert-path=" + dir + "/nope.crt: file does not exist"}},
		{"unknown target", []string{"-target=nonsense"}, []string{`unknown component "nonsense"; valid values: `, "all, compactor, configs, distributor, flusher, ingester, overrides, purger, querier, query-frontend, query-scheduler, ruler, store-gateway"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out := testkit.RunCortex(t, append(testkit.LoopbackFlags(), tc.flags...)...)
			if code != 1 {
				t.Fatalf("exit code %d, want 1; output:\n%s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestConfigFileAndFlags checks that YAML mirrors the flags and that flags
// given on the command line win over the file.
func TestConfigFileAndFlags(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	cfg := `
server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: 0
  log_level: debug
  http_tls_config:
    cert_file: ` + dir + `/server.crt
    key_file: ` + dir + `/server.key
    client_auth_type: RequireAndVerifyClientCert
    client_ca_file: ` + dir + `/root.crt
    allowed_client_names: nobody
`
	file := filepath.Join(t.TempDir(), "cortex.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The file's allow-list would refuse our client; the flag overrides it.
	p := testkit.StartCortexArgs(t, "-config.file="+file, "-server.http-tls-allowed-client-names=client", "-ingester.min-ready-duration=0s")

	hc := httpClient(tlsClient(t, clientConfig(dir, "client")))
	waitReady(p, hc)
	_, body := get(t, hc, "https://"+p.HTTPAddr+"/config")
	if !strings.Contains(body, "allowed_client_names: client") || !strings.Contains(body, "log_level: debug") {
		t.Fatalf("/config does not show the file's and the flag's values:\n%s", body)
	}
}

// TestCertificateRotationBinary replaces the server certificate on disk and
// checks the running binary serves the new one, without a restart, and that
// a broken replacement keeps the old one.
func TestCertificateRotationBinary(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	p := testkit.StartCortex(t, append(mtlsFlags(dir), "-tls.reload-interval=100ms", "-ingester.min-ready-duration=0s")...)
	client := tlsClient(t, clientConfig(dir, "client"))
	hc := httpClient(client)
	waitReady(p, hc)
	before := serverSerial(t, dir, p.HTTPAddr)

	ca, err := certgen.LoadPair(filepath.Join(dir, "root.crt"), filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	next := testkit.Issue(t, ca, certgen.Options{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: testkit.LoopbackIPs()})
	// A broken certificate first: the server keeps the old one and says so.
	if err := os.WriteFile(filepath.Join(dir, "server.crt"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.WaitLog("TLS reload failed, keeping the last good certificate")
	if got := serverSerial(t, dir, p.HTTPAddr); got != before {
		t.Fatalf("serial changed to %s after a broken reload, want %s kept", got, before)
	}
	// Then a good pair, key first so the pair is consistent once the certificate lands.
	if err := os.WriteFile(filepath.Join(dir, "server.key"), next.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server.crt"), next.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	want := next.Cert.SerialNumber.String()
	p.Eventually(10*time.Second, "the server to present the new certificate", func() bool { return serverSerial(t, dir, p.HTTPAddr) == want })
	_, body := get(t, hc, "https://"+p.HTTPAddr+"/metrics")
	// Every flag naming server.crt (the servers' and the in-process
	// clients') reloads it on its own; whichever saw the broken file first
	// counts the failure, and the good file may land before the others look.
	if n := metricSum(body, "cortex_tls_reload_failures_total", `path="`+filepath.Join(dir, "server.crt")+`"`); n < 1 {
		t.Fatalf("reload failure not counted:\n%s", grepLines(body, "cortex_tls_reload_failures_total"))
	}
}

// serverSerial makes a fresh handshake and returns the server's certificate serial.
func serverSerial(t *testing.T, dir, addr string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}
