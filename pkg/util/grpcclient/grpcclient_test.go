package grpcclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/backoff"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpcencoding"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// echoServer answers any method by echoing the request, or with the
// status fail holds; it records the compression of the requests received.
type echoServer struct {
	calls atomic.Int64
	fail  atomic.Pointer[status.Status]

	mu          sync.Mutex
	compression []string
}

func (s *echoServer) handle(_ any, stream grpc.ServerStream) error {
	s.calls.Add(1)
	var req wrapperspb.StringValue
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	if st := s.fail.Load(); st != nil {
		return st.Err()
	}
	return stream.SendMsg(&req)
}

func (s *echoServer) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (s *echoServer) HandleRPC(_ context.Context, rs stats.RPCStats) {
	if h, ok := rs.(*stats.InHeader); ok {
		s.mu.Lock()
		s.compression = append(s.compression, h.Compression)
		s.mu.Unlock()
	}
}
func (s *echoServer) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (s *echoServer) HandleConn(context.Context, stats.ConnStats)                       {}

func (s *echoServer) lastCompression() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.compression) == 0 {
		return "<none>"
	}
	return s.compression[len(s.compression)-1]
}

// testLink is a mutual TLS gRPC server on loopback and the client side of
// its link.
type testLink struct {
	addr   string
	echo   *echoServer
	health *health.Server
	tls    *tlsconfig.Client
}

