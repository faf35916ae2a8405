package alertmanager

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/grafana/dskit/flagext"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// TLSPrefix is the older flag prefix of the alertmanager -> configs API
// link, as the TLS guide names it (Cortex 1.21's is
// -alertmanager-storage.configs.).
const TLSPrefix = "alertmanager.configs"

// Config is the alertmanager block.
type Config struct {
	DataDir             string         `yaml:"data_dir"`
	Retention           time.Duration  `yaml:"retention"`
	MaintenanceInterval time.Duration  `yaml:"snapshot_interval"`
	ExternalURL         string         `yaml:"external_url"`
	Configs             ConfigsClient  `yaml:"configs"`
	EnableAPI           bool           `yaml:"enable_api"`
	AutoWebhookRoot     string         `yaml:"auto_webhook_root"`
	Sharding            ShardingConfig `yaml:",inline"`
	Cluster             ClusterConfig  `yaml:"cluster"`

	// PersistInterval is how often the sharded alertmanager stores each
	// tenant's full state in the alertmanager storage.
	PersistInterval time.Duration `yaml:"persist_interval"`
	// GCInterval is how often resolved alerts are removed from a tenant's
	// alert store.
	GCInterval time.Duration `yaml:"gc_interval"`
	// MaxRecvMsgSize bounds the body of a tenant's API request.
	MaxRecvMsgSize int64 `yaml:"max_recv_msg_size"`
	// APIConcurrency bounds the GET API requests a tenant has in flight.
	APIConcurrency int `yaml:"api_concurrency"`
	// EnabledTenants and DisabledTenants select the tenants this
	// alertmanager serves.
	EnabledTenants  flagext.StringSliceCSV `yaml:"enabled_tenants"`
	DisabledTenants flagext.StringSliceCSV `yaml:"disabled_tenants"`
}

// ConfigsClient is how the alertmanager reaches the configs service.
type ConfigsClient struct {
	URL          string                 `yaml:"url"`
	PollInterval time.Duration          `yaml:"poll_interval"`
	Timeout      time.Duration          `yaml:"client_timeout"`
	Fallback     string                 `yaml:"fallback"`
	TLS          tlsconfig.ClientConfig `yaml:",inline"`
}

// RegisterFlags registers the -alertmanager.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.DataDir, "alertmanager.storage.path", "data/alertmanager", "Directory holding each tenant's silences, notification log and templates, in <path>/<tenant>/. The alertmanager writes only inside <path>/<tenant>/ and deletes only its own stale template files there.")
	f.DurationVar(&c.Retention, "alertmanager.storage.retention", 120*time.Hour, "How long to keep expired silences and notification log entries.")
	f.DurationVar(&c.MaintenanceInterval, "alertmanager.storage.snapshot-interval", 15*time.Minute, "How often each tenant's silences and notification log are garbage-collected and snapshotted to disk (they are also snapshotted on shutdown).")
	f.StringVar(&c.ExternalURL, "alertmanager.web.external-url", "", "URL under which the Alertmanager is reachable, used in notification links. The tenant's path /alertmanager is appended.")
	f.StringVar(&c.Configs.URL, "alertmanager.configs.url", "", "URL of the configs service (https://host:port): the older name of -alertmanager-storage.configs.url; either works, and setting it selects -alertmanager-storage.backend=configdb.")
	f.DurationVar(&c.Configs.PollInterval, "alertmanager.configs.poll-interval", 15*time.Second, "How often the alertmanager storage is polled for changed tenant configurations.")
	f.DurationVar(&c.Configs.Timeout, "alertmanager.configs.client-timeout", 5*time.Second, "Timeout of one request to the configs service: the older name of -alertmanager-storage.configs.client-timeout; either works.")
	f.StringVar(&c.Configs.Fallback, "alertmanager.configs.fallback", "", "Path to an Alertmanager YAML configuration used for tenants that have none in the alertmanager storage.")
	c.Configs.TLS.RegisterFlagsWithPrefix(TLSPrefix, f)
	f.StringVar(&c.AutoWebhookRoot, "alertmanager.configs.auto-webhook-root", "", "Root of URL to generate if config is "+autoWebhookURL+": a webhook receiver with that URL notifies <root>/<tenant>/monitor instead, as in Cortex.")
	c.Sharding.RegisterFlags(f)
	c.Cluster.RegisterFlags(f)
	f.DurationVar(&c.PersistInterval, "alertmanager.persist-interval", 15*time.Minute, "With -alertmanager.sharding-enabled and an object storage -alertmanager-storage.backend, how often each tenant's first replica writes the tenant's full state (silences and notification log) to the storage. A replica starting the tenant reads it when no other replica answers with it, so a shorter interval loses fewer silences and sends fewer duplicate notifications when every replica went down.")
	f.DurationVar(&c.GCInterval, "alertmanager.alerts-gc-interval", 30*time.Minute, "How often resolved alerts are removed from each tenant's alert store.")
	f.Int64Var(&c.MaxRecvMsgSize, "alertmanager.max-recv-msg-size", 16<<20, "Largest body, in bytes, of a request to a tenant's Alertmanager API (posted alerts, a silence), and of one forwarded to its replicas: a larger one is refused with 413.")
	f.IntVar(&c.APIConcurrency, "alertmanager.api-concurrency", 0, "Most GET requests of one tenant's Alertmanager API served at once; one more is refused with 503 and counted in alertmanager_http_concurrency_limit_exceeded_total. 0 means the larger of GOMAXPROCS and 8, as in Alertmanager.")
	f.Var(&c.EnabledTenants, "alertmanager.enabled-tenants", "Comma-separated tenants this alertmanager serves; empty: every tenant. Others' requests are refused with 401 and their configurations are not loaded. Applied before sharding.")
	f.Var(&c.DisabledTenants, "alertmanager.disabled-tenants", "Comma-separated tenants this alertmanager never serves, even when -alertmanager.enabled-tenants lists them. Applied before sharding.")
	f.BoolVar(&c.EnableAPI, "experimental.alertmanager.enable-api", false, "Serve the Alertmanager configuration API, GET, POST and DELETE /api/v1/alerts, which reads and writes the tenant's configuration in the alertmanager storage (an object storage backend; configdb and local are read-only).")
}

