// Package server runs the HTTP and gRPC servers every Cortex process has,
// with TLS from pkg/tlsconfig, the probe endpoints, gRPC health per
// service, and graceful shutdown.
//
// It serves what it is given: it must not import component packages, and
// it mounts no route besides the probe server's (pkg/api lists the rest).
package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"google.golang.org/grpc"
	channelzsvc "google.golang.org/grpc/channelz/service"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/tracing"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
)

// Config holds the server flags, -server.*, with Cortex's YAML names.
type Config struct {
	HTTPListenNetwork   string `yaml:"http_listen_network"`
	HTTPListenAddress   string `yaml:"http_listen_address"`
	HTTPListenPort      int    `yaml:"http_listen_port"`
	GRPCListenNetwork   string `yaml:"grpc_listen_network"`
	GRPCListenAddress   string `yaml:"grpc_listen_address"`
	GRPCListenPort      int    `yaml:"grpc_listen_port"`
	HealthListenAddress string `yaml:"health_listen_address"`
	HealthListenPort    int    `yaml:"health_listen_port"`

	HTTPTLS tlsconfig.ServerConfig  `yaml:"http_tls_config"`
	GRPCTLS tlsconfig.ServerConfig  `yaml:"grpc_tls_config"`
	TLS     tlsconfig.ServerOptions `yaml:",inline"`

	HTTPReadTimeout         time.Duration `yaml:"http_server_read_timeout"`
	HTTPReadHeaderTimeout   time.Duration `yaml:"http_server_read_header_timeout"`
	HTTPWriteTimeout        time.Duration `yaml:"http_server_write_timeout"`
	HTTPIdleTimeout         time.Duration `yaml:"http_server_idle_timeout"`
	HTTPConnLimit           int           `yaml:"http_listen_conn_limit"`
	GRPCConnLimit           int           `yaml:"grpc_listen_conn_limit"`
	HealthConnLimit         int           `yaml:"health_server_conn_limit"`
	GRPCMaxConnectionIdle   time.Duration `yaml:"grpc_server_max_connection_idle"`
	GRPCKeepaliveTime       time.Duration `yaml:"grpc_server_keepalive_time"`
	GRPCKeepaliveTimeout    time.Duration `yaml:"grpc_server_keepalive_timeout"`
	GRPCMaxRecvMsgSize      int           `yaml:"grpc_server_max_recv_msg_size"`
	GRPCMaxSendMsgSize      int           `yaml:"grpc_server_max_send_msg_size"`
	GRPCMaxConcurrentStream uint          `yaml:"grpc_server_max_concurrent_streams"`
	GracefulShutdownTimeout time.Duration `yaml:"graceful_shutdown_timeout"`

	GRPCNumStreamWorkers         int           `yaml:"grpc_server_num_stream_workers"`
	GRPCMaxConnectionAge         time.Duration `yaml:"grpc_server_max_connection_age"`
	GRPCMaxConnectionAgeGrace    time.Duration `yaml:"grpc_server_max_connection_age_grace"`
	GRPCMinTimeBetweenPings      time.Duration `yaml:"grpc_server_min_time_between_pings"`
	GRPCPingWithoutStreamAllowed bool          `yaml:"grpc_server_ping_without_stream_allowed"`
	EnableChannelz               bool          `yaml:"enable_channelz"`

	// RegisterInstrumentation is read by pkg/api, which mounts /metrics
	// and /debug/pprof.
	RegisterInstrumentation bool   `yaml:"register_instrumentation"`
	PathPrefix              string `yaml:"http_path_prefix"`

	LogLevel                     string `yaml:"log_level"`
	LogFormat                    string `yaml:"log_format"`
	LogSourceIPs                 bool   `yaml:"log_source_ips_enabled"`
	LogSourceIPsHeader           string `yaml:"log_source_ips_header"`
	LogSourceIPsRegex            string `yaml:"log_source_ips_regex"`
	LogRequestHeaders            bool   `yaml:"log_request_headers"`
	LogRequestAtInfoLevel        bool   `yaml:"log_request_at_info_level_enabled"`
	LogRequestExcludeHeadersList string `yaml:"log_request_exclude_headers_list"`
	// RequestLogHeaders and RequestIDHeader are -api.http-request-headers-to-log
	// and -api.request-id-header, which pkg/cortex sets from the api block.
	RequestLogHeaders []string `yaml:"-"`
	RequestIDHeader   string   `yaml:"-"`

	GOGC int `yaml:"gogc"`

	// healthListener, set by tests, is the probe port already bound
	// (port 0 means no probe port, so a test cannot ask for any port).
	healthListener net.Listener
}

