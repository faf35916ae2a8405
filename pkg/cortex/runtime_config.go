package cortex

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/runtimeconfig"
	"github.com/grafana/dskit/services"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/api"
	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// RuntimeConfigValues is Cortex's runtime configuration file
// (-runtime-config.file), reloaded every -runtime-config.reload-period:
// per-tenant limits, the rings' multi KV store switch, and the ingesters'
// instance limits.
type RuntimeConfigValues struct {
	TenantLimits map[string]*validation.Limits `yaml:"overrides"`
	// Multi switches the primary store and the mirroring of the rings
	// whose -<ring>.store is multi.
	Multi kv.MultiRuntimeConfig `yaml:"multi_kv_config"`
	// IngesterLimits replace -ingester.instance-limits.* when present.
	IngesterLimits *ingester.InstanceLimits `yaml:"ingester_limits"`
	// HardTenantLimits and APIAllowedLimits bound what tenants may set for
	// themselves through the user overrides API (-target=overrides).
	HardTenantLimits map[string]*validation.Limits `yaml:"hard_overrides"`
	APIAllowedLimits []string                      `yaml:"api_allowed_limits"`
}

// rawRuntimeConfig is the file as written: each block is decoded on top of
// its defaults once the top-level keys are known to be valid.
type rawRuntimeConfig struct {
	Overrides      map[string]yaml.Node `yaml:"overrides"`
	Multi          yaml.Node            `yaml:"multi_kv_config"`
	IngesterLimits yaml.Node            `yaml:"ingester_limits"`
	HardOverrides  map[string]yaml.Node `yaml:"hard_overrides"`
	APIAllowed     []string             `yaml:"api_allowed_limits"`
}

// unbuiltRuntimeKeys are keys of Cortex's runtime configuration for
// features this system does not have, refused with the reason.
var unbuiltRuntimeKeys = map[string]string{
	"ingester_stream_chunks_when_using_blocks": "the ingesters always stream chunks to the queriers here, so there is nothing to switch",
}

// multiKVStores are the stores multi_kv_config.primary may name (dskit's
// stores, and the gossip store through pkg/kv's own multi client).
var multiKVStores = []string{"consul", "etcd", "inmemory", "memberlist"}

// runtimeConfigLoader decodes the runtime configuration of cfg's process.
type runtimeConfigLoader struct {
	limits         validation.Limits
	instanceLimits ingester.InstanceLimits
	files          []string
}

func newRuntimeConfigLoader(cfg *Config) *runtimeConfigLoader {
	return &runtimeConfigLoader{limits: cfg.Limits, instanceLimits: cfg.Ingester.InstanceLimits, files: cfg.RuntimeConfig.LoadPath}
}

// load decodes and validates the merged content of the files.
func (l *runtimeConfigLoader) load(r io.Reader) (any, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	v, err := l.decode(data, true)
	if err != nil {
		if len(l.files) > 1 {
			return nil, fmt.Errorf("runtime config merged from %s: %w", strings.Join(l.files, ", "), err)
		}
		return nil, fmt.Errorf("runtime config: %w", err)
	}
	return v, nil
}

// checkFile decodes one file on its own before the files are merged, so
// an unknown key or a value of the wrong type is reported with the name of
// the file it is in (dskit names the file of a preprocessing error). The
// limits' consistency is checked on the merged content, as a file may set
// only part of a tenant's limits.
func (l *runtimeConfigLoader) checkFile(data []byte) ([]byte, error) {
	if _, err := l.decode(data, false); err != nil {
		return nil, err
	}
	return data, nil
}

func (l *runtimeConfigLoader) decode(data []byte, validate bool) (*RuntimeConfigValues, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw rawRuntimeConfig
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, unbuiltRuntimeKey(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("the runtime configuration holds more than one YAML document")
	}
	out := &RuntimeConfigValues{TenantLimits: map[string]*validation.Limits{}}
	if validate {
		overrides, err := validation.DecodeOverrides(l.limits, raw.Overrides)
		if err != nil {
			return nil, err
		}
		out.TenantLimits = overrides
	} else {
		for tenantID, node := range raw.Overrides {
			lim := l.limits
			if err := validation.DecodeStrict(&node, &lim); err != nil {
				return nil, fmt.Errorf("overrides for tenant %q: %w", tenantID, err)
			}
		}
	}
	if raw.Multi.Kind != 0 {
		if err := validation.DecodeStrict(&raw.Multi, &out.Multi); err != nil {
			return nil, fmt.Errorf("multi_kv_config: %w", err)
		}
		if p := out.Multi.PrimaryStore; p != "" && !slices.Contains(multiKVStores, p) {
			return nil, fmt.Errorf("multi_kv_config.primary: %q is not a store of the multi KV store; valid: %s", p, strings.Join(multiKVStores, ", "))
		}
	}
	for tenantID, node := range raw.HardOverrides {
		lim := l.limits
		if err := validation.DecodeStrict(&node, &lim); err != nil {
			return nil, fmt.Errorf("hard_overrides for tenant %q: %w", tenantID, err)
		}
		if out.HardTenantLimits == nil {
			out.HardTenantLimits = map[string]*validation.Limits{}
		}
		out.HardTenantLimits[tenantID] = &lim
	}
	for _, name := range raw.APIAllowed {
		if !slices.Contains(validation.LimitNames(), name) {
			return nil, fmt.Errorf("api_allowed_limits: %q is not a limit (a key of overrides, such as ingestion_rate)", name)
		}
	}
	out.APIAllowedLimits = raw.APIAllowed
	if raw.IngesterLimits.Kind != 0 {
		il := l.instanceLimits
		if err := validation.DecodeStrict(&raw.IngesterLimits, &il); err != nil {
			return nil, fmt.Errorf("ingester_limits: %w", err)
		}
		if err := il.Validate(); err != nil {
			return nil, fmt.Errorf("ingester_limits: %w", err)
		}
		out.IngesterLimits = &il
	}
	return out, nil
}

