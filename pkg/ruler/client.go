package ruler

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/grafana/dskit/user"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/ruler/rulerpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/grpcpool"
)

// ClientTLSPrefix is the flag prefix of the ruler -> ruler gRPC link, as in
// Cortex: -ruler.client.tls-cert-path and the others.
const ClientTLSPrefix = "ruler.client"

// rulesServer answers other rulers' Rules calls with the groups of the
// call's tenant this ruler evaluates. The tenant comes from the call's
// metadata (pkg/tenant's server interceptors), checked against the
// caller's certificate identity by pkg/auth's.
type rulesServer struct{ r *Ruler }

// RegisterGRPC registers the ruler's gRPC service (ruler.Ruler) on s.
func (r *Ruler) RegisterGRPC(s grpc.ServiceRegistrar) {
	rulerpb.RegisterRulerServer(s, rulesServer{r})
}

func (s rulesServer) Rules(ctx context.Context, req *rulerpb.RulesRequest) (*rulerpb.RulesResponse, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, tenant.GRPCError(err)
	}
	f := RulesFilter{
		Type:          req.GetType(),
		RuleNames:     req.GetRuleNames(),
		RuleGroups:    req.GetRuleGroupNames(),
		Files:         req.GetFiles(),
		ExcludeAlerts: req.GetExcludeAlerts(),
	}
	return &rulerpb.RulesResponse{Groups: groupsToProto(s.r.LocalRules(id, f))}, nil
}

// ClientConfig is the ruler -> ruler gRPC link, Cortex's ruler_client
// block: -ruler.client.*.
type ClientConfig struct {
	grpcclient.Config `yaml:",inline"`
	// RemoteTimeout bounds one ruler's answer to a Rules call.
	RemoteTimeout time.Duration `yaml:"remote_timeout"`
}

// RegisterFlags registers the -ruler.client.* flags.
func (c *ClientConfig) RegisterFlags(f *flag.FlagSet) {
	c.RegisterFlagsWithPrefix(ClientTLSPrefix, grpcclient.Defaults{}, f)
	f.DurationVar(&c.RemoteTimeout, ClientTLSPrefix+".remote-timeout", 2*time.Minute, "Timeout for downstream rulers.")
}

// Validate checks the -ruler.client.* flags.
func (c *ClientConfig) Validate() error {
	if c.RemoteTimeout <= 0 {
		return fmt.Errorf("-%s.remote-timeout must be positive, got %s", ClientTLSPrefix, c.RemoteTimeout)
	}
	return c.Config.Validate(ClientTLSPrefix)
}

// ClientPool holds one gRPC connection per ruler address, over the
// -ruler.client link.
type ClientPool struct {
	pool          *grpcpool.Pool
	remoteTimeout time.Duration
}

// NewClientPool returns an empty pool dialling with cfg over tls (nil
// dials plaintext); build tls with tlsconfig.NewClient(ClientTLSPrefix,
// cfg.TLS, ...) so that its errors name the -ruler.client.* flags.
func NewClientPool(cfg ClientConfig, tls *tlsconfig.Client) *ClientPool {
	return &ClientPool{pool: grpcpool.New("ruler", append(cfg.DialOptions(tls),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})),
		grpc.WithChainUnaryInterceptor(tenantInterceptor),
	)...), remoteTimeout: cfg.RemoteTimeout}
}

// client returns the ruler at addr's client, dialling it (lazily: the
// connection is made at the first call) the first time.
func (p *ClientPool) client(addr string) (rulerpb.RulerClient, error) {
	cc, err := p.pool.Conn(addr)
	if err != nil {
		return nil, err
	}
	return rulerpb.NewRulerClient(cc), nil
}

// tenantInterceptor copies the context's tenant into the call's metadata
// and refuses a call without one.
func tenantInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, err := user.InjectIntoGRPCRequest(ctx)
	if err != nil {
		return fmt.Errorf("ruler call %s: no tenant in the context (X-Scope-OrgID): %w", method, err)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// retain closes the connections to rulers not in addrs (rulers that left
// the ring).
func (p *ClientPool) retain(addrs []string) { p.pool.Retain(addrs) }

// Close closes every connection.
func (p *ClientPool) Close() error { return p.pool.Close() }
