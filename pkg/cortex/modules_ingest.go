package cortex

import (
	"fmt"
	"net"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/distributor"
	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/kv"
	"github.com/cortex-tls/cortex/pkg/querier"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Constructors of the write and read path's modules.

func (t *Cortex) initIngester() (services.Service, error) {
	cfg := t.Cfg.Ingester
	cfg.TSDB = t.Cfg.BlocksStorage.TSDB
	// The global limits are shared over the ingesters that hold a
	// tenant's series, which the distributors' placement decides.
	cfg.Limiter.ShuffleSharding = t.Cfg.Distributor.ShardingStrategy == distributor.ShardingStrategyShuffle
	cfg.Limiter.ShardByAllLabels = t.Cfg.Distributor.ShardByAllLabels
	cfg.VerifySignatures = t.Cfg.Distributor.SignWriteRequests
	if t.Cfg.Distributor.SignWriteRequests {
		cfg.StreamSigningKeys = t.Cfg.Distributor.SignWriteRequestsKeys
	}
	// Advertise the gRPC server as bound (so -server.grpc-listen-port=0
	// works) unless the operator said otherwise.
	if cfg.LifecyclerConfig.Port == 0 {
		cfg.LifecyclerConfig.Port = t.Server.GRPCAddr().(*net.TCPAddr).Port
	}
	if cfg.LifecyclerConfig.Addr == "" && t.Cfg.Server.GRPCListenAddress != "" {
		if ip := net.ParseIP(t.Cfg.Server.GRPCListenAddress); ip != nil && !ip.IsUnspecified() {
			cfg.LifecyclerConfig.Addr = t.Cfg.Server.GRPCListenAddress
		}
	}
	reg := prometheus.WrapRegistererWithPrefix("cortex_", t.Registry)
	store, err := kv.NewClient(cfg.LifecyclerConfig.RingConfig.KVStore, ring.GetCodec(), t.gossip, ingester.RingName+"-lifecycler", reg, t.Logger, kv.WithTLS(t.TLS, ""))
	if err != nil {
		return nil, fmt.Errorf("ingester ring: -ring.store=%s: %w", cfg.LifecyclerConfig.RingConfig.KVStore.Store, err)
	}
	bkt, err := t.blocksBucketFor(Ingester)
	if err != nil {
		return nil, err
	}
	mon, err := t.resourceMonitorOf()
	if err != nil {
		return nil, err
	}
	ing, err := ingester.New(cfg, store, t.Overrides, t.Logger, t.Registry, ingester.WithBucket(bkt), ingester.WithInstanceLimits(t.ingesterInstanceLimits), ingester.WithResourceMonitor(mon))
	if err != nil {
		return nil, err
	}
	t.Ingester = ing
	client.RegisterIngesterServer(t.Server.GRPC, ing)
	t.Server.TrackHealth(client.ServiceName, ing)
	t.readyChecks = append(t.readyChecks, ing.CheckReady)
	t.API.RegisterIngester(ing)
	// Where no ring client runs in this process, the lifecycler serves the ring page.
	if !t.Cfg.runs(Ring) {
		t.API.RegisterRing(ing.RingHandler())
	}
	return ing, nil
}

func (t *Cortex) initDistributor() (services.Service, error) {
	var opts []distributor.Option
	if t.Cfg.Limits.IngestionRateStrategy == validation.GlobalIngestionRateStrategy {
		r, err := t.distributorRing()
		if err != nil {
			return nil, err
		}
		opts = append(opts, distributor.WithRing(r))
		t.API.RegisterDistributorRing(r)
	}
	d, err := distributor.New(t.Cfg.Distributor, t.Cfg.IngesterClient, t.ingesterTLS, t.Overrides, t.Ring, t.Logger, t.Registry, opts...)
	if err != nil {
		return nil, err
	}
	t.Distributor = d
	t.API.RegisterDistributor(d, t.Cfg.HTTPPrefix)
	if t.haTracker != nil {
		d.SetHATracker(t.haTracker, t.Registry)
		t.API.RegisterHATracker(t.haTracker)
	}
	return d, nil
}

// distributorRing is this distributor's membership of the distributor ring
// (-distributor.ring.*), which the global ingestion rate strategy divides
// the tenants' rate limits by.
func (t *Cortex) distributorRing() (*distributor.Ring, error) {
	cfg := t.Cfg.Distributor.DistributorRing
	if cfg.KVStore.Store == "memberlist" && t.gossip == nil {
		return nil, fmt.Errorf("-distributor.ring.store=memberlist: the gossip KV (-memberlist.*) is not running in this process")
	}
	reg := prometheus.WrapRegistererWithPrefix("cortex_", t.Registry)
	store, err := kv.NewClient(cfg.KVStore, ring.GetCodec(), t.gossip, distributor.RingName+"-lifecycler", reg, t.Logger, kv.WithTLS(t.TLS, "distributor.ring."))
	if err != nil {
		return nil, fmt.Errorf("distributor ring: -distributor.ring.store=%s: %w", cfg.KVStore.Store, err)
	}
	host, port := t.advertisedGRPC()
	r, err := distributor.NewRing(cfg, store, host, port, t.Logger.With("component", "distributor-ring"), reg)
	if err != nil {
		return nil, fmt.Errorf("distributor ring: %w", err)
	}
	return r, nil
}

func (t *Cortex) initQuerier() (services.Service, error) {
	store, err := t.storeGatewayOption()
	if err != nil {
		return nil, err
	}
	q, err := querier.New(t.Cfg.Querier, t.Cfg.IngesterClient, t.ingesterTLS, t.Overrides, t.Ring, t.Logger, t.Registry, store, querier.WithTenantFederation(t.Cfg.TenantFederation))
	if err != nil {
		return nil, err
	}
	t.Querier = q
	t.API.RegisterUserStats(q.UserStatsHandler(), t.Cfg.HTTPPrefix)
	if !t.Cfg.runs(QueryFrontend) {
		// With a query-frontend in this process, it serves these paths and
		// the querier takes its queries through the worker.
		t.API.RegisterPrometheusAPI(Querier, t.prometheusPrefixes(), q.Handler())
	}
	return t.withQuerierWorker(q)
}
