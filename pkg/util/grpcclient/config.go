// Package grpcclient holds what every gRPC client link shares: Cortex's
// grpcclient.Config flags (-<prefix>.grpc-max-*-msg-size,
// -<prefix>.grpc-compression, -<prefix>.grpc-client-rate-limit[-burst],
// -<prefix>.backoff-*, -<prefix>.connect-timeout and the link's TLS),
// the health checks of -<prefix>.healthcheck.*, and the dial options
// that honour them.
package grpcclient

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/grafana/dskit/backoff"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/keepalive"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/tracing"
	"github.com/cortex-tls/cortex/pkg/util/grpcencoding"
)

// Config is Cortex's grpc_client_config block: one client link's message
// sizes, compression, client-side rate limit, retries of rate-limited
// calls, connect timeout and TLS.
type Config struct {
	MaxRecvMsgSize  int     `yaml:"max_recv_msg_size"`
	MaxSendMsgSize  int     `yaml:"max_send_msg_size"`
	GRPCCompression string  `yaml:"grpc_compression"`
	RateLimit       float64 `yaml:"rate_limit"`
	RateLimitBurst  int     `yaml:"rate_limit_burst"`

	BackoffOnRatelimits bool           `yaml:"backoff_on_ratelimits"`
	BackoffConfig       backoff.Config `yaml:"backoff_config"`

	TLS tlsconfig.ClientConfig `yaml:",inline"`

	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// Defaults are the flag defaults that differ between links.
type Defaults struct {
	// MaxSendMsgSize is -<prefix>.grpc-max-send-msg-size's default;
	// 0 means Cortex's 16 MiB.
	MaxSendMsgSize int
	// GRPCCompression is -<prefix>.grpc-compression's default.
	GRPCCompression string
}

// RegisterFlagsWithPrefix registers the -<prefix>.* flags with Cortex's
// defaults, but for those d gives.
func (c *Config) RegisterFlagsWithPrefix(prefix string, d Defaults, f *flag.FlagSet) {
	if d.MaxSendMsgSize == 0 {
		d.MaxSendMsgSize = 16 << 20
	}
	f.IntVar(&c.MaxRecvMsgSize, prefix+".grpc-max-recv-msg-size", 100<<20, "gRPC client max receive message size (bytes).")
	f.IntVar(&c.MaxSendMsgSize, prefix+".grpc-max-send-msg-size", d.MaxSendMsgSize, "gRPC client max send message size (bytes).")
	RegisterCompressionFlag(&c.GRPCCompression, prefix, d.GRPCCompression, f)
	f.Float64Var(&c.RateLimit, prefix+".grpc-client-rate-limit", 0, "Rate limit for gRPC client, in calls per second; 0 means disabled. A call that would wait past its deadline for its turn fails with ResourceExhausted.")
	f.IntVar(&c.RateLimitBurst, prefix+".grpc-client-rate-limit-burst", 0, "Rate limit burst for gRPC client: calls allowed at once above the rate. 0 means the rate, rounded down.")
	f.BoolVar(&c.BackoffOnRatelimits, prefix+".backoff-on-ratelimits", false, "Enable backoff and retry when we hit ratelimits: a call the server (or the client's own rate limit) answers with ResourceExhausted is retried after an exponential backoff.")
	c.BackoffConfig.RegisterFlagsWithPrefix(prefix, f)
	c.TLS.RegisterFlagsWithPrefix(prefix, f)
	RegisterConnectTimeoutFlag(&c.ConnectTimeout, prefix, f)
}

// RegisterCompressionFlag registers -<prefix>.grpc-compression into p, for
// the links that have it without the rest of Config.
func RegisterCompressionFlag(p *string, prefix, def string, f *flag.FlagSet) {
	f.StringVar(p, prefix+".grpc-compression", def, "Use compression when sending messages. Supported values are: 'gzip', 'snappy', 'snappy-block' ,'zstd' and '' (disable compression)")
}

// RegisterConnectTimeoutFlag registers -<prefix>.connect-timeout into p,
// for the links that have it without the rest of Config.
func RegisterConnectTimeoutFlag(p *time.Duration, prefix string, f *flag.FlagSet) {
	f.DurationVar(p, prefix+".connect-timeout", 5*time.Second, "The maximum amount of time to establish a connection. A value of 0 means using default gRPC client connect timeout 20s.")
}

// Validate checks the flags, naming them with prefix.
func (c *Config) Validate(prefix string) error {
	var errs []error
	if c.MaxRecvMsgSize <= 0 {
		errs = append(errs, fmt.Errorf("-%s.grpc-max-recv-msg-size must be positive, got %d", prefix, c.MaxRecvMsgSize))
	}
	if c.MaxSendMsgSize <= 0 {
		errs = append(errs, fmt.Errorf("-%s.grpc-max-send-msg-size must be positive, got %d", prefix, c.MaxSendMsgSize))
	}
	errs = append(errs, grpcencoding.Validate(prefix+".grpc-compression", c.GRPCCompression))
	switch {
	case c.RateLimit < 0:
		errs = append(errs, fmt.Errorf("-%s.grpc-client-rate-limit must not be negative, got %g", prefix, c.RateLimit))
	case c.RateLimitBurst < 0:
		errs = append(errs, fmt.Errorf("-%s.grpc-client-rate-limit-burst must not be negative, got %d", prefix, c.RateLimitBurst))
	case c.RateLimit > 0 && c.burst() < 1:
		errs = append(errs, fmt.Errorf("-%s.grpc-client-rate-limit=%g with -%s.grpc-client-rate-limit-burst=0 allows no call at all: set the burst to at least 1", prefix, c.RateLimit, prefix))
	}
	if c.BackoffOnRatelimits {
		if c.BackoffConfig.MinBackoff <= 0 || c.BackoffConfig.MaxBackoff < c.BackoffConfig.MinBackoff {
			errs = append(errs, fmt.Errorf("-%s.backoff-min-period=%s and -%s.backoff-max-period=%s: want 0 < min <= max", prefix, c.BackoffConfig.MinBackoff, prefix, c.BackoffConfig.MaxBackoff))
		}
		if c.BackoffConfig.MaxRetries < 0 {
			errs = append(errs, fmt.Errorf("-%s.backoff-retries must not be negative, got %d", prefix, c.BackoffConfig.MaxRetries))
		}
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("-%s.connect-timeout must not be negative, got %s", prefix, c.ConnectTimeout))
	}
	return errors.Join(errs...)
}

