package tlsconfig

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// waitTimeout bounds every wait in this package's tests.
const waitTimeout = 5 * time.Second

// testEnv is one process's TLS state: a Loader with its own registry and log.
type testEnv struct {
	reg    *prometheus.Registry
	loader *Loader
	logs   *testkit.Buffer
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	logs := &testkit.Buffer{}
	reg := prometheus.NewRegistry()
	return &testEnv{reg: reg, loader: NewLoader(logs.Logger(), reg), logs: logs}
}

func serialOf(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// ---- servers ----

// serialHeader carries the serial of the client certificate the server saw.
const serialHeader = "client-serial"

func peerSerial(certs []*x509.Certificate) string {
	if len(certs) == 0 {
		return "none"
	}
	return serialOf(certs[0])
}

// startHTTPServer serves "ok" over srv's TLS listener on a loopback port and
// returns the address; the server is shut down when the test ends.
func startHTTPServer(t *testing.T, srv *Server) string {
	t.Helper()
	ln := testkit.Listen(t)
	inner := ln
	if srv != nil {
		inner = srv.Listener(ln, []string{"h2", "http/1.1"})
	}
	hs := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			serial := "plaintext"
			if r.TLS != nil {
				serial = peerSerial(r.TLS.PeerCertificates)
			}
			w.Header().Set(serialHeader, serial)
			_, _ = io.WriteString(w, "ok")
		}),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(inner)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			_ = hs.Close()
		}
		<-done
	})
	return ln.Addr().String()
}

// startGRPCServer serves the health service with srv's credentials (or in
// plaintext when srv is nil) and returns the address. Every reply carries
// the serial of the client certificate in the serialHeader header.
func startGRPCServer(t *testing.T, srv *Server) string {
	t.Helper()
	ln := testkit.Listen(t)
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		serial := "plaintext"
		if p, ok := peer.FromContext(ctx); ok {
			if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
				serial = peerSerial(info.State.PeerCertificates)
			}
		}
		_ = grpc.SetHeader(ctx, metadata.Pairs(serialHeader, serial))
		return h(ctx, req)
	})}
	if srv != nil {
		opts = append(opts, grpc.Creds(srv.GRPCCredentials()))
	}
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return ln.Addr().String()
}

// ---- clients ----

// httpGet makes one request on a fresh transport and returns the serial of
// the client certificate the server saw.
func httpGet(c *Client, addr string) (string, error) {
	tr := c.HTTPTransport()
	defer tr.CloseIdleConnections()
	return httpGetWith(&http.Client{Transport: tr, Timeout: waitTimeout}, addr)
}

func httpGetWith(hc *http.Client, addr string) (string, error) {
	resp, err := hc.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		return "", fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	return resp.Header.Get(serialHeader), nil
}

// grpcCheck makes one health check on a new connection.
func grpcCheck(c *Client, addr string) (string, error) {
	conn, err := grpc.NewClient(addr, c.GRPCDialOption())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return grpcCheckWith(conn)
}

func grpcCheckWith(conn *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var md metadata.MD
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md))
	if err != nil {
		return "", err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return "", fmt.Errorf("health status %s", resp.GetStatus())
	}
	if v := md.Get(serialHeader); len(v) == 1 {
		return v[0], nil
	}
	return "", errors.New("reply lacks the client-serial header")
}

// ---- metrics ----

// handshakeFailures returns cortex_tls_handshake_failures_total of one server, by reason.
func handshakeFailures(t *testing.T, reg *prometheus.Registry, server string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for labels, v := range testkit.MetricValues(t, reg, "cortex_tls_handshake_failures_total") {
		reason, ok := strings.CutPrefix(labels, "reason=")
		if !ok {
			t.Fatalf("unexpected labels %q", labels)
		}
		reason, srv, _ := strings.Cut(reason, ",server=")
		if srv == server {
			out[reason] = v
		}
	}
	return out
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}