// RegisterFlags registers the -server.* and -log.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.HTTPListenNetwork, "server.http-listen-network", "tcp", "HTTP server listen network: tcp, tcp4, tcp6 or unix. With unix, the socket's path is <address>:<port>, as in Cortex.")
	f.StringVar(&c.GRPCListenNetwork, "server.grpc-listen-network", "tcp", "gRPC server listen network: tcp, tcp4, tcp6 or unix. With unix, the socket's path is <address>:<port>, as in Cortex.")
	f.StringVar(&c.HTTPListenAddress, "server.http-listen-address", "", "HTTP server listen address. Empty means every interface.")
	f.IntVar(&c.HTTPListenPort, "server.http-listen-port", 9009, "HTTP server listen port.")
	f.StringVar(&c.GRPCListenAddress, "server.grpc-listen-address", "", "gRPC server listen address. Empty means every interface.")
	f.IntVar(&c.GRPCListenPort, "server.grpc-listen-port", 9095, "gRPC server listen port.")
	f.StringVar(&c.HealthListenAddress, "server.health-listen-address", "", "Listen address of the plain-HTTP probe server, which serves only /ready and /healthz, for probes that cannot present a client certificate.")
	f.IntVar(&c.HealthListenPort, "server.health-listen-port", 0, "Listen port of the plain-HTTP probe server. 0 turns it off.")
	c.HTTPTLS.RegisterFlagsWithPrefix("server.http", f)
	c.GRPCTLS.RegisterFlagsWithPrefix("server.grpc", f)
	c.TLS.RegisterFlags(f)
	f.DurationVar(&c.HTTPReadTimeout, "server.http-read-timeout", 30*time.Second, "Read timeout for HTTP requests.")
	f.DurationVar(&c.HTTPReadHeaderTimeout, "server.http-read-header-timeout", 10*time.Second, "Time a connection gets to send a request's headers, on the HTTP port and the probe port, and to set up a gRPC connection (after the TLS handshake, which -server.tls-handshake-timeout bounds). 0 uses -server.http-read-timeout.")
	f.DurationVar(&c.HTTPWriteTimeout, "server.http-write-timeout", 30*time.Second, "Write timeout for HTTP responses, on the HTTP port and the probe port.")
	f.DurationVar(&c.HTTPIdleTimeout, "server.http-idle-timeout", 120*time.Second, "Idle timeout of HTTP keep-alive connections, on the HTTP port and the probe port.")
	// Each listener has its own cap, below the process's descriptor limit,
	// so that connections piling up on one port cannot take the
	// descriptors another port needs.
	f.IntVar(&c.HTTPConnLimit, "server.http-conn-limit", 4096, "Maximum number of simultaneous connections to the HTTP port; more wait in the kernel's accept queue. 0 means no limit.")
	f.IntVar(&c.GRPCConnLimit, "server.grpc-conn-limit", 4096, "Maximum number of simultaneous connections to the gRPC port; more wait in the kernel's accept queue. 0 means no limit.")
	f.IntVar(&c.HealthConnLimit, "server.health-conn-limit", 128, "Maximum number of simultaneous connections to the plain-HTTP probe port (-server.health-listen-port); more wait in the kernel's accept queue. 0 means no limit.")
	f.DurationVar(&c.GRPCMaxConnectionIdle, "server.grpc.keepalive.max-connection-idle", 15*time.Minute, "Close a gRPC connection that had no call for this long (clients re-dial on their next call). 0 means never.")
	f.DurationVar(&c.GRPCKeepaliveTime, "server.grpc.keepalive.time", time.Minute, "Ping a gRPC client after this long without activity on its connection.")
	f.DurationVar(&c.GRPCKeepaliveTimeout, "server.grpc.keepalive.timeout", 20*time.Second, "Close a gRPC connection whose client does not answer a ping within this long.")
	f.IntVar(&c.GRPCMaxRecvMsgSize, "server.grpc-max-recv-msg-size-bytes", 100<<20, "Largest gRPC message the server accepts.")
	f.IntVar(&c.GRPCMaxSendMsgSize, "server.grpc-max-send-msg-size-bytes", 100<<20, "Largest gRPC message the server sends.")
	f.UintVar(&c.GRPCMaxConcurrentStream, "server.grpc-max-concurrent-streams", 100, "Concurrent streams per gRPC connection.")
	f.DurationVar(&c.GracefulShutdownTimeout, "server.graceful-shutdown-timeout", 30*time.Second, "Time in-flight requests get to finish on shutdown.")
	f.IntVar(&c.GRPCNumStreamWorkers, "server.grpc_server-num-stream-workers", 0, "Number of goroutines the gRPC server keeps to run incoming streams, instead of one new goroutine per stream. 0 starts a goroutine per stream.")
	f.DurationVar(&c.GRPCMaxConnectionAge, "server.grpc.keepalive.max-connection-age", time.Duration(math.MaxInt64), "Close a gRPC connection after it has existed this long (clients re-dial), which spreads clients over servers added since. The default is infinity.")
	f.DurationVar(&c.GRPCMaxConnectionAgeGrace, "server.grpc.keepalive.max-connection-age-grace", time.Duration(math.MaxInt64), "Time the calls still running on a connection past -server.grpc.keepalive.max-connection-age get before it is closed. The default is infinity.")
	f.DurationVar(&c.GRPCMinTimeBetweenPings, "server.grpc.keepalive.min-time-between-pings", 10*time.Second, "Shortest interval between a client's keepalive pings: a client pinging more often gets GOAWAY (too_many_pings) and its connection is closed.")
	f.BoolVar(&c.GRPCPingWithoutStreamAllowed, "server.grpc.keepalive.ping-without-stream-allowed", true, "Allow keepalive pings on a connection with no call in flight. When false, such a ping counts as too many pings and the connection is closed with GOAWAY.")
	f.BoolVar(&c.EnableChannelz, "server.enable-channelz", false, "Serve gRPC's channelz service (grpc.channelz.v1.Channelz, for grpcdebug) on the gRPC port. It shows every connection's peer and certificate, so with -auth.client-tenants-file only identities allowed every tenant may call it.")
	f.BoolVar(&c.RegisterInstrumentation, "server.register-instrumentation", true, "Serve /metrics and /debug/pprof on the HTTP port.")
	f.StringVar(&c.PathPrefix, "server.path-prefix", "", "Base path of every HTTP route (e.g. /cortex): /cortex/ready, /cortex/api/v1/push, ... Paths outside it get 404. The probe port (-server.health-listen-port) keeps its paths.")
	f.StringVar(&c.LogLevel, "log.level", "info", "Log level: debug, info, warn, error.")
	f.StringVar(&c.LogFormat, "log.format", "logfmt", "Log format: logfmt or json.")
	f.BoolVar(&c.LogSourceIPs, "server.log-source-ips-enabled", false, "Add the client's source IPs (the peer address, and the Forwarded, X-Real-IP and X-Forwarded-For headers) to each HTTP request's log line, as sourceIPs.")
	f.StringVar(&c.LogSourceIPsHeader, "server.log-source-ips-header", "", "Header that holds the source IPs, instead of Forwarded, X-Real-IP and X-Forwarded-For. Only with -server.log-source-ips-enabled.")
	f.StringVar(&c.LogSourceIPsRegex, "server.log-source-ips-regex", "", "Regular expression whose first group is the source IP in -server.log-source-ips-header. Only with -server.log-source-ips-enabled.")
	f.BoolVar(&c.LogRequestHeaders, "server.log-request-headers", false, "Add each HTTP request's headers to its log line (never Authorization, Cookie, X-Csrf-Token, X-Grafana-Id nor X-Access-Token).")
	f.BoolVar(&c.LogRequestAtInfoLevel, "server.log-request-at-info-level-enabled", false, "Log each HTTP request at info level instead of debug. Failed requests (5xx) are logged at warn level either way.")
	f.StringVar(&c.LogRequestExcludeHeadersList, "server.log-request-headers-exclude-list", "", "Comma-separated headers left out of the request log lines of -server.log-request-headers.")
	f.IntVar(&c.GOGC, "server.gogc", 75, "Garbage collector target percentage (Go's GOGC): the heap may grow this much beyond live data before a collection. 75, Prometheus's default, keeps the ingesters' memory about 13% lower than Go's 100 for about 5% more CPU. The GOGC environment variable, when set, takes precedence. -1 turns the collector off.")
}

