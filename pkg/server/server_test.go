package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// testServer is a started Server on loopback with mutual TLS on its HTTP
// port, a plain probe port, and /healthz on both.
type testServer struct {
	*Server
	client *http.Client // presents a client certificate
}

func startServer(t *testing.T, change func(*Config)) *testServer {
	t.Helper()
	return startServerLogging(t, slog.New(slog.DiscardHandler), change)
}

// startServerLogging is startServer logging to logger.
func startServerLogging(t *testing.T, logger *slog.Logger, change func(*Config)) *testServer {
	t.Helper()
	pki := testkit.NewPKI(t, "test-ca")
	srvLeaf, cliLeaf := pki.Server(t, "server"), pki.Client(t, "client")

	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.HTTPListenAddress, cfg.HTTPListenPort = "127.0.0.1", 0
	cfg.GRPCListenAddress, cfg.GRPCListenPort = "127.0.0.1", 0
	cfg.HTTPTLS = tlsconfig.ServerConfig{CertPath: srvLeaf.CertPath, KeyPath: srvLeaf.KeyPath, CAPath: pki.CAPath, ClientAuth: "RequireAndVerifyClientCert"}
	cfg.healthListener = testkit.Listen(t)
	if change != nil {
		change(&cfg)
	}
	s, err := New(cfg, tlsconfig.NewLoader(logger, prometheus.NewRegistry()), logger)
	if err != nil {
		t.Fatal(err)
	}
	s.HTTP.Handle("GET /healthz", s.HealthzHandler())
	svc := s.Service()
	if err := services.StartAndAwaitRunning(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), svc) })

	roots := x509.NewCertPool()
	ca, err := os.ReadFile(pki.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cliLeaf.TLSCertificate()}}}
	t.Cleanup(tr.CloseIdleConnections)
	return &testServer{Server: s, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// probeConn is a keep-alive connection to the probe port.
type probeConn struct {
	net.Conn
	r *bufio.Reader
}

func dialProbe(t *testing.T, s *Server) *probeConn {
	t.Helper()
	c, err := net.Dial("tcp", s.HealthAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &probeConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *probeConn) send(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// answer reads one response within d.
func (c *probeConn) answer(d time.Duration) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (s *testServer) mtlsHealthz(t *testing.T) {
	t.Helper()
	resp, err := s.client.Get("https://" + s.HTTPAddr().String() + "/healthz")
	if err != nil {
		t.Fatalf("mTLS port: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mTLS port: status %d", resp.StatusCode)
	}
}

// A full probe port leaves the mTLS port serving: each listener has its
// own cap.
func TestProbePortCapDoesNotStarveOtherPorts(t *testing.T) {
	const limit = 4
	s := startServer(t, func(c *Config) { c.HealthConnLimit = limit })
	var idle []*probeConn
	for range limit {
		c := dialProbe(t, s.Server)
		c.send(t)
		if code, err := c.answer(5 * time.Second); err != nil || code != http.StatusOK {
			t.Fatalf("probe: %d %v", code, err)
		}
		idle = append(idle, c)
	}

	// One more is not served while the cap is full...
	extra := dialProbe(t, s.Server)
	extra.send(t)
	if code, err := extra.answer(300 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("probe beyond -server.health-conn-limit=%d answered: %d %v", limit, code, err)
	}
	// ...while the mTLS port accepts and serves.
	for range 3 {
		s.mtlsHealthz(t)
	}

	// A freed slot serves the waiting connection.
	idle[0].Close()
	if code, err := extra.answer(5 * time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("probe once a slot is free: %d %v", code, err)
	}
}

// Idle keep-alive connections and connections that never send a request
// are closed, on the probe port and on the mTLS port.
func TestIdleConnectionsClosed(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.HTTPIdleTimeout = 200 * time.Millisecond
		c.HTTPReadHeaderTimeout = 200 * time.Millisecond
	})
	keepAlive := dialProbe(t, s.Server)
	keepAlive.send(t)
	if code, err := keepAlive.answer(5 * time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("probe: %d %v", code, err)
	}
	silent := dialProbe(t, s.Server)
	for name, c := range map[string]*probeConn{"idle keep-alive probe connection": keepAlive, "probe connection that sent nothing": silent} {
		// The server closing the connection is EOF, well before the deadline.
		if _, err := c.answer(10 * time.Second); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: read gave %v, want EOF once the server closed it", name, err)
		}
	}

	// The mTLS port: a connection that completed the handshake and then
	// sent nothing is closed too.
	tc, err := tls.Dial("tcp", s.HTTPAddr().String(), s.client.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("silent mTLS connection: read gave %v, want the server to close it", err)
	}
}

func TestConnLimitFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	for name, want := range map[string]string{
		"server.http-conn-limit":                    "4096",
		"server.grpc-conn-limit":                    "4096",
		"server.health-conn-limit":                  "128",
		"server.http-read-header-timeout":           "10s",
		"server.grpc.keepalive.max-connection-idle": "15m0s",
	} {
		if f := fs.Lookup(name); f == nil || f.DefValue != want {
			t.Errorf("-%s: %v, want default %s", name, f, want)
		}
	}
	cfg.HTTPConnLimit = -1
	logger := slog.New(slog.DiscardHandler)
	if _, err := New(cfg, tlsconfig.NewLoader(logger, prometheus.NewRegistry()), logger); err == nil || !strings.Contains(err.Error(), "-server.http-conn-limit") {
		t.Fatalf("negative limit: %v, want an error naming -server.http-conn-limit", err)
	}
}

// A full gRPC port leaves the mTLS HTTP port serving, and a freed slot
// serves the waiting connection.
func TestGRPCPortCap(t *testing.T) {
	s := startServer(t, func(c *Config) { c.GRPCConnLimit = 1 })
	holder, err := net.Dial("tcp", s.GRPCAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	conn, err := grpc.NewClient(s.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	check := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		return err
	}
	if err := check(300 * time.Millisecond); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("gRPC call beyond -server.grpc-conn-limit=1: %v, want it to wait", err)
	}
	s.mtlsHealthz(t)
	holder.Close()
	if err := check(10 * time.Second); err != nil {
		t.Fatalf("gRPC call once the slot is free: %v", err)
	}
}
