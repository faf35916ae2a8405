package client

import (
	"context"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	ingclient "github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func TestFlags(t *testing.T) {
	var cfg Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(f)
	err := f.Parse([]string{
		"-querier.store-gateway-addresses=127.0.0.1:9095,sg-2:9095",
		"-querier.store-gateway-client.tls-cert-path=client.crt",
		"-querier.store-gateway-client.tls-key-path=client.key",
		"-querier.store-gateway-client.tls-ca-path=ca.crt",
		"-querier.store-gateway-client.tls-server-name=store-gateway",
		"-querier.store-gateway-client.tls-insecure-skip-verify=false",
		"-querier.store-gateway-client.tls-enabled=true",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:9095", "sg-2:9095"}; !slices.Equal(cfg.Addresses, want) {
		t.Errorf("addresses %v, want %v", cfg.Addresses, want)
	}
	if cfg.TLS.CertPath != "client.crt" || cfg.TLS.KeyPath != "client.key" || cfg.TLS.CAPath != "ca.crt" || cfg.TLS.ServerName != "store-gateway" || !cfg.TLS.Enabled {
		t.Errorf("TLS flags not read: %+v", cfg.TLS)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid addresses refused: %v", err)
	}
}

func TestValidateNamesFlagAndAddress(t *testing.T) {
	cfg := Config{Addresses: []string{"127.0.0.1:9095", "[::1]:9095", "sg-without-port", "dnssrv+_grpc._tcp.sg", ":9095"}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid addresses were accepted")
	}
	for _, want := range []string{"-" + AddressesFlag, `"sg-without-port" is not a host:port`, `"dnssrv+_grpc._tcp.sg" uses DNS service discovery (dnssrv+)`, `":9095" is not a host:port`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "[::1]") {
		t.Errorf("error %q names valid addresses", err)
	}
}

// TestHealthAndTenant checks that Conn.Check asks for the store-gateway
// service's health without needing a tenant, while API calls without a
// tenant are refused before they are sent.
func TestHealthAndTenant(t *testing.T) {
	gs := grpc.NewServer()
	hs := health.NewServer()
	// The process is serving but the store-gateway is not (yet).
	hs.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
	hs.SetServingStatus(storegateway.ServiceName, grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	grpc_health_v1.RegisterHealthServer(gs, hs)
	ln := testkit.Listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})

	conn, err := Dial(ln.Addr().String(), Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.Addr() != ln.Addr().String() {
		t.Errorf("Addr() = %s, want %s", conn.Addr(), ln.Addr())
	}
	resp, err := conn.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check without a tenant: %v", err)
	}
	if resp.Status != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health %s: the process's, not %s's", resp.Status, storegateway.ServiceName)
	}
	hs.SetServingStatus(storegateway.ServiceName, grpc_health_v1.HealthCheckResponse_SERVING)
	if resp, err = conn.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{}); err != nil || resp.Status != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Errorf("health after the service started: %v %v", resp, err)
	}

	_, err = conn.LabelNames(context.Background(), &ingclient.LabelNamesRequest{})
	if err == nil || !strings.Contains(err.Error(), "X-Scope-OrgID") {
		t.Errorf("LabelNames without a tenant: %v, want a refusal naming X-Scope-OrgID", err)
	}
	_, err = conn.Series(context.Background(), &prompb.Query{})
	if err == nil || !strings.Contains(err.Error(), "X-Scope-OrgID") {
		t.Errorf("Series without a tenant: %v, want a refusal naming X-Scope-OrgID", err)
	}
}

func TestClientFlags(t *testing.T) {
	var cfg Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(f)
	if cfg.GRPCCompression != "" || cfg.ConnectTimeout != 5*time.Second || cfg.HealthCheckConfig != (grpcclient.HealthCheckConfig{Interval: 5 * time.Second, Timeout: time.Second}) {
		t.Fatalf("defaults %+v, want Cortex's", cfg.ClientConfig)
	}
	if err := f.Parse([]string{
		"-querier.store-gateway-client.grpc-compression=snappy-block",
		"-querier.store-gateway-client.connect-timeout=2s",
		"-querier.store-gateway-client.healthcheck.unhealthy-threshold=3",
		"-querier.store-gateway-client.healthcheck.interval=1s",
		"-querier.store-gateway-client.healthcheck.timeout=500ms",
	}); err != nil {
		t.Fatal(err)
	}
	if cfg.GRPCCompression != "snappy-block" || cfg.ConnectTimeout != 2*time.Second || cfg.HealthCheckConfig != (grpcclient.HealthCheckConfig{UnhealthyThreshold: 3, Interval: time.Second, Timeout: 500 * time.Millisecond}) {
		t.Fatalf("flags not read: %+v", cfg.ClientConfig)
	}
	cfg.GRPCCompression = "lz4"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `-querier.store-gateway-client.grpc-compression="lz4"`) {
		t.Fatalf("error %v, want the compression flag named", err)
	}
}

// With -querier.store-gateway-client.healthcheck.unhealthy-threshold, a
// store-gateway whose service answers NOT_SERVING is marked unhealthy and
// its calls fail at once with Unavailable, so that the querier asks
// another replica; once it serves again, calls go through.
func TestHealthCheckMarksStoreGatewayUnhealthy(t *testing.T) {
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
	hs.SetServingStatus(storegateway.ServiceName, grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	grpc_health_v1.RegisterHealthServer(gs, hs)
	ln := testkit.Listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	cfg := Config{ClientConfig: ClientConfig{HealthCheckConfig: grpcclient.HealthCheckConfig{UnhealthyThreshold: 1, Interval: 10 * time.Millisecond, Timeout: time.Second}}}
	conn, err := Dial(ln.Addr().String(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := user.InjectOrgID(context.Background(), "tenant-a")
	testkit.Eventually(t, 10*time.Second, "the store-gateway marked unhealthy", func() bool {
		_, err = conn.LabelNames(ctx, &ingclient.LabelNamesRequest{})
		return strings.Contains(err.Error(), "marked as unhealthy")
	})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "failing healthcheck status: NOT_SERVING") {
		t.Fatalf("error %v, want Unavailable naming NOT_SERVING", err)
	}
	hs.SetServingStatus(storegateway.ServiceName, grpc_health_v1.HealthCheckResponse_SERVING)
	// The server has no store-gateway service: once healthy, the call
	// reaches it and is answered Unimplemented.
	testkit.Eventually(t, 10*time.Second, "the store-gateway healthy again", func() bool {
		_, err = conn.LabelNames(ctx, &ingclient.LabelNamesRequest{})
		return status.Code(err) == codes.Unimplemented
	})
}
