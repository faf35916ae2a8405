package grpcclient

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// HealthCheckConfig is Cortex's healthcheck_config block of the ingester
// and store-gateway clients: each connection checks its server's gRPC
// health every Interval, and once UnhealthyThreshold checks in a row
// failed (an error, no answer within Timeout, or a status other than
// SERVING) its calls fail at once with Unavailable, until a check passes
// again, rather than wait for the call's own timeout.
type HealthCheckConfig struct {
	UnhealthyThreshold int64         `yaml:"unhealthy_threshold"`
	Interval           time.Duration `yaml:"interval"`
	Timeout            time.Duration `yaml:"timeout"`
}

// ConfigWithHealthCheck is a link's Config and its health checks, as
// Cortex nests them in one grpc_client_config block.
type ConfigWithHealthCheck struct {
	Config            `yaml:",inline"`
	HealthCheckConfig HealthCheckConfig `yaml:"healthcheck_config"`
}

// RegisterFlagsWithPrefix registers -<prefix>.healthcheck.*.
func (c *HealthCheckConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.Int64Var(&c.UnhealthyThreshold, prefix+".healthcheck.unhealthy-threshold", 0, "The number of consecutive failed health checks required before considering a target unhealthy. 0 means disabled.")
	f.DurationVar(&c.Timeout, prefix+".healthcheck.timeout", time.Second, "The amount of time during which no response from a target means a failed health check.")
	f.DurationVar(&c.Interval, prefix+".healthcheck.interval", 5*time.Second, "The approximate amount of time between health checks of an individual target.")
}

// Validate checks the flags when health checks are enabled.
func (c *HealthCheckConfig) Validate(prefix string) error {
	switch {
	case c.UnhealthyThreshold < 0:
		return fmt.Errorf("-%s.healthcheck.unhealthy-threshold must not be negative, got %d", prefix, c.UnhealthyThreshold)
	case c.UnhealthyThreshold == 0:
		return nil
	case c.Interval <= 0:
		return fmt.Errorf("-%s.healthcheck.interval must be positive, got %s", prefix, c.Interval)
	case c.Timeout <= 0:
		return fmt.Errorf("-%s.healthcheck.timeout must be positive, got %s", prefix, c.Timeout)
	}
	return nil
}

// Conn is a connection of a link, health-checked when its
// HealthCheckConfig enables it. Close stops the checks.
type Conn struct {
	*grpc.ClientConn
	health *healthMonitor
}

// Dial returns a connection to addr with cfg's dial options, then opts
// (the link's codec and interceptors, which run inside cfg's). With
// hc.UnhealthyThreshold > 0 it checks the health of service (the gRPC
// health service name; "" is the whole server) as HealthCheckConfig
// describes. The connection is made lazily, at the first call or check.
func Dial(addr string, cfg Config, hc HealthCheckConfig, service string, tls *tlsconfig.Client, logger *slog.Logger, opts ...grpc.DialOption) (*Conn, error) {
	var m *healthMonitor
	all := cfg.DialOptions(tls)
	if hc.UnhealthyThreshold > 0 {
		if hc.Interval <= 0 || hc.Timeout <= 0 {
			return nil, fmt.Errorf("health checks of %s: interval %s and timeout %s must be positive", addr, hc.Interval, hc.Timeout)
		}
		m = &healthMonitor{cfg: hc, service: service, addr: addr, logger: logger, stop: make(chan struct{}), done: make(chan struct{})}
		all = append(all, grpc.WithChainUnaryInterceptor(m.unary), grpc.WithChainStreamInterceptor(m.stream))
	}
	cc, err := grpc.NewClient(addr, append(all, opts...)...)
	if err != nil {
		return nil, err
	}
	if m != nil {
		go m.run(grpc_health_v1.NewHealthClient(cc))
	}
	return &Conn{ClientConn: cc, health: m}, nil
}

// Close stops the health checks and closes the connection.
func (c *Conn) Close() error {
	if c.health != nil {
		c.health.close()
	}
	return c.ClientConn.Close()
}

// healthMonitor checks one connection's server and refuses its calls
// while the server is unhealthy.
type healthMonitor struct {
	cfg     HealthCheckConfig
	service string
	addr    string
	logger  *slog.Logger

	failures atomic.Int64
	lastErr  atomic.Pointer[error]

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func (m *healthMonitor) run(client grpc_health_v1.HealthClient) {
	defer close(m.done)
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.record(m.check(client))
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

func (m *healthMonitor) check(client grpc_health_v1.HealthClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, err := client.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: m.service})
	if err != nil {
		return err
	}
	if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		return fmt.Errorf("failing healthcheck status: %s", resp.GetStatus())
	}
	return nil
}

func (m *healthMonitor) record(err error) {
	if err == nil {
		if m.failures.Swap(0) >= m.cfg.UnhealthyThreshold && m.logger != nil {
			m.logger.Info("instance healthy again", "address", m.addr)
		}
		return
	}
	m.lastErr.Store(&err)
	if m.failures.Add(1) == m.cfg.UnhealthyThreshold && m.logger != nil {
		m.logger.Warn("instance marked as unhealthy", "address", m.addr, "err", err)
	}
}

// unhealthy returns the error calls fail with while the server is
// unhealthy, nil otherwise.
func (m *healthMonitor) unhealthy() error {
	n := m.failures.Load()
	if n < m.cfg.UnhealthyThreshold {
		return nil
	}
	last := errors.New("unknown")
	if p := m.lastErr.Load(); p != nil {
		last = *p
	}
	return status.Errorf(codes.Unavailable, "instance %s marked as unhealthy: %d consecutive failed health checks, the last: %v", m.addr, n, last)
}

func (m *healthMonitor) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if !strings.HasPrefix(method, healthMethods) {
		if err := m.unhealthy(); err != nil {
			return err
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (m *healthMonitor) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if err := m.unhealthy(); err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}

func (m *healthMonitor) close() {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
}
