package cortex

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/runtimeconfig"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/distributor"
	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/kv/gossip"
	"github.com/cortex-tls/cortex/pkg/querier"
	"github.com/cortex-tls/cortex/pkg/server"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Module names. All depends on every component.
const (
	TLSReloader   = "tls-reloader"
	Server        = "server"
	RuntimeConfig = "runtime-config"
	Overrides     = "overrides"
	MemberlistKV  = "memberlist-kv"
	Ring          = "ring"
	IngesterTLS   = "ingester-client-tls"
	Ingester      = "ingester"
	Distributor   = "distributor"
	Querier       = "querier"
	All           = "all"
)

func (t *Cortex) registerModules() {
	hidden := modules.UserInvisibleModule
	t.modules.RegisterModule(TLSReloader, t.initTLSReloader, hidden)
	t.modules.RegisterModule(Server, t.initServer, hidden)
	t.modules.RegisterModule(RuntimeConfig, t.initRuntimeConfig, hidden)
	t.modules.RegisterModule(Overrides, t.initOverrides, hidden)
	t.modules.RegisterModule(MemberlistKV, t.initMemberlistKV, hidden)
	t.modules.RegisterModule(Ring, t.initRing, hidden)
	t.modules.RegisterModule(IngesterTLS, t.initIngesterTLS, hidden)
	t.modules.RegisterModule(Ingester, t.initIngester)
	t.modules.RegisterModule(Distributor, t.initDistributor)
	t.modules.RegisterModule(Querier, t.initQuerier)
	t.modules.RegisterModule(All, nil)
	t.registerFrontendModule() // query-frontend: modules_frontend.go
	t.registerAlertmanagerModule()
	t.registerConfigsModule() // modules_configs.go

	deps := map[string][]string{
		Server:       {TLSReloader},
		Overrides:    {RuntimeConfig},
		Ring:         {Server, MemberlistKV},
		IngesterTLS:  {TLSReloader},
		Ingester:     {Server, Overrides, MemberlistKV},
		Distributor:  {Server, Overrides, Ring, IngesterTLS},
		Querier:      {Server, Overrides, Ring, IngesterTLS},
		MemberlistKV: {Server},
		All:          {Distributor, Ingester, Querier},
	}
	for name, d := range deps {
		if err := t.modules.AddDependency(name, d...); err != nil {
			panic(err) // a wiring mistake in this file, caught by every test
		}
	}
}

func (t *Cortex) initTLSReloader() (services.Service, error) {
	if t.Cfg.TLSReloadInterval <= 0 {
		return nil, nil
	}
	return services.NewTimerService(t.Cfg.TLSReloadInterval, nil, func(context.Context) error {
		t.TLS.Reload()
		return nil
	}, nil), nil
}

func (t *Cortex) initServer() (services.Service, error) {
	s, err := server.New(t.Cfg.Server, t.TLS, t.Logger)
	if err != nil {
		return nil, err
	}
	t.Server = s
	t.handleCommon()
	return s.Service(), nil
}

func (t *Cortex) initRuntimeConfig() (services.Service, error) {
	if len(t.Cfg.RuntimeConfig.LoadPath) == 0 {
		return nil, nil
	}
	t.Cfg.RuntimeConfig.Loader = validation.Loader(t.Cfg.Limits)
	m, err := runtimeconfig.New(t.Cfg.RuntimeConfig, "cortex", t.Registry, kitlog.New(t.Logger))
	if err != nil {
		return nil, fmt.Errorf("-runtime-config.file: %w", err)
	}
	t.runtimeConfig = m
	return m, nil
}

func (t *Cortex) initOverrides() (services.Service, error) {
	if err := t.Cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	m := t.runtimeConfig
	t.Overrides = validation.NewOverrides(t.Cfg.Limits, func() map[string]*validation.Limits {
		if m == nil {
			return nil
		}
		if rc, ok := m.GetConfig().(*validation.RuntimeConfig); ok && rc != nil {
			return rc.Overrides
		}
		return nil
	})
	return nil, nil
}

func (t *Cortex) initMemberlistKV() (services.Service, error) {
	kvCfg := &t.Cfg.Ingester.LifecyclerConfig.RingConfig.KVStore
	if kvCfg.Store != "memberlist" {
		return nil, nil
	}
	// The gossip KV is this project's own (pkg/kv/gossip) rather than
	// dskit's, whose transport cannot ask peers for client certificates
	// nor reload its files; its flags are dskit's -memberlist.* ones.
	k, err := gossip.New(t.Cfg.MemberlistKV, gossip.TLSConfigFromFlags(t.Cfg.MemberlistKV.TCPTransport), t.TLS, t.Logger.With("component", "memberlist"), t.Registry)
	if err != nil {
		return nil, err
	}
	kvCfg.Mock = k.Client(ring.GetCodec())
	t.Server.HTTP.HandleFunc("/memberlist", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "node %s, gossip port %d\nmembers:\n", k.NodeName(), k.ListenPort())
		for _, m := range k.Members() {
			fmt.Fprintln(w, m)
		}
	})
	return k.Service(), nil
}

