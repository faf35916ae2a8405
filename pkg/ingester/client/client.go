package client

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
)

// TLSPrefix is the flag prefix of the ingester client link, as the guide names it.
const TLSPrefix = "ingester.client"

// Config configures the connections from distributors and queriers to
// ingesters: -ingester.client.*.
type Config struct {
	TLS                 tlsconfig.ClientConfig `yaml:",inline"`
	MaxRecvMsgSize      int                    `yaml:"grpc_max_recv_msg_size"`
	MaxSendMsgSize      int                    `yaml:"grpc_max_send_msg_size"`
	HealthCheckInterval time.Duration          `yaml:"health_check_interval"`
	HealthCheckTimeout  time.Duration          `yaml:"health_check_timeout"`
	// GRPCCompression and HealthCheckIngesters are Cortex's
	// grpc_client_config.grpc_compression and distributor.pool.health_check_ingesters.
	GRPCCompression      string `yaml:"grpc_compression"`
	HealthCheckIngesters bool   `yaml:"health_check_ingesters"`
}

// RegisterFlags registers the -ingester.client.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.TLS.RegisterFlagsWithPrefix(TLSPrefix, f)
	f.IntVar(&c.MaxRecvMsgSize, TLSPrefix+".grpc-max-recv-msg-size", 100<<20, "Largest gRPC message accepted from an ingester.")
	f.IntVar(&c.MaxSendMsgSize, TLSPrefix+".grpc-max-send-msg-size", 100<<20, "Largest gRPC message sent to an ingester.")
	f.DurationVar(&c.HealthCheckInterval, TLSPrefix+".health-check-interval", 15*time.Second, "How often pooled ingester connections are health-checked; a connection failing its checks for a minute, or whose ingester left the ring, is closed.")
	f.DurationVar(&c.HealthCheckTimeout, TLSPrefix+".health-check-timeout", 5*time.Second, "Timeout of one health check.")
	f.StringVar(&c.GRPCCompression, TLSPrefix+".grpc-compression", "", "Compression of the messages sent to ingesters: gzip, or empty for none. (Cortex's snappy, snappy-block and zstd are not built here.)")
	f.BoolVar(&c.HealthCheckIngesters, "distributor.health-check-ingesters", true, "Health-check the pooled ingester connections every -ingester.client.health-check-interval and close those failing for a minute. When false, a connection is closed only when its ingester leaves the ring.")
}

// Validate checks -ingester.client.grpc-compression.
func (c *Config) Validate() error {
	if c.GRPCCompression != "" && c.GRPCCompression != gzip.Name {
		return fmt.Errorf("-%s.grpc-compression=%q: supported values are gzip and empty (none); snappy, snappy-block and zstd are not built here", TLSPrefix, c.GRPCCompression)
	}
	return nil
}

// Conn is a connection to one ingester: its API, its gRPC health service,
// and Close. One connection carries every call to that ingester; the TLS
// handshake happens once per connection.
type Conn struct {
	IngesterClient
	grpc_health_v1.HealthClient
	conn *grpc.ClientConn
	addr string
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// Check asks for the health of the ingester service itself rather than the
// process's readiness, so the pool keeps an ingester that takes pushes
// while its /ready is still false (e.g. not yet ACTIVE in the ring).
func (c *Conn) Check(ctx context.Context, in *grpc_health_v1.HealthCheckRequest, opts ...grpc.CallOption) (*grpc_health_v1.HealthCheckResponse, error) {
	if in.GetService() == "" {
		in = &grpc_health_v1.HealthCheckRequest{Service: ServiceName}
	}
	return c.HealthClient.Check(ctx, in, opts...)
}

// Addr returns the ingester's address.
func (c *Conn) Addr() string { return c.addr }

// Dial returns a connection to the ingester at addr. tls is nil for plaintext.
func Dial(addr string, cfg Config, tls *tlsconfig.Client) (*Conn, error) {
	opts := append([]grpc.DialOption{
		tls.GRPCDialOption(),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(grpccodec.Codec{}),
			grpc.MaxCallRecvMsgSize(cfg.MaxRecvMsgSize),
			grpc.MaxCallSendMsgSize(cfg.MaxSendMsgSize),
		),
		grpc.WithDefaultCallOptions(compression(cfg.GRPCCompression)...),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}, tenant.ClientInterceptors()...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("ingester client for %s: %w", addr, err)
	}
	return &Conn{IngesterClient: NewIngesterClient(cc), HealthClient: grpc_health_v1.NewHealthClient(cc), conn: cc, addr: addr}, nil
}

// compression returns the call options sending messages compressed with
// name ("" for none).
func compression(name string) []grpc.CallOption {
	if name == "" {
		return nil
	}
	return []grpc.CallOption{grpc.UseCompressor(name)}
}

// Pool keeps one connection per ingester in the ring, health-checks them
// and closes those whose ingester left the ring.
type Pool struct{ *ringclient.Pool }

// NewPool returns a pool of connections to the ingesters of r. Its service
// must be started before use.
func NewPool(r ring.ReadRing, cfg Config, tls *tlsconfig.Client, logger *slog.Logger, reg prometheus.Registerer, component string) *Pool {
	clients := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "cortex_ingester_clients",
		Help:        "The current number of ingester clients.",
		ConstLabels: prometheus.Labels{"client": component},
	})
	if reg != nil {
		reg.MustRegister(clients)
	}
	factory := ringclient.PoolAddrFunc(func(addr string) (ringclient.PoolClient, error) {
		return Dial(addr, cfg, tls)
	})
	poolCfg := ringclient.PoolConfig{
		CheckInterval:          cfg.HealthCheckInterval,
		HealthCheckEnabled:     cfg.HealthCheckIngesters,
		HealthCheckTimeout:     cfg.HealthCheckTimeout,
		HealthCheckGracePeriod: time.Minute,
	}
	return &Pool{ringclient.NewPool("ingester", poolCfg, ringclient.NewRingServiceDiscovery(r), factory, clients, kitlog.New(logger))}
}

// Get returns the connection to the ingester at addr, dialling it if needed.
func (p *Pool) Get(addr string) (*Conn, error) {
	c, err := p.GetClientFor(addr)
	if err != nil {
		return nil, err
	}
	return c.(*Conn), nil
}

var _ io.Closer = (*Conn)(nil)
