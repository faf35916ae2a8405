package cortex

import (
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	cortexkv "github.com/cortex-tls/cortex/pkg/kv"
	"github.com/cortex-tls/cortex/pkg/querier"
	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	sgclient "github.com/cortex-tls/cortex/pkg/storegateway/client"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/queryprotection"
)

// initStoreGateway syncs the tenants' blocks from the bucket
// (-blocks-storage.bucket-store.*), all of them or, with
// -store-gateway.sharding-enabled, its share on the store-gateway ring, and
// serves them over gRPC (cortex.StoreGateway), its health following the
// bucket store.
func (t *Cortex) initStoreGateway() (services.Service, error) {
	// -store-gateway.hedged-request.* hedges the store-gateway's reads.
	bkt, err := t.blocksBucketFor(StoreGateway, bucket.WithTransportWrapper(t.Cfg.StoreGateway.HedgedRequest.RoundTripper()))
	if err != nil {
		return nil, err
	}
	logger := t.Logger.With("component", StoreGateway)
	scanner, err := users.NewScanner(t.Cfg.BlocksStorage.UsersScanner, bkt, logger, prometheus.WrapRegistererWith(prometheus.Labels{"component": StoreGateway}, t.Registry))
	if err != nil {
		return nil, err
	}
	opts := append(t.bucketStoreOptions(), storegateway.WithAllowedTenants(t.Cfg.StoreGateway.AllowedTenants()), storegateway.WithUsersScanner(scanner))
	store, err := storegateway.NewBucketStore(t.Cfg.BlocksStorage.BucketStore, bkt, logger, t.Registry, opts...)
	if err != nil {
		return nil, err
	}
	mon, err := t.resourceMonitorOf()
	if err != nil {
		return nil, err
	}
	guard, err := queryprotection.NewGuardWithMonitor(t.Cfg.StoreGateway.QueryProtection, "store-gateway.", "store-gateway", mon, t.Registry)
	if err != nil {
		return nil, err
	}
	storegateway.RegisterStoreGatewayServer(t.Server.GRPC, storegateway.NewStoreGatewayServer(store, logger,
		storegateway.WithQueryProtection(guard),
		storegateway.WithMaxDownloadedBytesPerRequest(func(tenant string) int64 {
			return int64(t.Overrides.For(tenant).MaxDownloadedBytesPerRequest)
		})))
	svc := store.Service()
	if t.Cfg.StoreGateway.ShardingEnabled {
		cfg := t.Cfg.StoreGateway.ShardingRing
		kvStore, err := t.storeGatewayRingKV("store-gateway-lifecycler")
		if err != nil {
			return nil, err
		}
		host, port := t.advertisedGRPC()
		member, err := shardring.NewMember(cfg, storegateway.RingName, storegateway.RingKey, kvStore, host, port, ring.JOINING, logger, prometheus.WrapRegistererWithPrefix("cortex_", t.Registry))
		if err != nil {
			return nil, fmt.Errorf("store-gateway ring: %w", err)
		}
		svc = store.ShardedService(member, t.storeGatewayShards())
		t.API.RegisterStoreGatewayRing(member)
	}
	t.Server.TrackHealth(storegateway.ServiceName, svc)
	return svc, nil
}

// bucketStoreOptions are the caches' options of the store-gateway and the
// querier: the certificates' loader, and one in-memory metadata cache for
// both when they run in one process, so that they see the same blocks.
func (t *Cortex) bucketStoreOptions() []storegateway.Option {
	opts := []storegateway.Option{storegateway.WithTLS(t.TLS)}
	if !t.Cfg.runs(StoreGateway) || !t.Cfg.runs(Querier) {
		return opts
	}
	t.metadataCacheOnce.Do(func() {
		t.metadataCache = storegateway.NewInMemoryMetadataCache(t.Cfg.BlocksStorage.BucketStore.MetadataCache)
	})
	if t.metadataCache != nil {
		opts = append(opts, storegateway.WithMetadataCache(t.metadataCache))
	}
	return opts
}

// storeGatewayShards places each tenant's blocks on its shard of the
// store-gateway ring (-store-gateway.sharding-strategy), the same for the
// store-gateways and the queriers.
func (t *Cortex) storeGatewayShards() storegateway.TenantShards {
	return storegateway.TenantShards{
		Strategy:  t.Cfg.StoreGateway.ShardingStrategy,
		ShardSize: func(tenant string) int { return t.Overrides.For(tenant).StoreGatewayTenantShardSize },
	}
}

// storeGatewayRingKV is a client of the store-gateway ring's KV store.
func (t *Cortex) storeGatewayRingKV(name string) (kv.Client, error) {
	cfg := t.Cfg.StoreGateway.ShardingRing
	c, err := cortexkv.NewClient(cfg.KVStore, ring.GetCodec(), t.gossip, name, prometheus.WrapRegistererWithPrefix("cortex_", t.Registry), t.Logger)
	if err != nil {
		return nil, fmt.Errorf("store-gateway ring: -store-gateway.sharding-ring.store=%s: %w", cfg.KVStore.Store, err)
	}
	return c, nil
}

