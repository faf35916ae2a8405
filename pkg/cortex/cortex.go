// Package cortex wires the configured components of one process together:
// the shared servers and TLS loader, and the modules -target selects.
package cortex

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/runtimeconfig"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cortex-tls/cortex/pkg/alertmanager"
	"github.com/cortex-tls/cortex/pkg/configs"
	"github.com/cortex-tls/cortex/pkg/distributor"
	"github.com/cortex-tls/cortex/pkg/frontend"
	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/querier"
	"github.com/cortex-tls/cortex/pkg/querier/worker"
	"github.com/cortex-tls/cortex/pkg/server"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/config"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Config is the root configuration; its YAML mirrors the flags, with
// Cortex's block names.
type Config struct {
	Target            flagext.StringSliceCSV `yaml:"target"`
	AuthEnabled       bool                   `yaml:"auth_enabled"`
	TLSReloadInterval time.Duration          `yaml:"tls_reload_interval"`
	Server            server.Config          `yaml:"server"`
	Distributor       distributor.Config     `yaml:"distributor"`
	Querier           querier.Config         `yaml:"querier"`
	Frontend          frontend.Config        `yaml:"frontend"`
	Worker            worker.Config          `yaml:"frontend_worker"`
	IngesterClient    client.Config          `yaml:"ingester_client"`
	Ingester          ingester.Config        `yaml:"ingester"`
	BlocksStorage     BlocksStorageConfig    `yaml:"blocks_storage"`
	Limits            validation.Limits      `yaml:"limits"`
	RuntimeConfig     runtimeconfig.Config   `yaml:"runtime_config"`
	MemberlistKV      memberlist.KVConfig    `yaml:"memberlist"`
	Alertmanager      alertmanager.Config    `yaml:"alertmanager"`
	Configs           configs.Config         `yaml:"configs"`
}

// RegisterFlags registers every flag of the process.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Target = []string{All}
	f.Var(&c.Target, "target", "Comma-separated components to run in this process: distributor, ingester, querier, query-frontend, alertmanager, configs, or all.")
	f.BoolVar(&c.AuthEnabled, "auth.enabled", true, "Require X-Scope-OrgID on every request to name the tenant. When false, everything belongs to the tenant \""+tenant.DefaultTenant+"\".")
	f.DurationVar(&c.TLSReloadInterval, "tls.reload-interval", 10*time.Second, "How often every TLS certificate, key and CA file of the process is checked for changes and reloaded. 0 disables reloading.")
	c.Server.RegisterFlags(f)
	c.Distributor.RegisterFlags(f)
	c.Querier.RegisterFlags(f)
	c.Frontend.RegisterFlags(f)
	c.Worker.RegisterFlags(f)
	c.IngesterClient.RegisterFlags(f)
	// A single process needs no KV service: default to the in-memory ring.
	c.Ingester.LifecyclerConfig.RingConfig.KVStore.Store = "inmemory"
	c.Ingester.RegisterFlags(f, slog.Default())
	c.BlocksStorage.TSDB.RegisterFlags(f)
	c.Limits.RegisterFlags(f)
	c.RuntimeConfig.RegisterFlags(f)
	c.MemberlistKV.RegisterFlags(f)
	c.Alertmanager.RegisterFlags(f)
	c.Configs.RegisterFlags(f)
}

// BlocksStorageConfig is Cortex's blocks_storage block: for now, the
// ingesters' local TSDBs.
type BlocksStorageConfig struct {
	TSDB ingester.TSDBConfig `yaml:"tsdb"`
}

// validate checks settings that only make sense together.
func (t *Cortex) validate() error {
	store := t.Cfg.Ingester.LifecyclerConfig.RingConfig.KVStore.Store
	if store == "inmemory" && !slices.Equal(t.Cfg.Target, []string{All}) && t.usesRing() {
		return fmt.Errorf("-ring.store=inmemory only works when every component runs in one process (-target=all), but -target=%s: use -ring.store=memberlist with -memberlist.join=<other processes>, or consul or etcd", t.Cfg.Target.String())
	}
	return nil
}

// Cortex is one running process.
type Cortex struct {
	Cfg       Config
	Logger    *slog.Logger
	Registry  *prometheus.Registry
	TLS       *tlsconfig.Loader
	Server    *server.Server
	Overrides *validation.Overrides
	Ring      *ring.Ring

	Ingester    *ingester.Ingester
	Distributor *distributor.Distributor
	Querier     *querier.Querier

	modules       *modules.Manager
	services      map[string]services.Service
	runtimeConfig *runtimeconfig.Manager
	ingesterTLS   *tlsconfig.Client
	readyChecks   []func(context.Context) error
}

