package alertmanager

import (
	"context"
	"fmt"

	"github.com/grafana/dskit/user"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/grpcpool"
)

// maxStateMsgSize bounds one message between alertmanagers: a forwarded
// API request or answer, or a tenant's full state.
const maxStateMsgSize = 64 << 20

// ClientPool holds one gRPC connection per alertmanager address, over the
// -alertmanager.alertmanager-client TLS link.
type ClientPool struct{ pool *grpcpool.Pool }

// NewClientPool returns an empty pool dialling over tls (nil dials
// plaintext); build tls with tlsconfig.NewClient(ClientTLSPrefix, ...) so
// that its errors name the -alertmanager.alertmanager-client.* flags.
func NewClientPool(tls *tlsconfig.Client) *ClientPool {
	return &ClientPool{pool: grpcpool.New("alertmanager",
		tls.GRPCDialOption(),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{}), grpc.MaxCallRecvMsgSize(maxStateMsgSize), grpc.MaxCallSendMsgSize(maxStateMsgSize)),
		grpc.WithChainUnaryInterceptor(tenantInterceptor),
	)}
}

// client returns the alertmanager at addr's client, dialling it lazily the
// first time.
func (p *ClientPool) client(addr string) (alertmanagerpb.AlertmanagerClient, error) {
	cc, err := p.pool.Conn(addr)
	if err != nil {
		return nil, err
	}
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
func (p *ClientPool) retain(addrs []string) { p.pool.Retain(addrs) }

// Close closes every connection.
func (p *ClientPool) Close() error { return p.pool.Close() }
