// Package cortex wires the configured components of one process together:
// the shared servers and TLS loader, and the modules -target selects, from
// one module table (modules.go).
//
// It only wires: it holds no component logic, registers no HTTP route
// itself (pkg/api does), and never changes the configuration after
// Config.Validate and finalize.
package cortex

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/alertmanager"
	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/api"
	"github.com/cortex-tls/cortex/pkg/auth"
	"github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/compactor"
	"github.com/cortex-tls/cortex/pkg/configs"
	"github.com/cortex-tls/cortex/pkg/distributor"
	"github.com/cortex-tls/cortex/pkg/flusher"
	"github.com/cortex-tls/cortex/pkg/frontend"
	"github.com/cortex-tls/cortex/pkg/ha"
	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/kv/gossip"
	"github.com/cortex-tls/cortex/pkg/querier"
	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
	"github.com/cortex-tls/cortex/pkg/querier/worker"
	"github.com/cortex-tls/cortex/pkg/ruler"
	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/scheduler"
	"github.com/cortex-tls/cortex/pkg/server"
	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/tracing"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/resource"
	"github.com/cortex-tls/cortex/pkg/util/validation"
	"github.com/cortex-tls/cortex/pkg/util/version"
)

// Config is the root configuration. Its YAML is the layout of Cortex's
// configuration file reference: the keys a component keeps elsewhere are
// moved by the loader (keyMoves, notbuilt.go), and the keys of Cortex
// features not built here are refused (NotBuilt).
type Config struct {
	// PrintConfig is -print.config: print the configuration and exit.
	PrintConfig bool `yaml:"-"`
	// Storage and NameValidationScheme take the one value built here
	// (registerSingleChoiceFlags).
	Storage              StorageConfig `yaml:"storage"`
	NameValidationScheme string        `yaml:"name_validation_scheme"`

	Target            flagext.StringSliceCSV     `yaml:"target"`
	AuthEnabled       bool                       `yaml:"auth_enabled"`
	TLSReloadInterval time.Duration              `yaml:"tls_reload_interval"`
	HTTPPrefix        string                     `yaml:"http_prefix"`
	API               api.Config                 `yaml:"api"`
	Server            server.Config              `yaml:"server"`
	Distributor       distributor.Config         `yaml:"distributor"`
	Querier           querier.Config             `yaml:"querier"`
	Frontend          frontend.Config            `yaml:"frontend"`
	Worker            worker.Config              `yaml:"frontend_worker"`
	QueryScheduler    scheduler.Config           `yaml:"query_scheduler"`
	IngesterClient    client.Config              `yaml:"ingester_client"`
	Ingester          ingester.Config            `yaml:"ingester"`
	Flusher           flusher.Config             `yaml:"flusher"`
	BlocksStorage     BlocksStorageConfig        `yaml:"blocks_storage"`
	Limits            validation.Limits          `yaml:"limits"`
	RuntimeConfig     RuntimeConfigConfig        `yaml:"runtime_config"`
	MemberlistKV      gossip.Config              `yaml:"memberlist"`
	Alertmanager      alertmanager.Config        `yaml:"alertmanager"`
	Configs           configs.Config             `yaml:"configs"`
	Compactor         compactor.Config           `yaml:"compactor"`
	StoreGateway      storegateway.GatewayConfig `yaml:"store_gateway"`
	Auth              auth.Config                `yaml:"auth"`
	Ruler             ruler.Config               `yaml:"ruler"`
	RulerStorage      rulestore.Config           `yaml:"ruler_storage"`

	AlertmanagerStorage alertstore.Config `yaml:"alertmanager_storage"`

	TenantFederation tenantfederation.Config `yaml:"tenant_federation"`

	ResourceMonitor resource.Config `yaml:"resource_monitor"`

	Tracing tracing.Config `yaml:"tracing"`
}

