package cortex

import (
	"fmt"
	"net"
	"strconv"

	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/querier"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	sgclient "github.com/cortex-tls/cortex/pkg/storegateway/client"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// initStoreGateway syncs the tenants' blocks from the bucket
// (-blocks-storage.bucket-store.*) and serves them over gRPC
// (cortex.StoreGateway), its health following the bucket store.
func (t *Cortex) initStoreGateway() (services.Service, error) {
	bkt, err := t.blocksBucketFor(StoreGateway)
	if err != nil {
		return nil, err
	}
	store, err := storegateway.NewBucketStore(t.Cfg.BlocksStorage.BucketStore, bkt, t.Logger.With("component", StoreGateway), t.Registry)
	if err != nil {
		return nil, err
	}
	storegateway.RegisterStoreGatewayServer(t.Server.GRPC, storegateway.NewStoreGatewayServer(store, t.Logger.With("component", StoreGateway)))
	svc := store.Service()
	t.Server.TrackHealth(storegateway.ServiceName, svc)
	return svc, nil
}

// storeGatewayOption connects the querier to the store-gateways of
// -querier.store-gateway-addresses, or under -target=all to this process's
// own, over the -querier.store-gateway-client TLS link. With neither, the
// querier reads the ingesters only.
func (t *Cortex) storeGatewayOption() (querier.Option, error) {
	cfg := t.Cfg.Querier.StoreGateway
	tls, err := tlsconfig.NewClient(sgclient.TLSPrefix, cfg.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	addrs := []string(cfg.Addresses)
	if len(addrs) == 0 {
		if !t.Cfg.runs(StoreGateway) {
			return querier.WithStore(nil), nil
		}
		host := t.Cfg.Server.GRPCListenAddress
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		addrs = []string{net.JoinHostPort(host, strconv.Itoa(t.Server.GRPCAddr().(*net.TCPAddr).Port))}
		if tls == nil && t.ingesterTLS != nil {
			// Both links dial this same server: without
			// -querier.store-gateway-client.tls-* flags, the
			// -ingester.client.tls-* ones fit it.
			tls = t.ingesterTLS
		}
	}
	var gateways []querier.StoreGateway
	for _, addr := range addrs {
		c, err := sgclient.Dial(addr, cfg, tls)
		if err != nil {
			return nil, fmt.Errorf("-%s: %w", sgclient.AddressesFlag, err)
		}
		t.closers = append(t.closers, c)
		gateways = append(gateways, c)
	}
	return querier.WithStore(querier.NewStoreGatewayQueryable(gateways, t.Overrides)), nil
}
