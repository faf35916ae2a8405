package tlsconfig

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// dialServerSerial makes a new TLS connection and returns the serial of the
// certificate the server presented.
func dialServerSerial(c *Client, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := c.DialContext(ctx, "tcp", addr, []string{"http/1.1"})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return serialOf(conn.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState().PeerCertificates[0]), nil
}

// tracedGet makes a request and reports the serial of the server certificate
// on the connection it used and whether that connection was reused.
func tracedGet(hc *http.Client, addr string) (serial string, reused bool, err error) {
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		return "", false, err
	}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		reused = info.Reused
		if cs, ok := info.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
			serial = serialOf(cs.ConnectionState().PeerCertificates[0])
		}
	}}
	resp, err := hc.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil {
		return "", false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body) // read to EOF, or the connection is not reused
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", false, fmt.Errorf("status %d", resp.StatusCode)
	}
	return serial, reused, nil
}

// grpcServerSerial makes a health check on conn and returns the serial of
// the server certificate of the connection it used.
func grpcServerSerial(conn *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		return "", err
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", fmt.Errorf("peer auth info is %T", p.AuthInfo)
	}
	return serialOf(info.State.PeerCertificates[0]), nil
}

// mtls is a CA with a server and a client certificate written to disk.
type mtls struct {
	dir                   string
	ca                    *certgen.Pair
	caPath                string
	serverCert, serverKey string
	clientCert, clientKey string
	server, client        *certgen.Pair
}

func newMTLS(t *testing.T) *mtls {
	t.Helper()
	m := &mtls{dir: t.TempDir(), ca: testkit.NewCA(t, "ca")}
	m.caPath = testkit.WriteBundle(t, m.dir, "ca.crt", m.ca)
	m.server, m.client = testkit.ServerLeaf(t, m.ca, "server"), testkit.ClientLeaf(t, m.ca, "distributor")
	m.serverCert, m.serverKey = testkit.WritePair(t, m.dir, "server", m.server)
	m.clientCert, m.clientKey = testkit.WritePair(t, m.dir, "client", m.client)
	return m
}