// RegisterFlags registers every flag of the process.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Target = []string{All}
	f.BoolVar(&c.PrintConfig, "print.config", false, "Print the effective configuration, in the configuration file's YAML layout, and exit.")
	c.registerSingleChoiceFlags(f)
	f.Var(&c.Target, "target", "Comma-separated components to run in this process: "+strings.Join(targetNames(), ", ")+". all runs every component.")
	f.BoolVar(&c.AuthEnabled, "auth.enabled", true, "Require X-Scope-OrgID on every request to name the tenant. When false, everything belongs to the tenant \""+tenant.DefaultTenant+"\".")
	c.registerHTTPPrefix(f)
	f.DurationVar(&c.TLSReloadInterval, "tls.reload-interval", 10*time.Second, "How often every TLS certificate, key and CA file of the process is checked for changes and reloaded. 0 disables reloading.")
	c.API.RegisterFlags(f)
	c.Server.RegisterFlags(f)
	c.Distributor.RegisterFlags(f)
	c.Querier.RegisterFlags(f)
	c.Frontend.RegisterFlags(f)
	c.Worker.RegisterFlags(f)
	c.QueryScheduler.RegisterFlags(f)
	c.IngesterClient.RegisterFlags(f)
	// A single process needs no KV service: default to the in-memory ring.
	c.Ingester.LifecyclerConfig.RingConfig.KVStore.Store = "inmemory"
	c.Ingester.RegisterFlags(f, slog.Default())
	c.Flusher.RegisterFlags(f)
	c.BlocksStorage.Bucket.RegisterFlagsWithPrefix("blocks-storage.", f)
	c.BlocksStorage.BucketStore.RegisterFlags(f)
	c.BlocksStorage.TSDB.RegisterFlags(f)
	c.BlocksStorage.UsersScanner.RegisterFlagsWithPrefix("blocks-storage", f)
	c.Limits.RegisterFlags(f)
	c.RuntimeConfig.RegisterFlags(f)
	c.MemberlistKV.RegisterFlags(f)
	c.Alertmanager.RegisterFlags(f)
	c.Configs.RegisterFlags(f)
	c.Compactor.RegisterFlags(f)
	c.StoreGateway.RegisterFlags(f)
	c.Auth.RegisterFlags(f)
	c.Ruler.RegisterFlags(f)
	c.RulerStorage.RegisterFlags(f)
	c.AlertmanagerStorage.RegisterFlags(f)
	c.TenantFederation.RegisterFlags(f)
	c.ResourceMonitor.RegisterFlags(f)
	c.Tracing.RegisterFlags(f)
	c.clearInstanceIDDefaults(f)
	setCortexDefaults(f)
	registerDeprecatedFlags(f)
}

// BlocksStorageConfig is Cortex's blocks_storage block: the bucket the
// blocks live in (its keys inline, as in Cortex) and the ingesters' local
// TSDBs.
type BlocksStorageConfig struct {
	Bucket      bucket.Config       `yaml:",inline"`
	BucketStore storegateway.Config `yaml:"bucket_store"`
	TSDB        ingester.TSDBConfig `yaml:"tsdb"`
	// UsersScanner lists the bucket's tenants for the store-gateways, and
	// has the compactor write the user index its user_index strategy reads.
	UsersScanner users.Config `yaml:"users_scanner"`
}