func newTestLink(t *testing.T) *testLink {
	t.Helper()
	pki := testkit.NewPKI(t, "root")
	srv, cli := pki.Server(t, "server"), pki.Client(t, "client")
	cert, err := tls.LoadX509KeyPair(srv.CertPath, srv.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(pki.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(pem)
	l := &testLink{echo: &echoServer{}, health: health.NewServer()}
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})),
		grpc.UnknownServiceHandler(l.echo.handle),
		grpc.StatsHandler(l.echo),
	)
	grpc_health_v1.RegisterHealthServer(gs, l.health)
	ln := testkit.Listen(t)
	l.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	l.tls, err = tlsconfig.NewClient("test", tlsconfig.ClientConfig{CertPath: cli.CertPath, KeyPath: cli.KeyPath, CAPath: pki.CAPath}, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// defaults returns a Config holding the flags' defaults.
func defaults(t *testing.T, args ...string) Config {
	t.Helper()
	var c Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlagsWithPrefix("test", Defaults{}, f)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate("test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func (l *testLink) dial(t *testing.T, cfg Config, hc HealthCheckConfig) *Conn {
	t.Helper()
	c, err := Dial(l.addr, cfg, hc, "", l.tls, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func call(ctx context.Context, c *Conn, msg string) (string, error) {
	var reply wrapperspb.StringValue
	err := c.Invoke(ctx, "/test.Echo/Echo", wrapperspb.String(msg), &reply)
	return reply.GetValue(), err
}

func TestFlagsAndDefaults(t *testing.T) {
	c := defaults(t)
	want := Config{
		MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 16 << 20,
		BackoffConfig:  backoff.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxRetries: 10},
		ConnectTimeout: 5 * time.Second,
		TLS:            c.TLS, // the TLS flags are tlsconfig's, tested there
	}
	if c != want {
		t.Fatalf("defaults %+v, want Cortex's %+v", c, want)
	}
	c = defaults(t, "-test.grpc-compression=zstd", "-test.grpc-client-rate-limit=2.5", "-test.grpc-client-rate-limit-burst=3",
		"-test.backoff-on-ratelimits=true", "-test.backoff-min-period=1s", "-test.backoff-max-period=2s", "-test.backoff-retries=4",
		"-test.connect-timeout=3s", "-test.grpc-max-recv-msg-size=10", "-test.grpc-max-send-msg-size=20", "-test.tls-ca-path=ca.crt")
	if c.GRPCCompression != "zstd" || c.RateLimit != 2.5 || c.RateLimitBurst != 3 || !c.BackoffOnRatelimits ||
		c.BackoffConfig != (backoff.Config{MinBackoff: time.Second, MaxBackoff: 2 * time.Second, MaxRetries: 4}) ||
		c.ConnectTimeout != 3*time.Second || c.MaxRecvMsgSize != 10 || c.MaxSendMsgSize != 20 || c.TLS.CAPath != "ca.crt" {
		t.Fatalf("flags not read: %+v", c)
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-test.grpc-compression=lz4"}, `-test.grpc-compression="lz4": supported values are gzip, snappy, snappy-block, zstd and empty (no compression)`},
		{[]string{"-test.grpc-client-rate-limit=0.5"}, "-test.grpc-client-rate-limit=0.5 with -test.grpc-client-rate-limit-burst=0 allows no call at all"},
		{[]string{"-test.grpc-client-rate-limit=-1"}, "-test.grpc-client-rate-limit must not be negative"},
		{[]string{"-test.backoff-on-ratelimits", "-test.backoff-min-period=2s", "-test.backoff-max-period=1s"}, "-test.backoff-min-period=2s and -test.backoff-max-period=1s: want 0 < min <= max"},
		{[]string{"-test.connect-timeout=-1s"}, "-test.connect-timeout must not be negative"},
		{[]string{"-test.grpc-max-send-msg-size=0"}, "-test.grpc-max-send-msg-size must be positive, got 0"},
	} {
		var c Config
		f := flag.NewFlagSet("test", flag.ContinueOnError)
		c.RegisterFlagsWithPrefix("test", Defaults{}, f)
		if err := f.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate("test"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	hc := HealthCheckConfig{UnhealthyThreshold: 2, Interval: 0, Timeout: time.Second}
	if err := hc.Validate("test"); err == nil || err.Error() != "-test.healthcheck.interval must be positive, got 0s" {
		t.Errorf("health check interval error %v", err)
	}
}

// Each compressor is negotiated with a real TLS server: the server sees
// the call's grpc-encoding and answers (with the same compressor).
func TestCompressionNegotiated(t *testing.T) {
	l := newTestLink(t)
	msg := strings.Repeat("cortex compresses this ", 1000)
	for _, name := range append([]string{""}, grpcencoding.Names...) {
		cfg := defaults(t, "-test.grpc-compression="+name)
		got, err := call(context.Background(), l.dial(t, cfg, HealthCheckConfig{}), msg)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if got != msg {
			t.Fatalf("%q: echo of %d bytes came back as %d", name, len(msg), len(got))
		}
		if got := l.echo.lastCompression(); got != name {
			t.Errorf("-test.grpc-compression=%q: the server received %q", name, got)
		}
	}
}

// Past its burst, a rate-limited client refuses a call whose deadline
// comes before its turn with ResourceExhausted, without sending it.
func TestRateLimitRefusesPastBurst(t *testing.T) {
	l := newTestLink(t)
	c := l.dial(t, defaults(t, "-test.grpc-client-rate-limit=0.001", "-test.grpc-client-rate-limit-burst=3"), HealthCheckConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := call(ctx, c, "x"); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	_, err := call(ctx, c, "x")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "gRPC client rate limit: rate: Wait(n=1) would exceed context deadline") {
		t.Fatalf("call past the burst: %v, want ResourceExhausted from the client's rate limit", err)
	}
	if n := l.echo.calls.Load(); n != 3 {
		t.Fatalf("server received %d calls, want the 3 within the burst", n)
	}
	// Health checks do not count against the limit.
	if _, err := grpc_health_v1.NewHealthClient(c).Check(ctx, &grpc_health_v1.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check refused by the rate limit: %v", err)
	}
}

// A call answered ResourceExhausted is retried -test.backoff-retries
// times in all; another error is not retried.
func TestBackoffRetriesResourceExhausted(t *testing.T) {
	l := newTestLink(t)
	l.echo.fail.Store(status.New(codes.ResourceExhausted, "ingestion rate limit reached"))
	c := l.dial(t, defaults(t, "-test.backoff-on-ratelimits", "-test.backoff-min-period=1ms", "-test.backoff-max-period=5ms", "-test.backoff-retries=4"), HealthCheckConfig{})
	_, err := call(context.Background(), c, "x")
	if err == nil || err.Error() != "rpc error: code = ResourceExhausted desc = ingestion rate limit reached (terminated after 4 retries)" {
		t.Fatalf("error %v, want the server's ResourceExhausted after 4 retries", err)
	}
	if n := l.echo.calls.Load(); n != 4 {
		t.Fatalf("server received %d calls, want 4", n)
	}

	l.echo.calls.Store(0)
	l.echo.fail.Store(status.New(codes.InvalidArgument, "bad series"))
	if _, err := call(context.Background(), c, "x"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("error %v, want InvalidArgument", err)
	}
	if n := l.echo.calls.Load(); n != 1 {
		t.Fatalf("an InvalidArgument call was sent %d times, want once", n)
	}

	// Without -test.backoff-on-ratelimits, no retry.
	l.echo.calls.Store(0)
	l.echo.fail.Store(status.New(codes.ResourceExhausted, "ingestion rate limit reached"))
	if _, err := call(context.Background(), l.dial(t, defaults(t), HealthCheckConfig{}), "x"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("error %v, want ResourceExhausted", err)
	}
	if n := l.echo.calls.Load(); n != 1 {
		t.Fatalf("without backoff the call was sent %d times, want once", n)
	}
}

// A server that accepts TCP connections but never answers the TLS
// handshake fails the call once -test.connect-timeout passes, well before
// the call's own deadline.
func TestConnectTimeout(t *testing.T) {
	ln := testkit.Listen(t)
	var conns sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func(c net.Conn) {
				defer conns.Done()
				<-stop
				_ = c.Close()
			}(c)
		}
	}()
	t.Cleanup(func() {
		close(stop)
		_ = ln.Close()
		conns.Wait()
	})
	l := newTestLink(t)
	c, err := Dial(ln.Addr().String(), defaults(t, "-test.connect-timeout=100ms"), HealthCheckConfig{}, "", l.tls, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = call(ctx, c, "x")
	if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
		t.Fatalf("call to a silent server: %v (context: %v), want Unavailable from the connect timeout", err, ctx.Err())
	}
}

// Once the server answers NOT_SERVING to -test.healthcheck.unhealthy-threshold
// checks in a row, the connection's calls fail at once with Unavailable
// without reaching it; a passing check lets them through again.
func TestHealthCheckMarksUnhealthy(t *testing.T) {
	l := newTestLink(t)
	l.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
	c := l.dial(t, defaults(t), HealthCheckConfig{UnhealthyThreshold: 2, Interval: 10 * time.Millisecond, Timeout: time.Second})
	if _, err := call(context.Background(), c, "x"); err != nil {
		t.Fatal(err)
	}
	l.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	var err error
	testkit.Eventually(t, 10*time.Second, "calls refused", func() bool {
		_, err = call(context.Background(), c, "x")
		return err != nil
	})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "instance "+l.addr+" marked as unhealthy") || !strings.Contains(err.Error(), "failing healthcheck status: NOT_SERVING") {
		t.Fatalf("error %v, want Unavailable naming the instance and NOT_SERVING", err)
	}
	before := l.echo.calls.Load()
	if _, err := call(context.Background(), c, "x"); status.Code(err) != codes.Unavailable || l.echo.calls.Load() != before {
		t.Fatalf("a call to an unhealthy instance: %v, server calls %d -> %d; want it refused unsent", err, before, l.echo.calls.Load())
	}
	l.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
	testkit.Eventually(t, 10*time.Second, "calls accepted again", func() bool {
		_, err = call(context.Background(), c, "x")
		return err == nil
	})
}

// Threshold 0 disables the checks: a NOT_SERVING server still gets calls.
func TestHealthCheckDisabled(t *testing.T) {
	l := newTestLink(t)
	l.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	c := l.dial(t, defaults(t), HealthCheckConfig{UnhealthyThreshold: 0, Interval: time.Millisecond, Timeout: time.Second})
	if c.health != nil {
		t.Fatal("a health monitor runs with threshold 0")
	}
	if _, err := call(context.Background(), c, "x"); err != nil {
		t.Fatal(err)
	}
}