func (m *mtls) newServer(t *testing.T, env *testEnv, name string) *Server {
	t.Helper()
	srv, err := NewServer(name, "server."+name, ServerConfig{CertPath: m.serverCert, KeyPath: m.serverKey, CAPath: m.caPath, ClientAuth: "RequireAndVerifyClientCert"}, ServerOptions{}, env.loader)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func (m *mtls) newClient(t *testing.T, env *testEnv) *Client {
	t.Helper()
	c, err := NewClient("test.client", ClientConfig{CertPath: m.clientCert, KeyPath: m.clientKey, CAPath: m.caPath}, env.loader)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func reloads(env *testEnv, flag, path string) float64 {
	return testutil.ToFloat64(env.loader.Metrics().reloads.WithLabelValues(flag, path))
}

func reloadFailures(env *testEnv, flag, path string) float64 {
	return testutil.ToFloat64(env.loader.Metrics().reloadFailures.WithLabelValues(flag, path))
}

func TestReloadServerCertificate(t *testing.T) {
	m := newMTLS(t)
	srvEnv, cliEnv := newTestEnv(t), newTestEnv(t)
	httpAddr := startHTTPServer(t, m.newServer(t, srvEnv, "http"))
	grpcAddr := startGRPCServer(t, m.newServer(t, srvEnv, "grpc"))
	client := m.newClient(t, cliEnv)
	oldSerial := serialOf(m.server.Cert)

	// Connections made before the reload.
	tr := client.HTTPTransport()
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: waitTimeout}
	if serial, _, err := tracedGet(hc, httpAddr); err != nil || serial != oldSerial {
		t.Fatalf("first HTTP request: serial %s, err %v; want %s", serial, err, oldSerial)
	}
	grpcConn, err := grpc.NewClient(grpcAddr, client.GRPCDialOption())
	if err != nil {
		t.Fatal(err)
	}
	defer grpcConn.Close()
	if serial, err := grpcServerSerial(grpcConn); err != nil || serial != oldSerial {
		t.Fatalf("first gRPC call: serial %s, err %v; want %s", serial, err, oldSerial)
	}

	newLeaf := testkit.ServerLeaf(t, m.ca, "server")
	testkit.WritePair(t, m.dir, "server", newLeaf)
	srvEnv.loader.Reload()

	// New handshakes see the new certificate, on both servers.
	for _, addr := range []string{httpAddr, grpcAddr} {
		if serial, err := dialServerSerial(client, addr); err != nil || serial != serialOf(newLeaf.Cert) {
			t.Errorf("new connection to %s: serial %s, err %v; want the new %s", addr, serial, err, serialOf(newLeaf.Cert))
		}
	}
	// Connections made before the reload keep working.
	serial, reused, err := tracedGet(hc, httpAddr)
	if err != nil || !reused || serial != oldSerial {
		t.Errorf("HTTP request on the old connection: serial %s, reused %v, err %v; want %s on a reused connection", serial, reused, err, oldSerial)
	}
	if serial, err := grpcServerSerial(grpcConn); err != nil || serial != oldSerial {
		t.Errorf("gRPC call on the old connection: serial %s, err %v; want %s", serial, err, oldSerial)
	}

	for _, name := range []string{"http", "grpc"} {
		flag := "server." + name + "-tls-cert-path"
		if got := reloads(srvEnv, flag, m.serverCert); got != 1 {
			t.Errorf("cortex_tls_reloads_total{flag=%q} = %v, want 1", flag, got)
		}
		if got := reloadFailures(srvEnv, flag, m.serverCert); got != 0 {
			t.Errorf("cortex_tls_reload_failures_total{flag=%q} = %v, want 0", flag, got)
		}
	}
	mustContain(t, "log", srvEnv.logs.String(), "TLS certificate reloaded", "path="+m.serverCert)

	// Nothing changed: another pass reloads nothing.
	srvEnv.loader.Reload()
	if got := reloads(srvEnv, "server.http-tls-cert-path", m.serverCert); got != 1 {
		t.Errorf("reloads after an idle pass = %v, want still 1", got)
	}
}

func TestReloadBadFilesKeepOldCertificate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		write    func(t *testing.T, m *mtls)
		badPath  func(m *mtls) string
		wantText string
	}{
		{"garbage certificate", func(t *testing.T, m *mtls) {
			testkit.WriteFile(t, m.serverCert, []byte("garbage\n"), 0o644)
		}, func(m *mtls) string { return m.serverCert }, "not a PEM file"},
		{"mismatched key", func(t *testing.T, m *mtls) {
			testkit.WriteFile(t, m.serverKey, testkit.ServerLeaf(t, m.ca, "server").KeyPEM, 0o600)
		}, func(m *mtls) string { return m.serverKey }, "private key does not match the certificate"},
		{"certificate emptied", func(t *testing.T, m *mtls) {
			testkit.WriteFile(t, m.serverCert, nil, 0o644)
		}, func(m *mtls) string { return m.serverCert }, "file is empty"},
		{"key deleted", func(t *testing.T, m *mtls) {
			if err := os.Remove(m.serverKey); err != nil {
				t.Fatal(err)
			}
		}, func(m *mtls) string { return m.serverKey }, "file does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMTLS(t)
			srvEnv := newTestEnv(t)
			addr := startHTTPServer(t, m.newServer(t, srvEnv, "http"))
			client := m.newClient(t, newTestEnv(t))
			oldSerial := serialOf(m.server.Cert)

			tc.write(t, m)
			srvEnv.loader.Reload()

			if serial, err := dialServerSerial(client, addr); err != nil || serial != oldSerial {
				t.Errorf("after a bad reload: serial %s, err %v; want the old %s", serial, err, oldSerial)
			}
			const flag = "server.http-tls-cert-path"
			if got := reloadFailures(srvEnv, flag, m.serverCert); got != 1 {
				t.Errorf("cortex_tls_reload_failures_total = %v, want 1", got)
			}
			if got := reloads(srvEnv, flag, m.serverCert); got != 0 {
				t.Errorf("cortex_tls_reloads_total = %v, want 0", got)
			}
			mustContain(t, "log", srvEnv.logs.String(), "level=ERROR", "TLS reload failed, keeping the last good certificate", tc.badPath(m), tc.wantText)

			// The same bad files are reported once, not on every pass.
			srvEnv.loader.Reload()
			if got := reloadFailures(srvEnv, flag, m.serverCert); got != 1 {
				t.Errorf("failures after a second pass over the same bad files = %v, want 1", got)
			}

			// Fixing the files recovers.
			fixed := testkit.ServerLeaf(t, m.ca, "server")
			testkit.WritePair(t, m.dir, "server", fixed)
			srvEnv.loader.Reload()
			if serial, err := dialServerSerial(client, addr); err != nil || serial != serialOf(fixed.Cert) {
				t.Errorf("after fixing the files: serial %s, err %v; want %s", serial, err, serialOf(fixed.Cert))
			}
			if got := reloads(srvEnv, flag, m.serverCert); got != 1 {
				t.Errorf("cortex_tls_reloads_total after the fix = %v, want 1", got)
			}
		})
	}
}

