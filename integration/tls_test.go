package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// certDir writes a CA and server, client and stranger (foreign CA) certificates.
func certDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writePair := func(name string, p *certgen.Pair) {
		if err := os.WriteFile(filepath.Join(dir, name+".crt"), p.CertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".key"), p.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := certgen.NewCA(certgen.Options{CommonName: "root"})
	if err != nil {
		t.Fatal(err)
	}
	writePair("root", ca)
	for _, name := range []string{"server", "client"} {
		cn := name
		if name == "server" {
			cn = "localhost"
		}
		leaf, err := ca.Issue(certgen.Options{CommonName: cn, DNSNames: []string{name, "localhost"}, IPs: loopbackIPs()})
		if err != nil {
			t.Fatal(err)
		}
		writePair(name, leaf)
	}
	foreign, err := certgen.NewCA(certgen.Options{CommonName: "foreign"})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := foreign.Issue(certgen.Options{CommonName: "client", DNSNames: []string{"client"}})
	if err != nil {
		t.Fatal(err)
	}
	writePair("stranger", stranger)
	return dir
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

func clientConfig(dir, leaf string) tlsconfig.ClientConfig {
	return tlsconfig.ClientConfig{
		CertPath: filepath.Join(dir, leaf+".crt"),
		KeyPath:  filepath.Join(dir, leaf+".key"),
		CAPath:   filepath.Join(dir, "root.crt"),
	}
}

func grpcHealth(t *testing.T, c *tlsconfig.Client, addr string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, c.GRPCDialOption())
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

// TestMutualTLSBinary starts the binary with mutual TLS on both servers and
// checks every endpoint, the refusals, the probe listener and SIGTERM.
func TestMutualTLSBinary(t *testing.T) {
	dir := certDir(t)
	healthPort := freePort(t)
	p := start(t, append(mtlsFlags(dir),
		"-server.health-listen-address=127.0.0.1", "-server.health-listen-port="+itoa(healthPort))...)
	client := tlsClient(t, clientConfig(dir, "client"))
	hc := httpClient(client)
	p.waitReady(hc, "https://"+p.httpAddr()+"/ready")

	if status, err := grpcHealth(t, client, p.grpcAddr()); err != nil || status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health over mutual TLS: status %v, err %v", status, err)
	}

	code, body := get(t, hc, "https://"+p.httpAddr()+"/config")
	if code != 200 || !strings.Contains(body, "client_auth_type: RequireAndVerifyClientCert") || !strings.Contains(body, "cert_file: "+filepath.Join(dir, "server.crt")) {
		t.Fatalf("/config: %d\n%s", code, body)
	}
	code, body = get(t, hc, "https://"+p.httpAddr()+"/metrics")
	for _, want := range []string{
		`cortex_tls_certificate_expiry_timestamp_seconds{flag="server.grpc-tls-cert-path",path="` + filepath.Join(dir, "server.crt") + `"`,
		`cortex_tls_server_handshakes_total{server="grpc"} 1`,
		"go_gc_gogc_percent 75", // -server.gogc's default
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, body)
		}
	}

	// No client certificate: refused on both servers, with a reason.
	anon := tlsClient(t, tlsconfig.ClientConfig{CAPath: filepath.Join(dir, "root.crt")})
	if _, err := httpClient(anon).Get("https://" + p.httpAddr() + "/ready"); err == nil || !strings.Contains(err.Error(), "requires a client certificate") {
		t.Fatalf("HTTP without client certificate: got %v, want a refusal explaining a certificate is required", err)
	}
	if _, err := grpcHealth(t, anon, p.grpcAddr()); err == nil || !strings.Contains(err.Error(), "requires a client certificate") {
		t.Fatalf("gRPC without client certificate: got %v", err)
	}
	// A certificate from a foreign CA: refused.
	stranger := tlsClient(t, clientConfig(dir, "stranger"))
	if _, err := grpcHealth(t, stranger, p.grpcAddr()); err == nil || !strings.Contains(err.Error(), "does not trust") {
		t.Fatalf("gRPC with a foreign certificate: got %v", err)
	}
	p.waitLog("presented no certificate; this server requires one (-server.grpc-tls-client-auth=RequireAndVerifyClientCert)")
	p.waitLog(`which no CA in -server.grpc-tls-ca-path=` + filepath.Join(dir, "root.crt") + ` signed`)
	// Plain HTTP to the TLS port gets a readable answer.
	code, body = get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+p.httpAddr()+"/ready")
	if code != 400 || !strings.Contains(body, "HTTP request to an HTTPS server") {
		t.Fatalf("plain HTTP to the TLS port: %d %q", code, body)
	}

	// A plaintext gRPC client is told the port requires TLS.
	conn, err := grpc.NewClient(p.grpcAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	cancel()
	conn.Close()
	if err == nil || !strings.Contains(err.Error(), "this port requires TLS") {
		t.Fatalf("plaintext gRPC to the TLS port: got %v, want an error saying the port requires TLS", err)
	}

	// The probe listener serves /ready and /healthz without TLS, nothing else.
	plain := &http.Client{Timeout: 5 * time.Second}
	for path, want := range map[string]int{"/ready": 200, "/healthz": 200, "/metrics": 404, "/config": 404} {
		if code, _ := get(t, plain, "http://127.0.0.1:"+itoa(healthPort)+path); code != want {
			t.Errorf("probe listener %s: %d, want %d", path, code, want)
		}
	}

	p.stop()
	if p.exitErr != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0", p.exitErr)
	}
	if !strings.Contains(p.out.String(), "cortex stopped") {
		t.Fatalf("no clean shutdown in the log:\n%s", p.out.String())
	}
}

