package client

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/grpcencoding"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
)

// TLSPrefix is the flag prefix of the ingester client link, as the guide names it.
const TLSPrefix = "ingester.client"

// Config configures the connections from distributors, queriers and
// rulers to ingesters: -ingester.client.*, Cortex's grpc_client_config
// (message sizes, compression, rate limit, backoff, connect timeout, TLS)
// and its health checks.
type Config struct {
	// ConfigWithHealthCheck marks an ingester failing its gRPC health
	// checks (-ingester.client.healthcheck.*) unhealthy.
	grpcclient.ConfigWithHealthCheck `yaml:"grpc_client_config"`
	// MaxInflightPushRequests bounds the pushes in flight on one ingester's
	// connection; 0 is unbounded.
	MaxInflightPushRequests int64         `yaml:"max_inflight_push_requests"`
	HealthCheckInterval     time.Duration `yaml:"health_check_interval"`
	HealthCheckTimeout      time.Duration `yaml:"health_check_timeout"`
	// HealthCheckIngesters is Cortex's distributor.pool.health_check_ingesters.
	HealthCheckIngesters bool `yaml:"health_check_ingesters"`

	// UseStreamPush sends pushes over one PushStream per ingester: the
	// distributor's -distributor.use-stream-push.
	UseStreamPush bool `yaml:"-"`
	// StreamSigningKey signs the PushStreams: the first of the
	// distributor's -distributor.sign-write-requests-keys.
	StreamSigningKey string `yaml:"-"`
}

// RegisterFlags registers the -ingester.client.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	// A push is sent whole: the send limit is the receive one, so that a
	// large push is not refused by the client itself.
	c.RegisterFlagsWithPrefix(TLSPrefix, grpcclient.Defaults{MaxSendMsgSize: 100 << 20, GRPCCompression: grpcencoding.SnappyBlockName}, f)
	c.HealthCheckConfig.RegisterFlagsWithPrefix(TLSPrefix, f)
	f.Int64Var(&c.MaxInflightPushRequests, TLSPrefix+".max-inflight-push-requests", 0, "Max inflight push requests that this ingester client can handle. This limit is per-ingester-client. Additional requests will be rejected. 0 = unlimited.")
	f.DurationVar(&c.HealthCheckInterval, TLSPrefix+".health-check-interval", 15*time.Second, "How often pooled ingester connections are health-checked; a connection failing its checks for a minute, or whose ingester left the ring, is closed.")
	f.DurationVar(&c.HealthCheckTimeout, TLSPrefix+".health-check-timeout", 5*time.Second, "Timeout of one health check.")
	f.BoolVar(&c.HealthCheckIngesters, "distributor.health-check-ingesters", true, "Health-check the pooled ingester connections every -ingester.client.health-check-interval and close those failing for a minute. When false, a connection is closed only when its ingester leaves the ring.")
}

// Validate checks the -ingester.client.* flags.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, c.Config.Validate(TLSPrefix), c.HealthCheckConfig.Validate(TLSPrefix))
	if c.MaxInflightPushRequests < 0 {
		errs = append(errs, fmt.Errorf("-%s.max-inflight-push-requests must not be negative, got %d", TLSPrefix, c.MaxInflightPushRequests))
	}
	return errors.Join(errs...)
}

// errTooManyInflightPushRequests refuses a push past
// -ingester.client.max-inflight-push-requests; the distributor counts it as
// that ingester's failure and the push succeeds on the other replicas.
var errTooManyInflightPushRequests = status.Errorf(codes.Unavailable, "too many inflight push requests in ingester client (-%s.max-inflight-push-requests)", TLSPrefix)

// Conn is a connection to one ingester: its API, its gRPC health service,
// and Close. One connection carries every call to that ingester; the TLS
// handshake happens once per connection.
type Conn struct {
	IngesterClient
	grpc_health_v1.HealthClient
	conn *grpcclient.Conn
	addr string

	maxInflight int64
	inflight    atomic.Int64
	// stream, with -distributor.use-stream-push, carries the pushes.
	stream *streamPusher
}

// Push sends in, refused at once when the connection already carries
// -ingester.client.max-inflight-push-requests pushes. With
// -distributor.use-stream-push it goes over the connection's PushStream,
// with the tenant and the x-req-signature of ctx, and answers as a Push
// call would.
func (c *Conn) Push(ctx context.Context, in *prompb.WriteRequest, opts ...grpc.CallOption) (*PushResponse, error) {
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	if c.maxInflight > 0 && n > c.maxInflight {
		return nil, errTooManyInflightPushRequests
	}
	if c.stream == nil {
		return c.IngesterClient.Push(ctx, in, opts...)
	}
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, tenant.GRPCError(err)
	}
	var signature string
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		if v := md.Get(SignatureHeader); len(v) > 0 {
			signature = v[len(v)-1]
		}
	}
	return c.stream.push(ctx, id, signature, in)
}

// Close closes the connection.
func (c *Conn) Close() error {
	if c.stream != nil {
		c.stream.close()
	}
	return c.conn.Close()
}

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
	return dial(addr, cfg, tls, nil)
}

func dial(addr string, cfg Config, tls *tlsconfig.Client, logger *slog.Logger) (*Conn, error) {
	cc, err := grpcclient.Dial(addr, cfg.Config, cfg.HealthCheckConfig, ServiceName, tls, logger,
		append([]grpc.DialOption{grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{}))}, tenant.ClientInterceptors()...)...)
	if err != nil {
		return nil, fmt.Errorf("ingester client for %s: %w", addr, err)
	}
	c := &Conn{IngesterClient: NewIngesterClient(cc), HealthClient: grpc_health_v1.NewHealthClient(cc), conn: cc, addr: addr, maxInflight: cfg.MaxInflightPushRequests}
	if cfg.UseStreamPush {
		c.stream = newStreamPusher(cc, addr, cfg.StreamSigningKey)
	}
	return c, nil
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
		return dial(addr, cfg, tls, logger)
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