func TestReloadBadCABundleKeepsOldBundle(t *testing.T) {
	m := newMTLS(t)
	srvEnv := newTestEnv(t)
	addr := startHTTPServer(t, m.newServer(t, srvEnv, "http"))
	client := m.newClient(t, newTestEnv(t))

	testkit.WriteFile(t, m.caPath, m.client.KeyPEM, 0o644) // a key where the CA should be
	srvEnv.loader.Reload()
	if _, err := httpGet(client, addr); err != nil {
		t.Errorf("client refused after a bad CA bundle reload, want the old bundle kept: %v", err)
	}
	const flag = "server.http-tls-ca-path"
	if got := reloadFailures(srvEnv, flag, m.caPath); got != 1 {
		t.Errorf("cortex_tls_reload_failures_total{flag=%q} = %v, want 1", flag, got)
	}
	mustContain(t, "log", srvEnv.logs.String(), "level=ERROR", "keeping the last good CA bundle", "-"+flag+"="+m.caPath, "holds no certificate")
}

func TestReloadClientCertificate(t *testing.T) {
	m := newMTLS(t)
	cliEnv := newTestEnv(t)
	httpAddr := startHTTPServer(t, m.newServer(t, newTestEnv(t), "http"))
	grpcAddr := startGRPCServer(t, m.newServer(t, newTestEnv(t), "grpc"))
	client := m.newClient(t, cliEnv)

	if seen, err := httpGet(client, httpAddr); err != nil || seen != serialOf(m.client.Cert) {
		t.Fatalf("server saw %s (err %v), want %s", seen, err, serialOf(m.client.Cert))
	}
	newLeaf := testkit.ClientLeaf(t, m.ca, "distributor")
	testkit.WritePair(t, m.dir, "client", newLeaf)
	cliEnv.loader.Reload()

	if seen, err := httpGet(client, httpAddr); err != nil || seen != serialOf(newLeaf.Cert) {
		t.Errorf("HTTP server saw %s (err %v), want the new %s", seen, err, serialOf(newLeaf.Cert))
	}
	if seen, err := grpcCheck(client, grpcAddr); err != nil || seen != serialOf(newLeaf.Cert) {
		t.Errorf("gRPC server saw %s (err %v), want the new %s", seen, err, serialOf(newLeaf.Cert))
	}
	if got := reloads(cliEnv, "test.client.tls-cert-path", m.clientCert); got != 1 {
		t.Errorf("cortex_tls_reloads_total{flag=\"test.client.tls-cert-path\"} = %v, want 1", got)
	}
}