// Server is a process's HTTP and gRPC servers. Components add routes to HTTP
// and services to GRPC before the server starts.
type Server struct {
	cfg    Config
	logger *slog.Logger

	HTTP   *http.ServeMux
	GRPC   *grpc.Server
	Health *health.Server

	httpServer   *http.Server
	healthServer *http.Server
	httpLis      net.Listener
	grpcLis      net.Listener
	healthLis    net.Listener

	mu    sync.Mutex
	ready func() error

	// cancelRequests ends the contexts of the HTTP requests still in
	// flight when the graceful shutdown timeout is up.
	cancelRequests context.CancelFunc
}

// New validates the TLS settings, loads the certificates and binds the
// listeners, so a busy port or a bad certificate fails at startup.
// grpcOpts are added to the gRPC server's options (interceptors that check
// the calls' tenants).
func New(cfg Config, loader *tlsconfig.Loader, logger *slog.Logger, grpcOpts ...grpc.ServerOption) (*Server, error) {
	for _, l := range []struct {
		flag string
		n    int
	}{{"server.http-conn-limit", cfg.HTTPConnLimit}, {"server.grpc-conn-limit", cfg.GRPCConnLimit}, {"server.health-conn-limit", cfg.HealthConnLimit}} {
		if l.n < 0 {
			return nil, fmt.Errorf("-%s must be 0 (no limit) or positive, got %d", l.flag, l.n)
		}
	}
	if cfg.HTTPReadHeaderTimeout <= 0 {
		cfg.HTTPReadHeaderTimeout = cfg.HTTPReadTimeout
	}
	if cfg.GRPCNumStreamWorkers < 0 {
		return nil, fmt.Errorf("-server.grpc_server-num-stream-workers must be 0 (a goroutine per stream) or positive, got %d", cfg.GRPCNumStreamWorkers)
	}
	if err := validatePathPrefix(cfg.PathPrefix); err != nil {
		return nil, err
	}
	requestLog, err := newRequestLog(cfg, logger)
	if err != nil {
		return nil, err
	}
	httpTLS, err := tlsconfig.NewServer("http", "server.http", cfg.HTTPTLS, cfg.TLS, loader)
	if err != nil {
		return nil, err
	}
	grpcTLS, err := tlsconfig.NewServer("grpc", "server.grpc", cfg.GRPCTLS, cfg.TLS, loader)
	if err != nil {
		return nil, err
	}

	s := &Server{cfg: cfg, logger: logger, HTTP: http.NewServeMux(), Health: health.NewServer()}
	s.ready = func() error { return errors.New("starting") }
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.GRPCMaxRecvMsgSize),
		grpc.MaxSendMsgSize(cfg.GRPCMaxSendMsgSize),
		grpc.MaxConcurrentStreams(uint32(cfg.GRPCMaxConcurrentStream)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             cfg.GRPCMinTimeBetweenPings,
			PermitWithoutStream: cfg.GRPCPingWithoutStreamAllowed,
		}),
		// Bounds the TLS handshake and the HTTP/2 preface together.
		grpc.ConnectionTimeout(handshakeTimeout(cfg.TLS) + cfg.HTTPReadHeaderTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     cfg.GRPCMaxConnectionIdle,
			MaxConnectionAge:      cfg.GRPCMaxConnectionAge,
			MaxConnectionAgeGrace: cfg.GRPCMaxConnectionAgeGrace,
			Time:                  cfg.GRPCKeepaliveTime,
			Timeout:               cfg.GRPCKeepaliveTimeout,
		}),
		grpc.ForceServerCodecV2(grpccodec.Codec{}),
	}
	if cfg.GRPCNumStreamWorkers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(cfg.GRPCNumStreamWorkers)))
	}
	opts = append(opts, tenant.ServerInterceptors()...)
	opts = append(opts, tracing.GRPCServerOptions()...)
	opts = append(opts, grpcOpts...)
	if grpcTLS != nil {
		opts = append(opts, grpc.Creds(grpcTLS.GRPCCredentials()))
	}
	s.GRPC = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	if cfg.EnableChannelz {
		channelzsvc.RegisterChannelzServiceToServer(s.GRPC)
	}

	if s.httpLis, err = listen("server.http-listen", cfg.HTTPListenNetwork, cfg.HTTPListenAddress, cfg.HTTPListenPort); err != nil {
		return nil, err
	}
	if s.grpcLis, err = listen("server.grpc-listen", cfg.GRPCListenNetwork, cfg.GRPCListenAddress, cfg.GRPCListenPort); err != nil {
		s.httpLis.Close()
		return nil, err
	}
	// The caps count connections from accept to close, TLS handshakes
	// included, so they sit under the TLS listener.
	s.httpLis = limit(s.httpLis, cfg.HTTPConnLimit)
	s.grpcLis = limit(s.grpcLis, cfg.GRPCConnLimit)
	if httpTLS != nil {
		s.httpLis = httpTLS.Listener(s.httpLis, []string{"h2", "http/1.1"})
	}
	if cfg.healthListener != nil {
		s.healthLis = limit(cfg.healthListener, cfg.HealthConnLimit)
	} else if cfg.HealthListenPort != 0 {
		if s.healthLis, err = listen("server.health-listen", "tcp", cfg.HealthListenAddress, cfg.HealthListenPort); err != nil {
			s.httpLis.Close()
			s.grpcLis.Close()
			return nil, err
		}
		s.healthLis = limit(s.healthLis, cfg.HealthConnLimit)
	}

	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	requestsCtx, cancelRequests := context.WithCancel(context.Background())
	s.cancelRequests = cancelRequests
	s.httpServer = &http.Server{
		Handler:           tracing.HTTPServer(requestLog.wrap(withPathPrefix(cfg.PathPrefix, s.HTTP))),
		ReadTimeout:       cfg.HTTPReadTimeout,
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		// The query routes move their own write deadline to
		// -querier.timeout, which is longer by default.
		WriteTimeout: cfg.HTTPWriteTimeout,
		IdleTimeout:  cfg.HTTPIdleTimeout,
		ErrorLog:     errLog,
		BaseContext:  func(net.Listener) context.Context { return requestsCtx },
	}
	if s.healthLis != nil {
		probes := http.NewServeMux()
		probes.HandleFunc("GET /ready", s.serveReady)
		probes.HandleFunc("GET /healthz", serveHealthz)
		// Probes send no body and get a line back: the whole request
		// must come within the header timeout.
		s.healthServer = &http.Server{
			Handler:           probes,
			ReadTimeout:       cfg.HTTPReadHeaderTimeout,
			ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
			WriteTimeout:      cfg.HTTPWriteTimeout,
			IdleTimeout:       cfg.HTTPIdleTimeout,
			ErrorLog:          errLog,
		}
	}
	return s, nil
}