// TestGuideVerbatim runs the guide's openssl script exactly as written and
// starts the binary with the guide's server flags.
func TestGuideVerbatim(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed; .ci/run installs it")
	}
	dir := guideCerts(t)
	p := start(t, mtlsFlags(dir)...)
	p.waitLog("has no subjectAltName")
	for _, addr := range []string{p.httpAddr(), strings.Replace(p.httpAddr(), "127.0.0.1", "localhost", 1)} {
		client := tlsClient(t, clientConfig(dir, "client"))
		p.waitReady(httpClient(client), "https://"+addr+"/ready")
	}
	client := tlsClient(t, clientConfig(dir, "client"))
	if status, err := grpcHealth(t, client, p.grpcAddr()); err != nil || status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health with the guide's certificates: %v %v", status, err)
	}

	// With the fallback off, the guide's server certificate is refused and
	// the error says why and which flag changes it.
	strict := clientConfig(dir, "client")
	strictClient, err := tlsconfig.NewClient("ingester.client", strict, tlsconfig.NewLoader(discard(), nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = grpcHealth(t, strictClient, p.grpcAddr())
	if err == nil || !strings.Contains(err.Error(), "no subjectAltName") || !strings.Contains(err.Error(), "-ingester.client.tls-common-name-fallback=true") {
		t.Fatalf("strict client with the guide's certificate: %v", err)
	}
}

// guideCerts runs the guide's openssl script, verbatim, once per test run
// (its 4096-bit RSA keys take seconds), and returns the directory. Tests
// only read the files.
func guideCerts(t *testing.T) string {
	t.Helper()
	guideOnce.Do(func() { guideDir, guideErr = runGuideScript(t) })
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

func runGuideScript(t *testing.T) (string, error) {
	dir := filepath.Join(filepath.Dir(binary), "guide-certs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
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
	dir := guideCerts(t)
	t.Logf("certs %s", time.Now())
	defer func() { t.Logf("done %s", time.Now()) }()
	seed := freePort(t)
	var ingesters []*process
	for i, port := range []int{seed, freePort(t)} {
		ingesters = append(ingesters, start(t, append(mtlsFlags(dir), "-target=ingester", "-ingester.lifecycler.ID=ingester-"+itoa(i),
			"-ingester.lifecycler.addr=127.0.0.1", "-ingester.join-after=0s", "-ingester.min-ready-duration=0s", "-blocks-storage.tsdb.dir="+filepath.Join(t.TempDir(), "tsdb"),
			"-ring.store=memberlist", "-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port="+itoa(port), "-memberlist.join=127.0.0.1:"+itoa(seed),
			"-memberlist.tls-cert-path="+filepath.Join(dir, "server.crt"), "-memberlist.tls-key-path="+filepath.Join(dir, "server.key"),
			"-memberlist.tls-ca-path="+filepath.Join(dir, "root.crt"), "-memberlist.tls-server-name=localhost")...))
	}
	hc := httpClient(tlsClient(t, clientConfig(dir, "client")))
	t.Logf("started %s", time.Now())
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, page := get(t, hc, "https://"+ingesters[1].httpAddr()+"/memberlist")
		if strings.Count(page, "\n") == 4 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two ingesters never saw each other; /memberlist:\n%s", page)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStartupErrors checks that bad TLS settings stop the binary at once
// with a message naming the flag, the file and the fix.
func TestStartupErrors(t *testing.T) {
	dir := certDir(t)
	port := "-server.http-listen-port=" + itoa(freePort(t))
	gport := "-server.grpc-listen-port=" + itoa(freePort(t))
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
		{"missing memberlist certificate, without -memberlist.tls-enabled", []string{"-target=ingester", "-ring.store=memberlist", "-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port=" + itoa(freePort(t)),
			"-memberlist.tls-cert-path=" + dir + "/nope.crt", "-memberlist.tls-key-path=" + dir + "/client.key"},
			[]string{"-memberlist.tls-cert-path=" + dir + "/nope.crt: file does not exist"}},
		{"unknown target", []string{"-target=nonsense"}, []string{`unknown component "nonsense"; valid values: `, "all, configs, distributor, ingester, querier"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runToExit(t, append([]string{"-server.http-listen-address=127.0.0.1", "-server.grpc-listen-address=127.0.0.1", port, gport}, tc.flags...)...)
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
	dir := certDir(t)
	httpPort, grpcPort := freePort(t), freePort(t)
	cfg := `
server:
  http_listen_address: 127.0.0.1
  http_listen_port: ` + itoa(httpPort) + `
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: ` + itoa(grpcPort) + `
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
	p := &process{t: t, out: &syncBuffer{}, httpPort: httpPort, grpcPort: grpcPort, done: make(chan struct{})}
	p.cmd = exec.Command(binary, "-config.file="+file, "-server.http-tls-allowed-client-names=client")
	p.cmd.Dir = t.TempDir() // relative default data paths stay out of the source tree
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)

	hc := httpClient(tlsClient(t, clientConfig(dir, "client")))
	p.waitReady(hc, "https://"+p.httpAddr()+"/ready")
	_, body := get(t, hc, "https://"+p.httpAddr()+"/config")
	if !strings.Contains(body, "allowed_client_names: client") || !strings.Contains(body, "log_level: debug") {
		t.Fatalf("/config does not show the file's and the flag's values:\n%s", body)
	}
}

// TestCertificateRotationBinary replaces the server certificate on disk and
// checks the running binary serves the new one, without a restart, and that
// a broken replacement keeps the old one.
func TestCertificateRotationBinary(t *testing.T) {
	dir := certDir(t)
	p := start(t, append(mtlsFlags(dir), "-tls.reload-interval=100ms")...)
	client := tlsClient(t, clientConfig(dir, "client"))
	hc := httpClient(client)
	p.waitReady(hc, "https://"+p.httpAddr()+"/ready")
	before := serverSerial(t, dir, p.httpAddr())

	ca, err := certgen.LoadPair(filepath.Join(dir, "root.crt"), filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	next, err := ca.Issue(certgen.Options{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: loopbackIPs()})
	if err != nil {
		t.Fatal(err)
	}
	// A broken certificate first: the server keeps the old one and says so.
	if err := os.WriteFile(filepath.Join(dir, "server.crt"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.waitLog("TLS reload failed, keeping the last good certificate")
	if got := serverSerial(t, dir, p.httpAddr()); got != before {
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
	deadline := time.Now().Add(10 * time.Second)
	for serverSerial(t, dir, p.httpAddr()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("server still presents the old certificate 10s after rotation; output:\n%s", p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, body := get(t, hc, "https://"+p.httpAddr()+"/metrics")
	if !strings.Contains(body, `cortex_tls_reload_failures_total{flag="server.http-tls-cert-path",path="`+filepath.Join(dir, "server.crt")+`"} 1`) {
		t.Fatalf("reload failure not counted:\n%s", body)
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