// TestReloadCABundles rotates the CA on one side at a time: a peer signed by
// a CA not yet in the bundle is refused until the bundle is reloaded.
func TestReloadCABundles(t *testing.T) {
	m := newMTLS(t)
	srvEnv, cliEnv := newTestEnv(t), newTestEnv(t)
	addr := startHTTPServer(t, m.newServer(t, srvEnv, "http"))
	client := m.newClient(t, cliEnv)
	caNew := testkit.NewCA(t, "new ca")

	t.Run("client bundle", func(t *testing.T) {
		testkit.WritePair(t, m.dir, "server", testkit.ServerLeaf(t, caNew, "server"))
		srvEnv.loader.Reload()
		_, err := httpGet(client, addr)
		if err == nil {
			t.Fatal("client accepted a server certificate from a CA not in its bundle")
		}
		mustContain(t, "client error", err.Error(), `issued by "new ca"`, "is not signed by a CA in -test.client.tls-ca-path="+m.caPath)

		testkit.WriteBundle(t, m.dir, "ca.crt", m.ca, caNew) // shared by server and client
		cliEnv.loader.Reload()
		if _, err := httpGet(client, addr); err != nil {
			t.Fatalf("client refused the server after its CA bundle was reloaded: %v", err)
		}
		if got := reloads(cliEnv, "test.client.tls-ca-path", m.caPath); got != 1 {
			t.Errorf("client CA reloads = %v, want 1", got)
		}
	})

	t.Run("server bundle", func(t *testing.T) {
		// The server has not reloaded the shared bundle yet: it only trusts the old CA.
		testkit.WritePair(t, m.dir, "client", testkit.ClientLeaf(t, caNew, "distributor"))
		cliEnv.loader.Reload()
		_, err := httpGet(client, addr)
		if err == nil {
			t.Fatal("server accepted a client certificate from a CA not in its bundle")
		}
		mustContain(t, "client error", err.Error(), "does not trust the client certificate")

		srvEnv.loader.Reload()
		if _, err := httpGet(client, addr); err != nil {
			t.Fatalf("server refused the client after its CA bundle was reloaded: %v", err)
		}
		if got := reloads(srvEnv, "server.http-tls-ca-path", m.caPath); got != 1 {
			t.Errorf("server CA reloads = %v, want 1", got)
		}
	})
}

// requestLoop sends requests until stopped and counts the outcomes.
type requestLoop struct {
	name     string
	ok, fail atomic.Int64
	mu       sync.Mutex
	firstErr error
}

func (l *requestLoop) run(stop <-chan struct{}, wg *sync.WaitGroup, do func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := do(); err != nil {
				l.fail.Add(1)
				l.mu.Lock()
				if l.firstErr == nil {
					l.firstErr = err
				}
				l.mu.Unlock()
				continue
			}
			l.ok.Add(1)
		}
	}()
}