// Legacy returns the configs service link as the older flags
// -alertmanager.configs.url, .client-timeout and .tls-* set it, for
// alertstore.Config.Resolve.
func (c *Config) Legacy() alertstore.Legacy {
	return alertstore.Legacy{URL: c.Configs.URL, Timeout: c.Configs.Timeout, TLS: c.Configs.TLS}
}

// Validate checks the settings that can be checked without I/O.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("-alertmanager.storage.path must not be empty")
	}
	if c.Configs.PollInterval <= 0 {
		return errors.New("-alertmanager.configs.poll-interval must be positive")
	}
	if err := validatePersistInterval(c.PersistInterval); err != nil {
		return err
	}
	if c.GCInterval <= 0 {
		return fmt.Errorf("-alertmanager.alerts-gc-interval must be positive, got %s", c.GCInterval)
	}
	if c.MaxRecvMsgSize <= 0 {
		return fmt.Errorf("-alertmanager.max-recv-msg-size must be positive, got %d", c.MaxRecvMsgSize)
	}
	if c.APIConcurrency < 0 {
		return fmt.Errorf("-alertmanager.api-concurrency must not be negative (0 means the larger of GOMAXPROCS and 8), got %d", c.APIConcurrency)
	}
	if err := c.Sharding.Validate(); err != nil {
		return err
	}
	if err := c.Cluster.Validate(c.Sharding.ShardingEnabled); err != nil {
		return err
	}
	if _, err := c.PeerTimeout(); err != nil {
		return err
	}
	if c.AutoWebhookRoot != "" {
		if u, err := url.Parse(c.AutoWebhookRoot); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("-alertmanager.configs.auto-webhook-root=%q: want http(s)://host[:port][/path]", c.AutoWebhookRoot)
		}
	}
	if c.ExternalURL != "" {
		if _, err := url.Parse(c.ExternalURL); err != nil {
			return fmt.Errorf("-alertmanager.web.external-url: %w", err)
		}
	}
	return nil
}

// PeerTimeout is the peer timeout in effect: -alertmanager.cluster.peer-timeout
// (Cortex's name) or -alertmanager.peer-timeout, two names of one setting.
// A name given a value other than the default sets it; both given different
// values is an error.
func (c *Config) PeerTimeout() (time.Duration, error) {
	cortexName, otherName := c.Cluster.PeerTimeout, c.Sharding.PeerTimeout
	switch {
	case cortexName != DefaultPeerTimeout && otherName != DefaultPeerTimeout && cortexName != otherName:
		return 0, fmt.Errorf("-%speer-timeout=%s and -alertmanager.peer-timeout=%s are two names of one setting, given different values: set only one", ClusterFlagPrefix, cortexName, otherName)
	case otherName != DefaultPeerTimeout:
		return otherName, nil
	}
	return cortexName, nil
}
