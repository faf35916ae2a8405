package server

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	channelzpb "google.golang.org/grpc/channelz/grpc_channelz_v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// The HTTP and gRPC ports listen on unix sockets with
// -server.{http,grpc}-listen-network=unix, at <address>:<port>, and keep
// their TLS.
func TestUnixSocketListeners(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := startServer(t, func(c *Config) {
		c.HTTPListenNetwork, c.HTTPListenAddress, c.HTTPListenPort = "unix", filepath.Join(dir, "http.sock"), 0
		c.GRPCListenNetwork, c.GRPCListenAddress, c.GRPCListenPort = "unix", filepath.Join(dir, "grpc.sock"), 0
	})
	if got, want := s.HTTPAddr().String(), filepath.Join(dir, "http.sock")+":0"; got != want {
		t.Fatalf("HTTP address %q, want %q", got, want)
	}

	tr := s.client.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", s.HTTPAddr().String())
	}
	tr.TLSClientConfig.ServerName = "127.0.0.1"
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://cortex/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("/healthz over the unix socket: %d %q", resp.StatusCode, body)
	}

	conn, err := grpc.NewClient("unix://"+s.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("gRPC health over the unix socket: %v", err)
	}
}

func TestListenNetworkRefused(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.HTTPListenNetwork = "udp"
	logger := slog.New(slog.DiscardHandler)
	_, err := New(cfg, tlsconfig.NewLoader(logger, prometheus.NewRegistry()), logger)
	if err == nil || !strings.Contains(err.Error(), `-server.http-listen-network="udp": must be tcp, tcp4, tcp6 or unix`) {
		t.Fatalf("got %v", err)
	}
}

// h2Conn is a raw HTTP/2 connection to the gRPC port, which can ping as
// often as it likes (gRPC's client holds its pings to one per 10s).
type h2Conn struct {
	net.Conn
	fr *http2.Framer
}

func dialH2(t *testing.T, addr string) *h2Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &h2Conn{Conn: c, fr: fr}
}

// next returns the next frame that is a ping acknowledgement or a GOAWAY.
func (c *h2Conn) next(t *testing.T) http2.Frame {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if f.IsAck() {
				return f
			}
		case *http2.GoAwayFrame:
			return f
		}
	}
}

// pingUntilGoAway pings n times, each once the last was acknowledged, and
// returns the GOAWAY the server sent, if any.
func (c *h2Conn) pingUntilGoAway(t *testing.T, n int) *http2.GoAwayFrame {
	t.Helper()
	for i := range n {
		if err := c.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if g, ok := c.next(t).(*http2.GoAwayFrame); ok {
			return g
		}
	}
	return nil
}

// The keepalive enforcement policy closes a client that pings more often
// than -server.grpc.keepalive.min-time-between-pings, and, with
// -server.grpc.keepalive.ping-without-stream-allowed=false, one that pings
// with no call in flight.
func TestKeepaliveEnforcement(t *testing.T) {
	t.Run("too often", func(t *testing.T) {
		s := startServer(t, func(c *Config) { c.GRPCMinTimeBetweenPings = time.Hour })
		g := dialH2(t, s.GRPCAddr().String()).pingUntilGoAway(t, 10)
		if g == nil || g.ErrCode != http2.ErrCodeEnhanceYourCalm || string(g.DebugData()) != "too_many_pings" {
			t.Fatalf("got GOAWAY %v, want ENHANCE_YOUR_CALM too_many_pings", g)
		}
	})
	t.Run("without stream refused", func(t *testing.T) {
		s := startServer(t, func(c *Config) {
			c.GRPCMinTimeBetweenPings = time.Nanosecond
			c.GRPCPingWithoutStreamAllowed = false
		})
		g := dialH2(t, s.GRPCAddr().String()).pingUntilGoAway(t, 10)
		if g == nil || g.ErrCode != http2.ErrCodeEnhanceYourCalm || string(g.DebugData()) != "too_many_pings" {
			t.Fatalf("got GOAWAY %v, want ENHANCE_YOUR_CALM too_many_pings", g)
		}
	})
	t.Run("without stream allowed", func(t *testing.T) {
		s := startServer(t, func(c *Config) {
			c.GRPCMinTimeBetweenPings = time.Nanosecond
			c.GRPCPingWithoutStreamAllowed = true
		})
		if g := dialH2(t, s.GRPCAddr().String()).pingUntilGoAway(t, 10); g != nil {
			t.Fatalf("got GOAWAY %v, want every ping acknowledged", g)
		}
	})
}

// -server.grpc.keepalive.max-connection-age ends a connection with GOAWAY
// once it is that old.
func TestMaxConnectionAge(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.GRPCMaxConnectionAge = 100 * time.Millisecond
		c.GRPCMaxConnectionAgeGrace = 100 * time.Millisecond
	})
	c := dialH2(t, s.GRPCAddr().String())
	start := time.Now()
	g, ok := c.next(t).(*http2.GoAwayFrame)
	if !ok || g.ErrCode != http2.ErrCodeNo {
		t.Fatalf("got %v, want GOAWAY NO_ERROR", g)
	}
	if age := time.Since(start); age < 50*time.Millisecond {
		t.Fatalf("GOAWAY after %v, before the connection's maximum age", age)
	}
}