// unbuiltRuntimeKey explains a refused top-level key of Cortex's runtime
// configuration that names a feature not built here.
func unbuiltRuntimeKey(data []byte, err error) error {
	var top map[string]any
	if yaml.Unmarshal(data, &top) == nil {
		for key, why := range unbuiltRuntimeKeys {
			if _, ok := top[key]; ok {
				return fmt.Errorf("%s is a key of Cortex's runtime configuration that this system refuses: %s", key, why)
			}
		}
	}
	return err
}

func (t *Cortex) initRuntimeConfig() (services.Service, error) {
	if len(t.Cfg.RuntimeConfig.LoadPath) == 0 {
		return nil, nil
	}
	cfg := t.Cfg.RuntimeConfig
	l := newRuntimeConfigLoader(&t.Cfg)
	cfg.Loader = l.load
	cfg.Preprocessor = l.checkFile
	if cfg.fromBucket() {
		bkt, err := bucket.NewClient(context.Background(), cfg.StorageConfig, "runtime-config", t.TLS, t.Logger, t.Registry)
		if err != nil {
			return nil, err
		}
		m := newBucketRuntimeConfig(cfg, bkt, t.Registry, t.kitLogger)
		t.runtimeConfig = m
		return m, nil
	}
	m, err := runtimeconfig.New(cfg.localFiles(), "cortex", t.Registry, t.kitLogger)
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
	t.Overrides = validation.NewOverrides(t.Cfg.Limits, func() map[string]*validation.Limits {
		if rc := t.runtimeConfigValues(); rc != nil {
			return rc.TenantLimits
		}
		return nil
	})
	return nil, nil
}

// runtimeConfigValues is the runtime configuration in force, nil without
// -runtime-config.file.
func (t *Cortex) runtimeConfigValues() *RuntimeConfigValues {
	if t.runtimeConfig == nil {
		return nil
	}
	rc, _ := t.runtimeConfig.GetConfig().(*RuntimeConfigValues)
	return rc
}

// ingesterInstanceLimits returns the runtime configuration's
// ingester_limits, nil when it has none (the flags then apply).
func (t *Cortex) ingesterInstanceLimits() *ingester.InstanceLimits {
	if rc := t.runtimeConfigValues(); rc != nil {
		return rc.IngesterLimits
	}
	return nil
}

// multiKVConfig feeds multi_kv_config to a multi KV store's client: the
// value in force when the client is built, then every reloaded one. It
// is called when a ring's client is built, after the runtime-config
// module, which every ring's module depends on.
func (t *Cortex) multiKVConfig() <-chan kv.MultiRuntimeConfig {
	if t.runtimeConfig == nil {
		return nil
	}
	out := make(chan kv.MultiRuntimeConfig, 1)
	if rc := t.runtimeConfigValues(); rc != nil {
		out <- rc.Multi
	}
	updates := t.runtimeConfig.CreateListenerChannel(1)
	go func() {
		// The manager closes updates when it stops.
		for v := range updates {
			if rc, ok := v.(*RuntimeConfigValues); ok && rc != nil {
				select {
				case out <- rc.Multi:
				default: // the client has not read the previous value yet
					select {
					case <-out:
					default:
					}
					out <- rc.Multi
				}
			}
		}
	}()
	return out
}

// setMultiKVConfigProvider points every ring's multi KV store at the
// runtime configuration's multi_kv_config.
func (c *Config) setMultiKVConfigProvider(provider func() <-chan kv.MultiRuntimeConfig) {
	for _, store := range []*kv.Config{
		&c.Ingester.LifecyclerConfig.RingConfig.KVStore,
		&c.StoreGateway.ShardingRing.KVStore,
		&c.Compactor.ShardingRing.KVStore,
		&c.Ruler.Sharding.Ring.KVStore,
		&c.Distributor.HATracker.KVStore,
	} {
		store.Multi.ConfigProvider = provider
	}
}

// serveRuntimeConfig answers /runtime_config as Cortex does: the runtime
// configuration in force as YAML, with ?mode=diff only what differs from
// the defaults (the flags' limits for each tenant the file names).
func (t *Cortex) serveRuntimeConfig(w http.ResponseWriter, r *http.Request) {
	rc := t.runtimeConfigValues()
	if rc == nil {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("runtime config file doesn't exist"))
		return
	}
	defaults := RuntimeConfigValues{TenantLimits: map[string]*validation.Limits{}}
	for tenantID := range rc.TenantLimits {
		defaults.TenantLimits[tenantID] = &t.Cfg.Limits
	}
	if rc.IngesterLimits != nil {
		defaults.IngesterLimits = &t.Cfg.Ingester.InstanceLimits
	}
	api.ConfigHandler(rc, &defaults, false).ServeHTTP(w, r)
}

// configHandler answers /config as Cortex does: the configuration in
// force, ?mode=diff what differs from the flags' defaults, ?mode=defaults
// the defaults.
func (t *Cortex) configHandler() http.Handler {
	var defaults Config
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	defaults.RegisterFlags(fs)
	return api.ConfigHandler(&t.Cfg, &defaults, true)
}