// Validate checks the settings that only make sense together. The
// components' own settings are checked by their constructors.
func (c *Config) Validate() error {
	if err := validateTarget(c.Target); err != nil {
		return err
	}
	if err := validateHTTPPrefix(c.HTTPPrefix); err != nil {
		return err
	}
	if err := c.API.Validate(); err != nil {
		return err
	}
	store := c.Ingester.LifecyclerConfig.RingConfig.KVStore.Store
	if store == "inmemory" && !slices.Equal(c.Target, []string{All}) && c.usesRing() {
		return fmt.Errorf("-ring.store=inmemory only works when every component runs in one process (-target=all), but -target=%s: use -ring.store=memberlist with -memberlist.join=<other processes>, or consul or etcd", c.Target.String())
	}
	if err := c.validateSingleChoices(); err != nil {
		return err
	}
	if err := c.IngesterClient.Validate(); err != nil {
		return err
	}
	if err := c.TenantFederation.Validate(); err != nil {
		return err
	}
	if err := c.ResourceMonitor.Validate(); err != nil {
		return err
	}
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	if err := c.RuntimeConfig.Validate(); err != nil {
		return err
	}
	if err := c.BlocksStorage.UsersScanner.Validate(); err != nil {
		return err
	}
	if err := c.StoreGateway.Validate(); err != nil {
		return err
	}
	if c.StoreGateway.ShardingEnabled && c.StoreGateway.ShardingRing.KVStore.Store == "inmemory" && !slices.Equal(c.Target, []string{All}) && c.runs(StoreGateway, Querier) {
		return fmt.Errorf("-store-gateway.sharding-ring.store=inmemory only works when every component runs in one process (-target=all), but -target=%s: use memberlist, consul or etcd", c.Target.String())
	}
	if c.Ruler.Sharding.EnableSharding && c.Ruler.Sharding.Ring.KVStore.Store == "inmemory" && !slices.Equal(c.Target, []string{All}) && c.runs(Ruler) {
		return fmt.Errorf("-ruler.ring.store=inmemory only works when every component runs in one process (-target=all), but -target=%s: use memberlist, consul or etcd", c.Target.String())
	}
	if c.Compactor.ShardingEnabled && c.Compactor.ShardingStrategy == shardring.StrategyShuffle && c.Limits.CompactorTenantShardSize <= 0 {
		return fmt.Errorf("-compactor.sharding-strategy=%s needs -compactor.tenant-shard-size above 0, got %v", shardring.StrategyShuffle, c.Limits.CompactorTenantShardSize)
	}
	if c.Compactor.ShardingEnabled && c.Compactor.ShardingRing.KVStore.Store == "inmemory" && !slices.Equal(c.Target, []string{All}) && c.runs(Compactor) {
		return fmt.Errorf("-compactor.ring.store=inmemory only works when every component runs in one process (-target=all), but -target=%s: use memberlist, consul or etcd", c.Target.String())
	}
	return nil
}

// ringStores are the KV stores of the rings the process may read or join:
// the gossip KV runs when one of them is memberlist.
func (c *Config) ringStores() []string {
	kvs := []kv.Config{c.Ingester.LifecyclerConfig.RingConfig.KVStore}
	if c.StoreGateway.ShardingEnabled {
		kvs = append(kvs, c.StoreGateway.ShardingRing.KVStore)
	}
	if c.Compactor.ShardingEnabled {
		kvs = append(kvs, c.Compactor.ShardingRing.KVStore)
	}
	if c.Ruler.Sharding.EnableSharding {
		kvs = append(kvs, c.Ruler.Sharding.Ring.KVStore)
	}
	if c.Distributor.HATracker.EnableHATracker {
		kvs = append(kvs, c.Distributor.HATracker.KVStore)
	}
	if c.Alertmanager.Sharding.ShardingEnabled {
		kvs = append(kvs, c.Alertmanager.Sharding.ShardingRing.KVStore)
	}
	var stores []string
	for _, k := range kvs {
		stores = append(stores, k.Store)
		if k.Store == "multi" { // both of its stores run, whichever is primary
			stores = append(stores, k.Multi.Primary, k.Multi.Secondary)
		}
	}
	return stores
}

// finalize derives the settings that follow from others; the result is
// the configuration every module reads, never changed afterwards.
func (c Config) finalize(logger *slog.Logger) Config {
	c.fillInstanceIDs(logger)
	ring := &c.Ingester.LifecyclerConfig.RingConfig
	if ring.KVStore.Store == "inmemory" && ring.ReplicationFactor > 1 && c.usesRing() {
		// One process has one ingester, so it cannot keep more than one copy.
		logger.Info("in-memory ring: one ingester, so replication factor 1", "flag_value", ring.ReplicationFactor)
		ring.ReplicationFactor = 1
	}
	// Queriers (and the ruler's) read a tenant's shard of ingesters when the
	// distributors write only there.
	c.Querier.ShuffleShardIngesters = c.Distributor.ShardingStrategy == distributor.ShardingStrategyShuffle
	// Cortex keeps the extra query delay in the distributor's block, whose
	// query path is the queriers' here.
	c.Querier.ExtraQueryDelay = c.Distributor.ExtraQueryDelay
	if c.Worker.MatchMaxConcurrent {
		c.Worker.Parallelism = c.Querier.MaxConcurrent
	}
	return c
}