func (t *Cortex) initRing() (services.Service, error) {
	reg := prometheus.WrapRegistererWithPrefix("cortex_", t.Registry)
	r, err := ring.New(t.Cfg.Ingester.LifecyclerConfig.RingConfig, ingester.RingName, ingester.RingKey, kitlog.New(t.Logger), reg)
	if err != nil {
		return nil, fmt.Errorf("ingester ring: %w", err)
	}
	t.Ring = r
	t.Server.HTTP.Handle("/ingester/ring", r)
	t.Server.HTTP.Handle("/ring", r)
	return r, nil
}

func (t *Cortex) initIngesterTLS() (services.Service, error) {
	c, err := tlsconfig.NewClient(client.TLSPrefix, t.Cfg.IngesterClient.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	t.ingesterTLS = c
	return nil, nil
}

func (t *Cortex) initIngester() (services.Service, error) {
	cfg := t.Cfg.Ingester
	cfg.TSDB = t.Cfg.BlocksStorage.TSDB
	// Advertise the gRPC server unless the operator said otherwise.
	if cfg.LifecyclerConfig.Port == 0 {
		cfg.LifecyclerConfig.Port = t.Cfg.Server.GRPCListenPort
	}
	if cfg.LifecyclerConfig.Addr == "" && t.Cfg.Server.GRPCListenAddress != "" {
		if ip := net.ParseIP(t.Cfg.Server.GRPCListenAddress); ip != nil && !ip.IsUnspecified() {
			cfg.LifecyclerConfig.Addr = t.Cfg.Server.GRPCListenAddress
		}
	}
	ing, err := ingester.New(cfg, t.Overrides, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	t.Ingester = ing
	client.RegisterIngesterServer(t.Server.GRPC, ing)
	t.readyChecks = append(t.readyChecks, ing.CheckReady)
	// Where no ring client runs in this process, the lifecycler serves the ring page.
	if h := ing.RingHandler(); h != nil && !t.runsRingClient() {
		t.Server.HTTP.Handle("/ingester/ring", h)
	}
	return ing, nil
}

func (t *Cortex) initDistributor() (services.Service, error) {
	d, err := distributor.New(t.Cfg.Distributor, t.Cfg.IngesterClient, t.ingesterTLS, t.Overrides, t.Ring, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	t.Distributor = d
	push := tenant.HTTPMiddleware(t.Cfg.AuthEnabled, d.PushHandler())
	t.Server.HTTP.Handle("POST /api/v1/push", push)
	t.Server.HTTP.Handle("POST /api/prom/push", push)
	t.Server.HTTP.Handle("/distributor/all_user_stats", d.AllUserStatsHandler())
	return d, nil
}

func (t *Cortex) initQuerier() (services.Service, error) {
	q, err := querier.New(t.Cfg.Querier, t.Cfg.IngesterClient, t.ingesterTLS, t.Overrides, t.Ring, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	t.Querier = q
	api := tenant.HTTPMiddleware(t.Cfg.AuthEnabled, q.Handler())
	t.Server.HTTP.Handle(t.Cfg.Querier.PrometheusHTTPPrefix+"/api/v1/", api)
	if t.Cfg.Querier.PrometheusHTTPPrefix != "/api/prom" {
		t.Server.HTTP.Handle("/api/prom/api/v1/", api) // Cortex's legacy prefix
	}
	return t.withQuerierWorker(q)
}

// runsRingClient reports whether a target of this process reads the ring.
func (t *Cortex) runsRingClient() bool { return t.targetsNeed(Ring) }

// usesRing reports whether a target of this process reads or joins the
// ingester ring, and so needs its KV store.
func (t *Cortex) usesRing() bool { return t.targetsNeed(Ring, Ingester) }

// targetsNeed reports whether any target is, or depends on, one of modules.
func (t *Cortex) targetsNeed(modules ...string) bool {
	for _, target := range t.Cfg.Target {
		for _, dep := range append(t.modules.DependenciesForModule(target), target) {
			if slices.Contains(modules, dep) {
				return true
			}
		}
	}
	return false
}

var _ http.Handler = (*ring.Ring)(nil)