// New validates cfg, loads every certificate and binds the listeners: any
// problem is reported here, before anything starts serving.
func New(cfg Config, logger *slog.Logger) (*Cortex, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	t := &Cortex{Cfg: cfg, Logger: logger, Registry: reg, TLS: tlsconfig.NewLoader(logger, reg)}
	t.modules = modules.NewManager(kitlog.New(logger))
	t.registerModules()
	for _, target := range cfg.Target {
		if !t.modules.IsTargetableModule(target) {
			return nil, fmt.Errorf("-target=%s: unknown component %q; valid values: %s", cfg.Target.String(), target, strings.Join(t.modules.UserVisibleModuleNames(), ", "))
		}
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	if rf := &t.Cfg.Ingester.LifecyclerConfig.RingConfig.ReplicationFactor; t.Cfg.Ingester.LifecyclerConfig.RingConfig.KVStore.Store == "inmemory" && *rf > 1 && t.usesRing() {
		// One process has one ingester, so it cannot keep more than one copy.
		logger.Info("in-memory ring: one ingester, so replication factor 1", "flag_value", *rf)
		*rf = 1
	}
	svcs, err := t.modules.InitModuleServices(cfg.Target...)
	if err != nil {
		return nil, err
	}
	t.services = svcs
	return t, nil
}

// Run starts the modules and serves until ctx ends (SIGTERM) or a module
// fails, then stops everything in dependency order.
func (t *Cortex) Run(ctx context.Context) error {
	svcs := make([]services.Service, 0, len(t.services))
	for _, s := range t.services {
		svcs = append(svcs, s)
	}
	sm, err := services.NewManager(svcs...)
	if err != nil {
		return err
	}
	t.Server.SetReadiness(func() error {
		if err := readiness(sm); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, check := range t.readyChecks {
			if err := check(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err := sm.StartAsync(context.Background()); err != nil {
		return err
	}
	failed := make(chan error, 1)
	sm.AddListener(services.NewManagerListener(nil, nil, func(s services.Service) {
		select {
		case failed <- s.FailureCase():
		default:
		}
	}))
	var runErr error
	select {
	case <-ctx.Done():
		t.Logger.Info("shutting down")
	case runErr = <-failed:
		t.Logger.Error("a module failed, shutting down", "err", runErr)
	}
	sm.StopAsync()
	stopCtx, cancel := context.WithTimeout(context.Background(), t.Cfg.Server.GracefulShutdownTimeout+10*time.Second)
	defer cancel()
	if err := sm.AwaitStopped(stopCtx); err != nil {
		return fmt.Errorf("stopping: %w", err)
	}
	if runErr == nil {
		for name, s := range t.services {
			if err := s.FailureCase(); err != nil && !errors.Is(err, modules.ErrStopProcess) {
				runErr = fmt.Errorf("module %s: %w", name, err)
			}
		}
	}
	return runErr
}

func readiness(sm *services.Manager) error {
	if sm.IsHealthy() {
		return nil
	}
	var waiting []string
	for state, svcs := range sm.ServicesByState() {
		if state != services.Running {
			waiting = append(waiting, fmt.Sprintf("%d %s", len(svcs), strings.ToLower(state.String())))
		}
	}
	slices.Sort(waiting)
	return fmt.Errorf("modules not running: %s", strings.Join(waiting, ", "))
}

func (t *Cortex) serveConfig(w http.ResponseWriter, _ *http.Request) {
	out, err := config.Dump(&t.Cfg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
	_, _ = w.Write(out)
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

func (t *Cortex) handleCommon() {
	t.Server.HTTP.Handle("GET /metrics", promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry}))
	t.Server.HTTP.HandleFunc("GET /config", t.serveConfig)
	t.Server.HTTP.HandleFunc("GET /services", t.serveServices)
	// Profiling, as Cortex exposes it; behind the HTTP server's TLS and client auth.
	t.Server.HTTP.HandleFunc("/debug/pprof/", pprof.Index)
	t.Server.HTTP.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	t.Server.HTTP.HandleFunc("/debug/pprof/profile", pprof.Profile)
	t.Server.HTTP.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	t.Server.HTTP.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
