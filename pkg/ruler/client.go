package ruler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/user"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/cortex-tls/cortex/pkg/ruler/rulerpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
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

// ClientPool holds one gRPC connection per ruler address, over the
// -ruler.client TLS link.
type ClientPool struct {
	tls *tlsconfig.Client

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewClientPool returns an empty pool dialling over tls (nil dials
// plaintext); build tls with tlsconfig.NewClient(ClientTLSPrefix, ...) so
// that its errors name the -ruler.client.* flags.
func NewClientPool(tls *tlsconfig.Client) *ClientPool {
	return &ClientPool{tls: tls, conns: map[string]*grpc.ClientConn{}}
}

// maxRulesMsgSize bounds a Rules answer: a tenant's groups and their
// active alerts.
const maxRulesMsgSize = 100 << 20

// client returns the ruler at addr's client, dialling it (lazily: the
// connection is made at the first call) the first time.
func (p *ClientPool) client(addr string) (rulerpb.RulerClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return rulerpb.NewRulerClient(cc), nil
	}
	cc, err := grpc.NewClient(addr,
		p.tls.GRPCDialOption(),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{}), grpc.MaxCallRecvMsgSize(maxRulesMsgSize)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithChainUnaryInterceptor(tenantInterceptor),
	)
	if err != nil {
		return nil, fmt.Errorf("ruler client for %s: %w", addr, err)
	}
	p.conns[addr] = cc
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
func (p *ClientPool) retain(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, cc := range p.conns {
		if !slices.Contains(addrs, addr) {
			_ = cc.Close()
			delete(p.conns, addr)
		}
	}
}

// Close closes every connection.
func (p *ClientPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for addr, cc := range p.conns {
		errs = append(errs, cc.Close())
		delete(p.conns, addr)
	}
	return errors.Join(errs...)
}