// advertisedGRPC is the address a ring member advertises unless its
// instance-addr and instance-port flags say otherwise: the gRPC server's
// bound port (so -server.grpc-listen-port=0 works) and its listen address
// when it names one (empty otherwise: the ring reads the network
// interfaces).
func (t *Cortex) advertisedGRPC() (host string, port int) {
	port = t.Server.GRPCAddr().(*net.TCPAddr).Port
	if ip := net.ParseIP(t.Cfg.Server.GRPCListenAddress); ip != nil && !ip.IsUnspecified() {
		host = t.Cfg.Server.GRPCListenAddress
	}
	return host, port
}

// storeGatewayOption connects the querier to the blocks in long-term
// storage: it finds a query's blocks in the bucket (its bucket index, or a
// scan) and reads them from the store-gateways of the store-gateway ring
// (-store-gateway.sharding-enabled), of -querier.store-gateway-addresses,
// or under -target=all of this process, over the
// -querier.store-gateway-client TLS link. With none, the querier reads the
// ingesters only.
func (t *Cortex) storeGatewayOption() (querier.Option, error) {
	cfg := t.Cfg.Querier.StoreGateway
	tls, err := tlsconfig.NewClient(sgclient.TLSPrefix, cfg.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	sharded := t.Cfg.StoreGateway.ShardingEnabled
	addrs := []string(cfg.Addresses)
	if !sharded && len(addrs) == 0 {
		if !t.Cfg.runs(StoreGateway) {
			return querier.WithStore(nil), nil
		}
		host := t.Cfg.Server.GRPCListenAddress
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		addrs = []string{net.JoinHostPort(host, strconv.Itoa(t.Server.GRPCAddr().(*net.TCPAddr).Port))}
	}
	if tls == nil && t.ingesterTLS != nil && t.Cfg.runs(StoreGateway) {
		// Both links dial this process's gRPC server: without
		// -querier.store-gateway-client.tls-* flags, the
		// -ingester.client.tls-* ones fit it.
		tls = t.ingesterTLS
	}
	dial := func(addr string) (querier.StoreGateway, error) {
		c, err := sgclient.Dial(addr, cfg, tls)
		if err != nil {
			return nil, fmt.Errorf("store-gateway %s: %w", addr, err)
		}
		return c, nil
	}

	var gateways querier.GatewaySet
	if sharded {
		rg := querier.NewRingGateways(t.storeGatewayRing, t.storeGatewayShards(), dial)
		t.closers = append(t.closers, rg)
		gateways = rg
	} else {
		var static querier.StaticGateways
		for _, addr := range addrs {
			c, err := dial(addr)
			if err != nil {
				return nil, fmt.Errorf("-%s: %w", sgclient.AddressesFlag, err)
			}
			t.closers = append(t.closers, c.(io.Closer))
			static = append(static, c)
		}
		gateways = static
	}

	bkt, err := t.blocksBucketFor(Querier)
	if err != nil {
		return nil, err
	}
	// The querier reads bucket indexes (or lists blocks) through the
	// metadata cache the store-gateways use, as Cortex's querier does.
	cached, err := storegateway.NewMetadataCachingBucket(t.Cfg.BlocksStorage.BucketStore.MetadataCache, bkt, Querier, t.TLS, t.Logger, t.Registry, t.bucketStoreOptions()...)
	if err != nil {
		return nil, err
	}
	finder := querier.NewBlocksFinder(cached, t.Cfg.BlocksStorage.BucketStore, t.Logger.With("component", Querier))
	return querier.WithStore(querier.NewStoreGatewayQueryable(finder, gateways, t.Cfg.BlocksStorage.BucketStore, t.Overrides)), nil
}

// initStoreGatewayRing is the querier's client of the store-gateway ring
// (-store-gateway.sharding-enabled), through which it finds each block's
// store-gateways.
func (t *Cortex) initStoreGatewayRing() (services.Service, error) {
	if !t.Cfg.StoreGateway.ShardingEnabled {
		return nil, nil
	}
	kvStore, err := t.storeGatewayRingKV("store-gateway-ring")
	if err != nil {
		return nil, err
	}
	reg := prometheus.WrapRegistererWithPrefix("cortex_", t.Registry)
	if t.Cfg.runs(StoreGateway) {
		// The store-gateway of this process reports the same ring under
		// the same names; a second copy would collide.
		reg = prometheus.NewRegistry()
	}
	r, err := shardring.NewRing(t.Cfg.StoreGateway.ShardingRing, storegateway.RingName, storegateway.RingKey, kvStore, t.Logger, reg)
	if err != nil {
		return nil, err
	}
	t.storeGatewayRing = r
	return r, nil
}
