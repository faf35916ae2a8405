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
)

// Constructors of the write and read path's modules.

func (t *Cortex) initIngester() (services.Service, error) {
	cfg := t.Cfg.Ingester
	cfg.TSDB = t.Cfg.BlocksStorage.TSDB
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
	ing, err := ingester.New(cfg, store, t.Overrides, t.Logger, t.Registry, ingester.WithBucket(bkt), ingester.WithInstanceLimits(t.ingesterInstanceLimits))
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
	d, err := distributor.New(t.Cfg.Distributor, t.Cfg.IngesterClient, t.ingesterTLS, t.Overrides, t.Ring, t.Logger, t.Registry)
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