// TestFullCARotation moves a server and a client from one CA to another
// without a restart while requests flow, following the usual three steps.
// Not one request may fail.
func TestFullCARotation(t *testing.T) {
	dir := t.TempDir()
	caOld, caNew := testkit.NewCA(t, "old ca"), testkit.NewCA(t, "new ca")
	srvCAPath := testkit.WriteBundle(t, dir, "server-ca.crt", caOld)
	cliCAPath := testkit.WriteBundle(t, dir, "client-ca.crt", caOld)
	oldServer, oldClient := testkit.ServerLeaf(t, caOld, "server"), testkit.ClientLeaf(t, caOld, "distributor")
	srvCert, srvKey := testkit.WritePair(t, dir, "server", oldServer)
	cliCert, cliKey := testkit.WritePair(t, dir, "client", oldClient)

	srvEnv, cliEnv := newTestEnv(t), newTestEnv(t)
	srvCfg := ServerConfig{CertPath: srvCert, KeyPath: srvKey, CAPath: srvCAPath, ClientAuth: "RequireAndVerifyClientCert", AllowedClientNames: []string{"distributor"}}
	var addrs [2]string
	for i, name := range []string{"http", "grpc"} {
		srv, err := NewServer(name, "server."+name, srvCfg, ServerOptions{}, srvEnv.loader)
		if err != nil {
			t.Fatal(err)
		}
		if name == "http" {
			addrs[i] = startHTTPServer(t, srv)
		} else {
			addrs[i] = startGRPCServer(t, srv)
		}
	}
	httpAddr, grpcAddr := addrs[0], addrs[1]
	client, err := NewClient("test.client", ClientConfig{CertPath: cliCert, KeyPath: cliKey, CAPath: cliCAPath}, cliEnv.loader)
	if err != nil {
		t.Fatal(err)
	}

	// Four request streams: HTTP and gRPC, each on one long-lived connection
	// and on a new connection (a full handshake) per request.
	keepAlive := client.HTTPTransport()
	defer keepAlive.CloseIdleConnections()
	keepAliveClient := &http.Client{Transport: keepAlive, Timeout: waitTimeout}
	fresh := client.HTTPTransport()
	fresh.DisableKeepAlives = true
	freshClient := &http.Client{Transport: fresh, Timeout: waitTimeout}
	grpcConn, err := grpc.NewClient(grpcAddr, client.GRPCDialOption())
	if err != nil {
		t.Fatal(err)
	}
	defer grpcConn.Close()

	loops := []*requestLoop{{name: "http keep-alive"}, {name: "http new connections"}, {name: "grpc one connection"}, {name: "grpc new connections"}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loops[0].run(stop, &wg, func() error { _, err := httpGetWith(keepAliveClient, httpAddr); return err })
	loops[1].run(stop, &wg, func() error { _, err := httpGetWith(freshClient, httpAddr); return err })
	loops[2].run(stop, &wg, func() error { _, err := grpcCheckWith(grpcConn); return err })
	loops[3].run(stop, &wg, func() error { _, err := grpcCheck(client, grpcAddr); return err })
	stopped := false
	stopLoops := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoops()

	// progress waits until every stream made n more successful requests.
	progress := func(step string, n int64) {
		t.Helper()
		base := make([]int64, len(loops))
		for i, l := range loops {
			base[i] = l.ok.Load()
		}
		testkit.Eventually(t, waitTimeout, "requests after "+step, func() bool {
			for i, l := range loops {
				if l.ok.Load() < base[i]+n {
					return false
				}
			}
			return true
		})
	}
	reload := func() {
		srvEnv.loader.Reload()
		cliEnv.loader.Reload()
	}

	progress("start", 10)

	// Step 1: both sides trust the old and the new CA.
	testkit.WriteBundle(t, dir, "server-ca.crt", caOld, caNew)
	testkit.WriteBundle(t, dir, "client-ca.crt", caOld, caNew)
	reload()
	progress("step 1 (bundles hold both CAs)", 10)

	// Step 2: both leaves move to the new CA.
	newServer, newClient := testkit.ServerLeaf(t, caNew, "server"), testkit.ClientLeaf(t, caNew, "distributor")
	testkit.WritePair(t, dir, "server", newServer)
	testkit.WritePair(t, dir, "client", newClient)
	reload()
	progress("step 2 (leaves from the new CA)", 10)

	// Step 3: the old CA is dropped.
	testkit.WriteBundle(t, dir, "server-ca.crt", caNew)
	testkit.WriteBundle(t, dir, "client-ca.crt", caNew)
	reload()
	progress("step 3 (old CA dropped)", 10)

	stopLoops()
	for _, l := range loops {
		t.Logf("%s: %d requests succeeded, %d failed", l.name, l.ok.Load(), l.fail.Load())
		if l.fail.Load() != 0 {
			t.Errorf("%s: %d of %d requests failed during the rotation; first: %v", l.name, l.fail.Load(), l.fail.Load()+l.ok.Load(), l.firstErr)
		}
		if l.ok.Load() < 40 {
			t.Errorf("%s: only %d requests", l.name, l.ok.Load())
		}
	}
	for env, n := range map[*testEnv]int{srvEnv: 2 * 3, cliEnv: 3} { // files, times sources
		var total float64
		for _, v := range testkit.MetricValues(t, env.reg, "cortex_tls_reloads_total") {
			total += v
		}
		if total != float64(n) {
			t.Errorf("cortex_tls_reloads_total sums to %v, want %d", total, n)
		}
	}

	// New connections now use the new certificates on both sides.
	if serial, err := dialServerSerial(client, httpAddr); err != nil || serial != serialOf(newServer.Cert) {
		t.Errorf("server presents %s (err %v), want the new-CA certificate %s", serial, err, serialOf(newServer.Cert))
	}
	if seen, err := grpcCheck(client, grpcAddr); err != nil || seen != serialOf(newClient.Cert) {
		t.Errorf("gRPC server saw client certificate %s (err %v), want the new-CA one %s", seen, err, serialOf(newClient.Cert))
	}

	// A client still holding an old-CA certificate is refused.
	staleCert, staleKey := testkit.WritePair(t, dir, "stale-client", testkit.ClientLeaf(t, caOld, "distributor"))
	stale, err := NewClient("stale.client", ClientConfig{CertPath: staleCert, KeyPath: staleKey, CAPath: cliCAPath}, newTestEnv(t).loader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := httpGet(stale, httpAddr); err == nil {
		t.Error("HTTP server accepted a client certificate from the dropped CA")
	} else {
		mustContain(t, "stale HTTP client error", err.Error(), "does not trust the client certificate -stale.client.tls-cert-path="+staleCert)
	}
	if _, err := grpcCheck(stale, grpcAddr); err == nil {
		t.Error("gRPC server accepted a client certificate from the dropped CA")
	} else {
		mustContain(t, "stale gRPC client error", err.Error(), "does not trust the client certificate")
	}
	// And a client that only trusts the old CA refuses the server.
	oldTrust := testkit.WriteBundle(t, dir, "old-only.crt", caOld)
	legacy, err := NewClient("legacy.client", ClientConfig{CertPath: cliCert, KeyPath: cliKey, CAPath: oldTrust}, newTestEnv(t).loader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := httpGet(legacy, httpAddr); err == nil {
		t.Error("a client trusting only the dropped CA accepted the server")
	} else {
		mustContain(t, "old-trust client error", err.Error(), "is not signed by a CA in -legacy.client.tls-ca-path="+oldTrust)
	}
}

func TestLoaderRunPicksUpChanges(t *testing.T) {
	m := newMTLS(t)
	srvEnv := newTestEnv(t)
	addr := startHTTPServer(t, m.newServer(t, srvEnv, "http"))
	client := m.newClient(t, newTestEnv(t))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srvEnv.loader.Run(ctx, 50*time.Millisecond)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("Loader.Run did not return after its context ended")
		}
	}()

	newLeaf := testkit.ServerLeaf(t, m.ca, "server")
	testkit.WritePair(t, filepath.Dir(m.serverCert), "server", newLeaf)
	want := serialOf(newLeaf.Cert)
	testkit.Eventually(t, waitTimeout, "Loader.Run to load the new certificate", func() bool {
		serial, err := dialServerSerial(client, addr)
		return err == nil && serial == want
	})
	if got := reloads(srvEnv, "server.http-tls-cert-path", m.serverCert); got != 1 {
		t.Errorf("cortex_tls_reloads_total = %v, want 1", got)
	}
}
