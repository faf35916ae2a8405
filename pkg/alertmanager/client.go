package alertmanager

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/grafana/dskit/user"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/grpcpool"
)

// maxStateMsgSize bounds one message a test server receives: a forwarded
// API request or answer, or a tenant's full state.
const maxStateMsgSize = 64 << 20

// ClientConfig is the alertmanager -> alertmanager gRPC link, Cortex's
// alertmanager_client block: -alertmanager.alertmanager-client.*.
type ClientConfig struct {
	RemoteTimeout   time.Duration          `yaml:"remote_timeout"`
	TLS             tlsconfig.ClientConfig `yaml:",inline"`
	GRPCCompression string                 `yaml:"grpc_compression"`
	MaxRecvMsgSize  int                    `yaml:"max_recv_msg_size"`
	MaxSendMsgSize  int                    `yaml:"max_send_msg_size"`
	ConnectTimeout  time.Duration          `yaml:"connect_timeout"`
}

// RegisterFlags registers the -alertmanager.alertmanager-client.* flags.
func (c *ClientConfig) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.RemoteTimeout, ClientTLSPrefix+".remote-timeout", 2*time.Second, "Timeout of one request to another alertmanager.")
	c.TLS.RegisterFlagsWithPrefix(ClientTLSPrefix, f)
	grpcclient.RegisterCompressionFlag(&c.GRPCCompression, ClientTLSPrefix, "", f)
	f.IntVar(&c.MaxRecvMsgSize, ClientTLSPrefix+".grpc-max-recv-msg-size", 16<<20, "gRPC client max receive message size (bytes).")
	f.IntVar(&c.MaxSendMsgSize, ClientTLSPrefix+".grpc-max-send-msg-size", 4<<20, "gRPC client max send message size (bytes).")
	grpcclient.RegisterConnectTimeoutFlag(&c.ConnectTimeout, ClientTLSPrefix, f)
}

// Validate checks the -alertmanager.alertmanager-client.* flags.
func (c *ClientConfig) Validate() error {
	if c.RemoteTimeout <= 0 {
		return fmt.Errorf("-%s.remote-timeout must be positive, got %s", ClientTLSPrefix, c.RemoteTimeout)
	}
	gc := c.grpcConfig()
	return gc.Validate(ClientTLSPrefix)
}

// grpcConfig is the link's grpcclient.Config: the flags it has.
func (c *ClientConfig) grpcConfig() grpcclient.Config {
	return grpcclient.Config{MaxRecvMsgSize: c.MaxRecvMsgSize, MaxSendMsgSize: c.MaxSendMsgSize, GRPCCompression: c.GRPCCompression, ConnectTimeout: c.ConnectTimeout}
}

// ClientPool holds one gRPC connection per alertmanager address, over the
// -alertmanager.alertmanager-client link.
type ClientPool struct{ pool *grpcpool.Pool }

// NewClientPool returns an empty pool dialling with cfg over tls (nil
// dials plaintext); build tls with tlsconfig.NewClient(ClientTLSPrefix,
// cfg.TLS, ...) so that its errors name the
// -alertmanager.alertmanager-client.* flags.
func NewClientPool(cfg ClientConfig, tls *tlsconfig.Client) *ClientPool {
	gc := cfg.grpcConfig()
	return &ClientPool{pool: grpcpool.New("alertmanager", append(gc.DialOptions(tls),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})),
		grpc.WithChainUnaryInterceptor(tenantInterceptor),
	)...)}
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
