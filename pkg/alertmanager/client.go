package alertmanager

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

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
)

// maxStateMsgSize bounds one message between alertmanagers: a forwarded
// API request or answer, or a tenant's full state.
const maxStateMsgSize = 64 << 20

// ClientPool holds one gRPC connection per alertmanager address, over the
// -alertmanager.alertmanager-client TLS link.
type ClientPool struct {
	tls *tlsconfig.Client

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewClientPool returns an empty pool dialling over tls (nil dials
// plaintext); build tls with tlsconfig.NewClient(ClientTLSPrefix, ...) so
// that its errors name the -alertmanager.alertmanager-client.* flags.
func NewClientPool(tls *tlsconfig.Client) *ClientPool {
	return &ClientPool{tls: tls, conns: map[string]*grpc.ClientConn{}}
}

// client returns the alertmanager at addr's client, dialling it lazily the
// first time.
func (p *ClientPool) client(addr string) (alertmanagerpb.AlertmanagerClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return alertmanagerpb.NewAlertmanagerClient(cc), nil
	}
	cc, err := grpc.NewClient(addr,
		p.tls.GRPCDialOption(),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{}), grpc.MaxCallRecvMsgSize(maxStateMsgSize), grpc.MaxCallSendMsgSize(maxStateMsgSize)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithChainUnaryInterceptor(tenantInterceptor),
	)
	if err != nil {
		return nil, fmt.Errorf("alertmanager client for %s: %w", addr, err)
	}
	p.conns[addr] = cc
	return alertmanagerpb.NewAlertmanagerClient(cc), nil
}

// tenantInterceptor copies the context's tenant into the call's metadata
// and refuses a call without one: every call is on behalf of one tenant,
// which the server checks against this client's certificate identity.
func tenantInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, err := user.InjectIntoGRPCRequest(ctx)
	if err != nil {
		return fmt.Errorf("alertmanager call %s: no tenant in the context: %w", method, err)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// retain closes the connections to alertmanagers not in addrs (those that
// left the ring).
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