// handshakeTimeout is -server.tls-handshake-timeout as pkg/tlsconfig
// applies it.
func handshakeTimeout(o tlsconfig.ServerOptions) time.Duration {
	if o.HandshakeTimeout <= 0 {
		return 10 * time.Second
	}
	return o.HandshakeTimeout
}

// listen binds network (tcp, tcp4, tcp6 or unix) at address:port; a unix
// socket's path is address:port too, as dskit's server makes it.
func listen(flagPrefix, network, address string, port int) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("-%s-network=%q: must be tcp, tcp4, tcp6 or unix", flagPrefix, network)
	}
	addr := net.JoinHostPort(address, strconv.Itoa(port))
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("-%s-network=%s -%s-address=%q -%s-port=%d: %w", flagPrefix, network, flagPrefix, address, flagPrefix, port, err)
	}
	return l, nil
}

// HTTPAddr, GRPCAddr and HealthAddr return the bound addresses.
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }
func (s *Server) HealthAddr() net.Addr {
	if s.healthLis == nil {
		return nil
	}
	return s.healthLis.Addr()
}

// ReadyHandler serves /ready: 200 while the readiness check passes, else
// 503 with the reason.
func (s *Server) ReadyHandler() http.Handler { return http.HandlerFunc(s.serveReady) }

