package cortex

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/api"
	"github.com/cortex-tls/cortex/pkg/auth"
	"github.com/cortex-tls/cortex/pkg/ha"
	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/kv"
	"github.com/cortex-tls/cortex/pkg/kv/gossip"
	"github.com/cortex-tls/cortex/pkg/server"
	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// Constructors of the modules every component shares.

func (t *Cortex) initTLSReloader() (services.Service, error) {
	if t.Cfg.TLSReloadInterval <= 0 {
		return nil, nil
	}
	return services.NewTimerService(t.Cfg.TLSReloadInterval, nil, func(context.Context) error {
		t.TLS.Reload()
		return nil
	}, nil), nil
}

// initAuth loads -auth.client-tenants-file (a bad file fails the start)
// and reloads it while the process runs.
func (t *Cortex) initAuth() (services.Service, error) {
	a, err := auth.New(t.Cfg.Auth, t.Logger.With("component", "auth"), t.Registry)
	if err != nil {
		return nil, err
	}
	t.authorizer = a
	return a.Service(), nil
}

func (t *Cortex) initServer() (services.Service, error) {
	// channelz shows every connection's peer and certificate.
	opts := append(t.authorizer.GRPCServerOptions(), t.authorizer.AllTenantsGRPCServices("grpc.channelz.v1.Channelz")...)
	cfg := t.Cfg.Server
	cfg.RequestLogHeaders, cfg.RequestIDHeader = t.Cfg.API.HTTPRequestHeadersToLog, t.Cfg.API.RequestIDHeader
	s, err := server.New(cfg, t.TLS, t.Logger, opts...)
	if err != nil {
		return nil, err
	}
	t.Server = s
	return s.Service(), nil
}

func (t *Cortex) initAPI() (services.Service, error) {
	tenantMiddleware, err := t.tenantMiddleware()
	if err != nil {
		return nil, err
	}
	t.API = api.New(t.Server.HTTP, t.Cfg.AuthEnabled, t.Cfg.Target.String(), api.Auth{
		Tenant:     tenantMiddleware,
		AllTenants: t.authorizer.AllTenantsMiddleware,
	})
	apiCfg := t.Cfg.API
	apiCfg.ServerPathPrefix = t.Cfg.Server.PathPrefix
	if err := t.API.Configure(apiCfg); err != nil {
		return nil, err
	}
	t.API.RegisterServer(api.Server{
		Ready:         t.Server.ReadyHandler(),
		Healthz:       t.Server.HealthzHandler(),
		Metrics:       promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry}),
		Config:        t.configHandler(),
		RuntimeConfig: http.HandlerFunc(t.serveRuntimeConfig),
		Services:      http.HandlerFunc(t.serveServices),

		Instrumentation: t.Cfg.Server.RegisterInstrumentation,
	})
	return nil, nil
}

func (t *Cortex) initMemberlistKV() (services.Service, error) {
	if !slices.Contains(t.Cfg.ringStores(), "memberlist") {
		return nil, nil
	}
	// The gossip KV is this project's own (pkg/kv/gossip) rather than
	// dskit's, whose transport cannot ask peers for client certificates
	// nor reload its files; its flags are dskit's -memberlist.* ones.
	k, err := gossip.New(t.Cfg.MemberlistKV, gossip.TLSConfigFromFlags(t.Cfg.MemberlistKV.TCPTransport), t.TLS, t.Logger.With("component", "memberlist"), t.Registry)
	if err != nil {
		return nil, err
	}
	t.gossip = k
	// Every member relays the HA tracker's elections, whether or not it
	// runs a distributor: register their codec.
	k.Client(ha.Codec{})
	t.API.RegisterMemberlist(k.StatusHandler())
	return k.Service(), nil
}

