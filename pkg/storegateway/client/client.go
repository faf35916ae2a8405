// Package client dials store-gateways: the querier's side of the
// querier -> store-gateway gRPC link, configured by Cortex's
// -querier.store-gateway-client.* and -querier.store-gateway-addresses flags.
package client

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/user"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
)

// TLSPrefix is the flag prefix of the querier -> store-gateway link, as
// Cortex names it.
const TLSPrefix = "querier.store-gateway-client"

// AddressesFlag lists the store-gateways of the non-sharded mode.
const AddressesFlag = "querier.store-gateway-addresses"

// maxMsgSize bounds the messages of one call. Not a Cortex flag on this
// link: Series batches stay near 1 MiB, label answers are lists of strings.
const maxMsgSize = 100 << 20

// Config configures the querier's connections to store-gateways. Its YAML
// keys are Cortex's, in the querier block.
type Config struct {
	// Addresses are the store-gateways to query when they are not sharded
	// by a ring: Cortex's -querier.store-gateway-addresses.
	Addresses    flagext.StringSliceCSV `yaml:"store_gateway_addresses"`
	ClientConfig `yaml:"store_gateway_client"`
}

// ClientConfig is Cortex's store_gateway_client block: the link's TLS
// (-querier.store-gateway-client.tls-*), compression, connect timeout and
// health checks.
type ClientConfig struct {
	TLS               tlsconfig.ClientConfig       `yaml:",inline"`
	GRPCCompression   string                       `yaml:"grpc_compression"`
	HealthCheckConfig grpcclient.HealthCheckConfig `yaml:"healthcheck_config"`
	ConnectTimeout    time.Duration                `yaml:"connect_timeout"`
}

// RegisterFlags registers -querier.store-gateway-addresses and the
// -querier.store-gateway-client.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Var(&c.Addresses, AddressesFlag, "Comma separated list of store-gateway addresses (host:port). This option should be set when using the blocks storage and the store-gateway sharding is disabled.")
	c.TLS.RegisterFlagsWithPrefix(TLSPrefix, f)
	grpcclient.RegisterCompressionFlag(&c.GRPCCompression, TLSPrefix, "", f)
	c.HealthCheckConfig.RegisterFlagsWithPrefix(TLSPrefix, f)
	grpcclient.RegisterConnectTimeoutFlag(&c.ConnectTimeout, TLSPrefix, f)
}

// grpcConfig is the link's grpcclient.Config: the flags it has, and fixed
// message sizes.
func (c *ClientConfig) grpcConfig() grpcclient.Config {
	return grpcclient.Config{MaxRecvMsgSize: maxMsgSize, MaxSendMsgSize: maxMsgSize, GRPCCompression: c.GRPCCompression, ConnectTimeout: c.ConnectTimeout}
}

// Validate checks the link's flags, and that every address is a
// host:port, naming the flag and the address at fault. Cortex's DNS service discovery prefixes (dns+,
// dnssrv+) are refused by name: Dial does not resolve them, and a querier
// silently missing its store-gateways would answer with partial data.
func (c *Config) Validate() error {
	gc := c.grpcConfig()
	errs := []error{gc.Validate(TLSPrefix), c.HealthCheckConfig.Validate(TLSPrefix)}
	for _, addr := range c.Addresses {
		addr = strings.TrimSpace(addr)
		if i := strings.Index(addr, "+"); i >= 0 && !strings.ContainsAny(addr[:i], ".:[") {
			errs = append(errs, fmt.Errorf("-%s: %q uses DNS service discovery (%s+), which is not supported; list the store-gateways as host:port", AddressesFlag, addr, addr[:i]))
			continue
		}
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			errs = append(errs, fmt.Errorf("-%s: %q is not a host:port", AddressesFlag, addr))
		}
	}
	return errors.Join(errs...)
}

// Conn is a connection to one store-gateway: its API, its gRPC health
// service, and Close. One connection carries every call to that
// store-gateway; the TLS handshake happens once per connection.
type Conn struct {
	storegateway.StoreGatewayClient
	grpc_health_v1.HealthClient
	conn *grpcclient.Conn
	addr string
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// Check asks for the health of the store-gateway service itself rather
// than the process's: a process running other modules is healthy without
// serving blocks.
func (c *Conn) Check(ctx context.Context, in *grpc_health_v1.HealthCheckRequest, opts ...grpc.CallOption) (*grpc_health_v1.HealthCheckResponse, error) {
	if in.GetService() == "" {
		in = &grpc_health_v1.HealthCheckRequest{Service: storegateway.ServiceName}
	}
	return c.HealthClient.Check(ctx, in, opts...)
}

// Addr returns the store-gateway's address.
func (c *Conn) Addr() string { return c.addr }

// Dial returns a connection to the store-gateway at addr. tls is the
// link's client, built with tlsconfig.NewClient(TLSPrefix, cfg.TLS, loader)
// so that its errors name the -querier.store-gateway-client.* flags; nil
// dials plaintext. The connection is made lazily, at the first call.
func Dial(addr string, cfg Config, tls *tlsconfig.Client) (*Conn, error) {
	// The querier dials its static store-gateways before it validates its
	// configuration: the link's own flags are checked here.
	gc := cfg.grpcConfig()
	if err := errors.Join(gc.Validate(TLSPrefix), cfg.HealthCheckConfig.Validate(TLSPrefix)); err != nil {
		return nil, err
	}
	cc, err := grpcclient.Dial(addr, cfg.grpcConfig(), cfg.HealthCheckConfig, storegateway.ServiceName, tls, nil,
		append([]grpc.DialOption{grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{}))}, tenantInterceptors()...)...)
	if err != nil {
		return nil, fmt.Errorf("store-gateway client for %s: %w", addr, err)
	}
	return &Conn{StoreGatewayClient: storegateway.NewStoreGatewayClient(cc), HealthClient: grpc_health_v1.NewHealthClient(cc), conn: cc, addr: addr}, nil
}

// healthMethods is the prefix of the gRPC health service's methods.
const healthMethods = "/grpc.health.v1.Health/"

// tenantInterceptors copy the context's tenant into the outgoing metadata
// and refuse a store-gateway call without one, as pkg/tenant's do; health
// checks are nobody's and go through without a tenant, or the connection's
// health checks would always fail.
func tenantInterceptors() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if !strings.HasPrefix(method, healthMethods) {
				var err error
				if ctx, err = user.InjectIntoGRPCRequest(ctx); err != nil {
					return fmt.Errorf("store-gateway call %s: no tenant in the context (X-Scope-OrgID): %w", method, err)
				}
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			if !strings.HasPrefix(method, healthMethods) {
				var err error
				if ctx, err = user.InjectIntoGRPCRequest(ctx); err != nil {
					return nil, fmt.Errorf("store-gateway call %s: no tenant in the context (X-Scope-OrgID): %w", method, err)
				}
			}
			return streamer(ctx, desc, cc, method, opts...)
		}),
	}
}

var _ io.Closer = (*Conn)(nil)