// HealthzHandler serves /healthz: 200 while the process serves HTTP.
func (s *Server) HealthzHandler() http.Handler { return http.HandlerFunc(serveHealthz) }

// TrackHealth makes the gRPC health status of the service named name (its
// full name, e.g. cortex.Ingester) follow svc: SERVING while svc runs,
// NOT_SERVING before and after. Clients check the service they call, so a
// process that is not ready for an unrelated reason (a ring it has not
// joined yet, a query-frontend with no querier) still takes calls of a
// service that runs.
func (s *Server) TrackHealth(name string, svc services.Service) {
	set := func(st healthpb.HealthCheckResponse_ServingStatus) { s.Health.SetServingStatus(name, st) }
	notServing := func() { set(healthpb.HealthCheckResponse_NOT_SERVING) }
	notServing()
	svc.AddListener(services.NewListener(nil,
		func() { set(healthpb.HealthCheckResponse_SERVING) },
		func(services.State) { notServing() },
		func(services.State) { notServing() },
		func(services.State, error) { notServing() },
	))
	if svc.State() == services.Running {
		set(healthpb.HealthCheckResponse_SERVING)
	}
}

// SetReadiness sets the check behind /ready and the gRPC health service's
// overall status (the empty service name).
func (s *Server) SetReadiness(ready func() error) {
	s.mu.Lock()
	s.ready = ready
	s.mu.Unlock()
}