func (t *Cortex) initRing() (services.Service, error) {
	cfg := t.Cfg.Ingester.LifecyclerConfig.RingConfig
	reg := prometheus.WrapRegistererWithPrefix("cortex_", t.Registry)
	store, err := kv.NewClient(cfg.KVStore, ring.GetCodec(), t.gossip, ingester.RingName+"-ring", reg, t.Logger, kv.WithTLS(t.TLS, ""))
	if err != nil {
		return nil, fmt.Errorf("ingester ring: -ring.store=%s: %w", cfg.KVStore.Store, err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(cfg, ingester.RingName, ingester.RingKey, store, ring.NewDefaultReplicationStrategy(), reg, t.kitLogger)
	if err != nil {
		return nil, fmt.Errorf("ingester ring: %w", err)
	}
	if t.Cfg.Ingester.RingDetailedMetricsEnabled {
		if err := shardring.RegisterDetailedMetrics(ingester.RingName, ingester.RingKey, store, reg); err != nil {
			return nil, fmt.Errorf("ingester ring: detailed metrics: %w", err)
		}
	}
	t.Ring = r
	t.API.RegisterRing(r)
	return r, nil
}

func (t *Cortex) initIngesterTLS() (services.Service, error) {
	cfg, inherited := t.ingesterClientTLS()
	if inherited {
		t.Logger.Info("the in-process clients of this process's gRPC server use its TLS key pair and CA, as no -ingester.client.tls-* flag is set",
			"cert", cfg.CertPath, "ca", cfg.CAPath)
	}
	c, err := tlsconfig.NewClient(client.TLSPrefix, cfg, t.TLS)
	if err != nil {
		return nil, err
	}
	t.ingesterTLS = c
	return nil, nil
}

// initBlocksBucket checks -blocks-storage.backend and its settings. Each
// module that reads or writes blocks opens its own client with
// blocksBucketFor, named after it in the thanos_objstore_bucket_* metrics
// (component="ingester", ...) as in Cortex; this module, which they depend
// on, closes them after they stopped.
func (t *Cortex) initBlocksBucket() (services.Service, error) {
	if err := t.Cfg.BlocksStorage.Bucket.Validate(); err != nil {
		return nil, err
	}
	return services.NewIdleService(nil, func(error) error {
		var errs []error
		for _, b := range t.blocksBuckets {
			errs = append(errs, b.Close())
		}
		return errors.Join(errs...)
	}), nil
}

// blocksBucketFor opens a client of the blocks storage bucket for component.
func (t *Cortex) blocksBucketFor(component string, opts ...bucket.ClientOption) (objstore.InstrumentedBucket, error) {
	b, err := bucket.NewClient(context.Background(), t.Cfg.BlocksStorage.Bucket, component, t.TLS, t.Logger, t.Registry, opts...)
	if err != nil {
		return nil, err
	}
	t.blocksBuckets = append(t.blocksBuckets, b)
	return b, nil
}

func (t *Cortex) serveServices(w http.ResponseWriter, _ *http.Request) {
	names := make([]string, 0, len(t.services))
	for n := range t.services {
		names = append(names, n)
	}
	slices.Sort(names)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, n := range names {
		fmt.Fprintf(w, "%s: %s\n", n, t.services[n].State())
	}
}

// ingesterClientTLS is the -ingester.client.tls-* configuration in effect.
// When this process runs an ingester next to its clients (-target=all),
// its gRPC server requires TLS with a CA (-server.grpc-tls-ca-path) and no
// -ingester.client.tls-* flag is set, the clients present the server's own
// key pair and trust that CA: a process whose servers have TLS then works
// without repeating its certificate for every in-process link. The second
// result reports that fallback.
func (t *Cortex) ingesterClientTLS() (tlsconfig.ClientConfig, bool) {
	cfg := t.Cfg.IngesterClient.TLS
	srv := t.Cfg.Server.GRPCTLS
	if cfg.TLSOn() || srv.CertPath == "" || srv.CAPath == "" || !t.Cfg.runs(Ingester) {
		return cfg, false
	}
	cfg.CertPath, cfg.KeyPath, cfg.CAPath = srv.CertPath, srv.KeyPath, srv.CAPath
	return cfg, true
}