// -server.enable-channelz serves gRPC's channelz service; it is off by
// default.
func TestChannelz(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		s := startServer(t, func(c *Config) {
			c.EnableChannelz = enabled
			c.GRPCNumStreamWorkers = 2
		})
		conn, err := grpc.NewClient(s.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := channelzpb.NewChannelzClient(conn).GetServers(ctx, &channelzpb.GetServersRequest{})
		cancel()
		conn.Close()
		switch {
		case !enabled && status.Code(err) != codes.Unimplemented:
			t.Fatalf("channelz off: got %v, want Unimplemented", err)
		case enabled && (err != nil || len(resp.GetServer()) == 0):
			t.Fatalf("channelz on: %v %v", resp, err)
		}
	}
}

// The HTTP port logs each request as dskit's server does, with the source
// IPs and headers when asked, at info level when asked.
func TestRequestLog(t *testing.T) {
	var buf testkit.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	get := func(s *testServer) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://"+s.HTTPAddr().String()+"/healthz", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		req.Header.Set("X-Test-Header", "visible")
		req.Header.Set("X-Secret", "hidden")
		req.Header.Set("Authorization", "Bearer hidden")
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	s := startServerLogging(t, logger, nil)
	get(s)
	if strings.Contains(buf.String(), "GET /healthz") {
		t.Fatalf("request logged at info level by default:\n%s", buf.String())
	}

	s = startServerLogging(t, logger, func(c *Config) {
		c.LogRequestAtInfoLevel = true
		c.LogSourceIPs = true
		c.LogRequestHeaders = true
		c.LogRequestExcludeHeadersList = "x-secret"
	})
	get(s)
	line := ""
	for l := range strings.SplitSeq(buf.String(), "\n") {
		if strings.Contains(l, "GET /healthz (200)") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no info line for the request:\n%s", buf.String())
	}
	for _, want := range []string{"level=INFO", "sourceIPs=", "203.0.113.7", "127.0.0.1", "X-Test-Header: visible"} {
		if !strings.Contains(line, want) {
			t.Errorf("request log line lacks %q: %s", want, line)
		}
	}
	for _, hidden := range []string{"X-Secret", "Authorization", "Bearer"} {
		if strings.Contains(line, hidden) {
			t.Errorf("request log line shows %q: %s", hidden, line)
		}
	}
}

func TestSourceIPsRegexNeedsHeader(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.LogSourceIPs, cfg.LogSourceIPsRegex = true, "(.*)"
	logger := slog.New(slog.DiscardHandler)
	_, err := New(cfg, tlsconfig.NewLoader(logger, prometheus.NewRegistry()), logger)
	if err == nil || !strings.Contains(err.Error(), "-server.log-source-ips-regex") {
		t.Fatalf("got %v", err)
	}
}

// -server.path-prefix serves every route under the prefix, and nothing
// outside it.
func TestPathPrefix(t *testing.T) {
	s := startServer(t, func(c *Config) { c.PathPrefix = "/cortex/" })
	for path, want := range map[string]int{
		"/cortex/healthz": http.StatusOK,
		"/healthz":        http.StatusNotFound,
		"/cortexhealthz":  http.StatusNotFound,
	} {
		resp, err := s.client.Get("https://" + s.HTTPAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}

	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.PathPrefix = "cortex"
	logger := slog.New(slog.DiscardHandler)
	if _, err := New(cfg, tlsconfig.NewLoader(logger, prometheus.NewRegistry()), logger); err == nil || !strings.Contains(err.Error(), `-server.path-prefix="cortex": must start with /`) {
		t.Fatalf("got %v", err)
	}
}

// -api.http-request-headers-to-log and -api.request-id-header add the
// named headers and the request's ID to its log line; a request without
// an ID gets a random one.
func TestRequestLogHeadersAndID(t *testing.T) {
	var buf testkit.Buffer
	s := startServerLogging(t, buf.Logger(), func(c *Config) {
		c.RequestLogHeaders = []string{"x-dashboard"}
		c.RequestIDHeader = "X-Request-Id"
	})
	for _, id := range []string{"req-42", ""} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+s.HTTPAddr().String()+"/healthz?id="+id, nil)
		req.Header.Set("X-Dashboard", "ingest")
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	lines := strings.Split(buf.String(), "\n")
	var withID, withoutID string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "GET /healthz?id=req-42 (200)"):
			withID = l
		case strings.Contains(l, "GET /healthz?id= (200)"):
			withoutID = l
		}
	}
	if !strings.Contains(withID, "X-Dashboard=ingest") || !strings.Contains(withID, "request_id=req-42") {
		t.Errorf("line of the request with an ID: %q", withID)
	}
	if !strings.Contains(withoutID, "X-Dashboard=ingest") || !regexp.MustCompile(`request_id=[0-9a-f-]{36}`).MatchString(withoutID) {
		t.Errorf("line of the request without an ID: %q", withoutID)
	}
}