func (s *Server) readiness() error {
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	err := ready()
	if err == nil {
		s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	} else {
		s.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	return err
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	if err := s.readiness(); err != nil {
		http.Error(w, "Not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func serveHealthz(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }

// Service returns the server's lifecycle: serving from start until stopped,
// then draining in-flight requests within the graceful shutdown timeout.
func (s *Server) Service() services.Service {
	return services.NewBasicService(nil, s.serve, s.shutdown)
}

func (s *Server) serve(ctx context.Context) error {
	errs := make(chan error, 3)
	go func() { errs <- ignoreClosed(s.httpServer.Serve(s.httpLis)) }()
	go func() { errs <- ignoreClosed(s.GRPC.Serve(s.grpcLis)) }()
	if s.healthServer != nil {
		go func() { errs <- ignoreClosed(s.healthServer.Serve(s.healthLis)) }()
	}
	s.logger.Info("server listening", "http", s.HTTPAddr().String(), "grpc", s.GRPCAddr().String())
	// Keep the gRPC health status current for clients that only watch it.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		_ = s.readiness()
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if err != nil {
				return fmt.Errorf("server stopped serving: %w", err)
			}
		case <-tick.C:
		}
	}
}

func (s *Server) shutdown(_ error) error {
	s.Health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.GracefulShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(done)
	}()
	err := s.httpServer.Shutdown(ctx)
	if err != nil {
		// Out of time: cancel what is still running (a long query
		// stops at its next check) and close its connections.
		s.logger.Warn("graceful shutdown timed out, canceling in-flight HTTP requests", "timeout", s.cfg.GracefulShutdownTimeout)
		s.cancelRequests()
		_ = s.httpServer.Close()
	}
	if s.healthServer != nil {
		_ = s.healthServer.Shutdown(ctx)
	}
	select {
	case <-done:
	case <-ctx.Done():
		s.logger.Warn("graceful shutdown timed out, closing remaining gRPC streams", "timeout", s.cfg.GracefulShutdownTimeout)
		s.GRPC.Stop()
	}
	return err
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}