// usesRing reports whether a target reads or joins the ingester ring, and
// so needs its KV store.
func (c *Config) usesRing() bool { return c.runs(Ring, Ingester) }

// Cortex is one running process.
type Cortex struct {
	// Cfg is the validated configuration; modules read it, never write it.
	Cfg       Config
	Logger    *slog.Logger
	Registry  *prometheus.Registry
	TLS       *tlsconfig.Loader
	Server    *server.Server
	API       *api.API
	Overrides *validation.Overrides
	Ring      *ring.Ring

	Ingester    *ingester.Ingester
	Distributor *distributor.Distributor
	Querier     *querier.Querier

	kitLogger     log.Logger
	modules       *modules.Manager
	services      map[string]services.Service
	runtimeConfig runtimeConfigSource
	gossip        *gossip.KV
	haTracker     *ha.Tracker // nil without -distributor.ha-tracker.enable
	blocksBuckets []objstore.InstrumentedBucket
	// metadataCache is the in-memory metadata cache the querier and the
	// store-gateway of this process share (storegateway.WithMetadataCache).
	metadataCache     cache.Cache
	metadataCacheOnce sync.Once
	ingesterTLS       *tlsconfig.Client
	readyChecks       []func(context.Context) error
	// authorizer holds the tenants each client identity may act for.
	authorizer *auth.Authorizer
	// storeGatewayRing is the store-gateway ring client of the querier
	// (-store-gateway.sharding-enabled).
	storeGatewayRing *ring.Ring
	// closers are closed once every module stopped.
	closers []io.Closer
	// resourceMonitor is -resource-monitor.*'s (resourceMonitorOf).
	resourceMonitor     *resource.Monitor
	resourceMonitorErr  error
	resourceMonitorOnce sync.Once
	// stopTracing flushes the spans still queued, after every module
	// stopped (setupTracing).
	stopTracing func(context.Context) error
}

// New validates cfg, loads every certificate and binds the listeners: any
// problem is reported here, before anything starts serving.
func New(cfg Config, logger *slog.Logger) (*Cortex, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.finalize(logger)
	// Every line names its process: the logs of a cluster's processes,
	// gathered together, can be told apart.
	logger = logger.With("target", cfg.Target.String(), "instance", cfg.logInstance())
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), version.NewCollector())
	t := &Cortex{
		Cfg:       cfg,
		Logger:    logger,
		Registry:  reg,
		TLS:       tlsconfig.NewLoader(logger, reg),
		kitLogger: kitlog.New(logger),
	}
	t.Cfg.setMultiKVConfigProvider(t.multiKVConfig)
	// Before the modules: their servers and clients are built traced.
	if err := t.setupTracing(); err != nil {
		return nil, err
	}
	m, err := t.newModuleManager()
	if err != nil {
		t.shutdownTracing()
		return nil, err
	}
	t.modules = m
	svcs, err := t.modules.InitModuleServices(cfg.Target...)
	if err != nil {
		t.shutdownTracing()
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
		if errors.Is(runErr, modules.ErrStopProcess) {
			// A job's module (the flusher) is done: a clean stop.
			t.Logger.Info("a module finished its work, shutting down")
			runErr = nil
		} else {
			t.Logger.Error("a module failed, shutting down", "err", runErr)
		}
	}
	sm.StopAsync()
	stopCtx, cancel := context.WithTimeout(context.Background(), t.Cfg.Server.GracefulShutdownTimeout+10*time.Second)
	defer cancel()
	if err := sm.AwaitStopped(stopCtx); err != nil {
		return fmt.Errorf("stopping: %w", err)
	}
	for _, c := range t.closers {
		_ = c.Close()
	}
	t.shutdownTracing()
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