// burst is the rate limiter's bucket size: Cortex's default is the rate.
func (c *Config) burst() int {
	if c.RateLimitBurst > 0 {
		return c.RateLimitBurst
	}
	return int(c.RateLimit)
}

// CallOptions are the options every call of the link sends with: the
// message sizes and the compressor.
func (c *Config) CallOptions() []grpc.CallOption {
	opts := []grpc.CallOption{grpc.MaxCallRecvMsgSize(c.MaxRecvMsgSize), grpc.MaxCallSendMsgSize(c.MaxSendMsgSize)}
	if c.GRPCCompression != "" {
		opts = append(opts, grpc.UseCompressor(c.GRPCCompression))
	}
	return opts
}

// DialOptions returns the options of one connection of the link: tls's
// credentials (nil dials plaintext), the call options, the connect
// timeout, keepalives finding a dead peer within half a minute, the
// tracing of every call while the process traces, and, as
// the outermost unary interceptors, the rate limiter then the retries of
// rate-limited calls. Each call returns a rate limiter of its own: the
// limit is per connection, as in Cortex.
func (c *Config) DialOptions(tls *tlsconfig.Client) []grpc.DialOption {
	opts := []grpc.DialOption{
		tls.GRPCDialOption(),
		grpc.WithDefaultCallOptions(c.CallOptions()...),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}
	opts = append(opts, tracing.GRPCDialOptions()...)
	if c.ConnectTimeout > 0 {
		opts = append(opts, grpc.WithConnectParams(grpc.ConnectParams{Backoff: grpcbackoff.DefaultConfig, MinConnectTimeout: c.ConnectTimeout}))
	}
	var interceptors []grpc.UnaryClientInterceptor
	if c.RateLimit > 0 {
		interceptors = append(interceptors, newRateLimiter(c.RateLimit, c.burst()))
	}
	if c.BackoffOnRatelimits {
		interceptors = append(interceptors, newBackoffRetry(c.BackoffConfig))
	}
	if len(interceptors) > 0 {
		opts = append(opts, grpc.WithChainUnaryInterceptor(interceptors...))
	}
	return opts
}
