package ruler

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/grafana/dskit/flagext"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// AlertmanagerClientTLSPrefix is the flag prefix of the ruler -> alertmanager
// link, as in Cortex.
const AlertmanagerClientTLSPrefix = "ruler.alertmanager-client"

// Config is Cortex's ruler block.
type Config struct {
	// ExternalURL is the URL alerts link back to (their generatorURL).
	ExternalURL string `yaml:"external_url"`
	// EvaluationInterval is the interval of groups that set none.
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	// PollInterval is how often the rule store is read for changes.
	PollInterval time.Duration `yaml:"poll_interval"`
	// QueryOffset shifts every evaluation's query time back, for data that
	// arrives late; EvaluationDelay is its deprecated name, still accepted.
	QueryOffset     time.Duration `yaml:"query_offset"`
	EvaluationDelay time.Duration `yaml:"evaluation_delay_duration"`

	AlertmanagerURL             string                   `yaml:"alertmanager_url"`
	AlertmanagerDiscovery       bool                     `yaml:"enable_alertmanager_discovery"`
	AlertmanagerRefreshInterval time.Duration            `yaml:"alertmanager_refresh_interval"`
	AlertmanagerEnableV2API     bool                     `yaml:"enable_alertmanager_v2"`
	NotificationQueueCapacity   int                      `yaml:"notification_queue_capacity"`
	NotificationTimeout         time.Duration            `yaml:"notification_timeout"`
	AlertmanagerClient          AlertmanagerClientConfig `yaml:"alertmanager_client"`

	// ConcurrentEvalsEnabled lets the rules of a group that do not depend
	// on each other evaluate at the same time, at most MaxConcurrentEvals
	// at once for each tenant (Prometheus' concurrent rule evaluation).
	ConcurrentEvalsEnabled bool  `yaml:"concurrent_evals_enabled"`
	MaxConcurrentEvals     int64 `yaml:"max_concurrent_evals"`

	// EnableQueryStats logs every rule query with its wall time, counted
	// in cortex_ruler_query_seconds_total.
	EnableQueryStats bool `yaml:"query_stats_enabled"`

	// EnabledTenants and DisabledTenants select the tenants whose rules this
	// ruler evaluates, before sharding.
	EnabledTenants  flagext.StringSliceCSV `yaml:"enabled_tenants"`
	DisabledTenants flagext.StringSliceCSV `yaml:"disabled_tenants"`

	// DisableRuleGroupLabel sums the per-group rule metrics of a tenant
	// into one series, for tenants with many groups.
	DisableRuleGroupLabel bool `yaml:"disable_rule_group_label"`

	// EnableHAEvaluation lets the other replicas of a group (with
	// -ruler.ring.replication-factor above 1) evaluate it when the rulers
	// ahead of them fail a liveness check within LivenessCheckTimeout.
	EnableHAEvaluation   bool          `yaml:"enable_ha_evaluation"`
	LivenessCheckTimeout time.Duration `yaml:"liveness_check_timeout"`

	// APIDeduplicateRules lists a group evaluated by two rulers at once
	// (while the ring changes) once, the copy evaluated last.
	APIDeduplicateRules bool `yaml:"api_deduplicate_rules"`

	OutageTolerance time.Duration `yaml:"for_outage_tolerance"`
	ForGracePeriod  time.Duration `yaml:"for_grace_period"`
	ResendDelay     time.Duration `yaml:"resend_delay"`

	// APIConfig is -ruler.enable-api, the configuration API's switch.
	APIConfig `yaml:",inline"`

	// Sharding spreads groups over the rulers of a ring.
	Sharding ShardingConfig `yaml:",inline"`
	// Client is the ruler -> ruler gRPC link: -ruler.client.*.
	Client ClientConfig `yaml:"ruler_client"`
	// Frontend sends the rules' queries to a query-frontend.
	Frontend FrontendConfig `yaml:",inline"`
}

// AlertmanagerClientConfig is the ruler -> alertmanager HTTP link:
// -ruler.alertmanager-client.tls-* and basic authentication.
type AlertmanagerClientConfig struct {
	TLS               tlsconfig.ClientConfig `yaml:",inline"`
	BasicAuthUsername string                 `yaml:"basic_auth_username"`
	BasicAuthPassword flagext.Secret         `yaml:"basic_auth_password"`
}

// RegisterFlags registers the -ruler.* flags with Cortex's names and defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.ExternalURL, "ruler.external.url", "", "URL of the alerts' source, the generatorURL of every alert sent (for example the Grafana or Prometheus UI the ruler's rules are viewed in).")
	f.DurationVar(&c.EvaluationInterval, "ruler.evaluation-interval", time.Minute, "How often a rule group is evaluated, when the group sets no interval of its own.")
	f.DurationVar(&c.PollInterval, "ruler.poll-interval", time.Minute, "How often the rule store is read for new, changed and deleted rule groups.")
	f.DurationVar(&c.QueryOffset, "ruler.query-offset", 0, "How far back in time every rule evaluates, so that samples arriving late are included. A group's own query_offset takes precedence.")
	f.DurationVar(&c.EvaluationDelay, "ruler.evaluation-delay-duration", 0, "Deprecated: use -ruler.query-offset. Taken as -ruler.query-offset when that is not set.")
	f.StringVar(&c.AlertmanagerURL, "ruler.alertmanager-url", "", "Comma-separated URLs of the Alertmanagers alerts are sent to, each a group of its own (https://host:port/alertmanager; an empty path means /alertmanager, the multi-tenant Alertmanager's). A host prefixed dnssrv+ (dnssrv+https://_http._tcp.am.example/alertmanager) is looked up as a DNS SRV record, dns+ as A/AAAA records (dns+https://am.example:9093), both refreshed every -ruler.alertmanager-refresh-interval. Empty: alerts are evaluated but sent nowhere.")
	f.BoolVar(&c.AlertmanagerDiscovery, "ruler.alertmanager-discovery", false, "Look up every host of -ruler.alertmanager-url as a DNS SRV record (_portname._tcp.service.fqdn), as dnssrv+ does for one.")
	f.DurationVar(&c.AlertmanagerRefreshInterval, "ruler.alertmanager-refresh-interval", time.Minute, "How often DNS-discovered Alertmanagers are looked up again.")
	f.BoolVar(&c.AlertmanagerEnableV2API, "ruler.alertmanager-use-v2", true, "Send alerts to the Alertmanager v2 API (/api/v2/alerts), the only one Alertmanager still serves: false is refused.")
	f.IntVar(&c.NotificationQueueCapacity, "ruler.notification-queue-capacity", 10000, "Capacity of each tenant's queue of alerts waiting to be sent; when full, the oldest are dropped (cortex_prometheus_notifications_dropped_total).")
	f.DurationVar(&c.NotificationTimeout, "ruler.notification-timeout", 10*time.Second, "Timeout of one request sending alerts to one Alertmanager.")
	c.AlertmanagerClient.TLS.RegisterFlagsWithPrefix(AlertmanagerClientTLSPrefix, f)
	f.StringVar(&c.AlertmanagerClient.BasicAuthUsername, AlertmanagerClientTLSPrefix+".basic-auth-username", "", "HTTP basic authentication user name sent to the Alertmanagers (a user in -ruler.alertmanager-url's URL takes precedence).")
	f.Var(&c.AlertmanagerClient.BasicAuthPassword, AlertmanagerClientTLSPrefix+".basic-auth-password", "HTTP basic authentication password sent to the Alertmanagers.")
	f.DurationVar(&c.OutageTolerance, "ruler.for-outage-tolerance", time.Hour, "Longest ruler outage after which the 'for' state of alerts is still restored from ALERTS_FOR_STATE.")
	f.DurationVar(&c.ForGracePeriod, "ruler.for-grace-period", 10*time.Minute, "Shortest time an alert with a 'for' at least this long stays pending after its state is restored.")
	f.DurationVar(&c.ResendDelay, "ruler.resend-delay", time.Minute, "Shortest time between two sends of the same firing alert to the Alertmanagers.")
	f.BoolVar(&c.ConcurrentEvalsEnabled, "ruler.concurrent-evals-enabled", false, "Evaluate the rules of a group that do not depend on each other concurrently, at most -ruler.max-concurrent-evals at once for each tenant.")
	f.BoolVar(&c.EnableQueryStats, "ruler.query-stats-enabled", false, "Report query statistics for ruler queries to complete as a per user metric (cortex_ruler_query_seconds_total) and as an info level log message (\"query stats\", with the rule, its group and the query's wall time; the fetched series, chunks and samples are not measured here).")
	f.Int64Var(&c.MaxConcurrentEvals, "ruler.max-concurrent-evals", 1, "Most rules of one tenant evaluated at once with -ruler.concurrent-evals-enabled; must be positive.")
	f.Var(&c.EnabledTenants, "ruler.enabled-tenants", "Comma-separated tenants whose rules this ruler evaluates; empty: every tenant. Applied before sharding.")
	f.Var(&c.DisabledTenants, "ruler.disabled-tenants", "Comma-separated tenants whose rules this ruler never evaluates, even when -ruler.enabled-tenants lists them. Applied before sharding.")
	f.BoolVar(&c.DisableRuleGroupLabel, "ruler.disable-rule-group-label", false, "Leave the rule_group label off the cortex_prometheus_rule_* metrics: each tenant's series of its groups are summed into one.")
	f.BoolVar(&c.APIDeduplicateRules, "experimental.ruler.api-deduplicate-rules", false, "List a rule group that two rulers evaluate at once (while the ruler ring changes) once in GET /api/v1/rules and /api/v1/alerts, the copy evaluated last, rather than once for each ruler.")
	f.BoolVar(&c.EnableHAEvaluation, "ruler.enable-ha-evaluation", false, "With -ruler.enable-sharding and -ruler.ring.replication-factor above 1, a group's first replica evaluates it and each other replica takes it over when none of the replicas ahead of it answers a liveness check as running (checked at each sync).")
	f.DurationVar(&c.LivenessCheckTimeout, "ruler.liveness-check-timeout", time.Second, "Timeout of the liveness checks of -ruler.enable-ha-evaluation: a replica that does not answer within it counts as down, and the next one evaluates its groups.")
	c.Sharding.RegisterFlags(f)
	c.Client.RegisterFlags(f)
	c.Frontend.RegisterFlags(f)
	c.APIConfig.RegisterFlags(f)
}

// Validate checks the settings that can be checked without I/O.
func (c *Config) Validate() error {
	if err := c.Client.Validate(); err != nil {
		return err
	}
	if c.EvaluationInterval <= 0 {
		return fmt.Errorf("-ruler.evaluation-interval must be positive, got %s", c.EvaluationInterval)
	}
	if c.PollInterval <= 0 {
		return fmt.Errorf("-ruler.poll-interval must be positive, got %s", c.PollInterval)
	}
	if c.QueryOffset < 0 {
		return fmt.Errorf("-ruler.query-offset must not be negative, got %s", c.QueryOffset)
	}
	if c.EnableHAEvaluation && !c.Sharding.EnableSharding {
		return errors.New("-ruler.enable-ha-evaluation needs -ruler.enable-sharding: without the ruler ring a group has no replicas")
	}
	if c.EnableHAEvaluation && c.LivenessCheckTimeout <= 0 {
		return fmt.Errorf("-ruler.liveness-check-timeout must be positive with -ruler.enable-ha-evaluation, got %s", c.LivenessCheckTimeout)
	}
	if c.ConcurrentEvalsEnabled && c.MaxConcurrentEvals <= 0 {
		return fmt.Errorf("-ruler.max-concurrent-evals must be positive with -ruler.concurrent-evals-enabled, got %d", c.MaxConcurrentEvals)
	}
	if c.EvaluationDelay < 0 {
		return fmt.Errorf("-ruler.evaluation-delay-duration must not be negative, got %s", c.EvaluationDelay)
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("-ruler.external.url=%q: want http(s)://host[:port][/path]", c.ExternalURL)
		}
	}
	if !c.AlertmanagerEnableV2API {
		return errors.New("-ruler.alertmanager-use-v2=false: Alertmanager and Prometheus' notifier only speak the v2 API; drop the flag")
	}
	if c.NotificationQueueCapacity <= 0 {
		return fmt.Errorf("-ruler.notification-queue-capacity must be positive, got %d", c.NotificationQueueCapacity)
	}
	if c.NotificationTimeout <= 0 {
		return fmt.Errorf("-ruler.notification-timeout must be positive, got %s", c.NotificationTimeout)
	}
	if c.AlertmanagerRefreshInterval <= 0 {
		return fmt.Errorf("-ruler.alertmanager-refresh-interval must be positive, got %s", c.AlertmanagerRefreshInterval)
	}
	if c.OutageTolerance < 0 || c.ForGracePeriod < 0 || c.ResendDelay < 0 {
		return errors.New("-ruler.for-outage-tolerance, -ruler.for-grace-period and -ruler.resend-delay must not be negative")
	}
	if err := c.Sharding.Validate(); err != nil {
		return err
	}
	if err := c.Frontend.Validate(); err != nil {
		return err
	}
	_, err := c.alertmanagers()
	return err
}

// queryOffset is -ruler.query-offset, or the deprecated
// -ruler.evaluation-delay-duration when only that is set.
func (c *Config) queryOffset() time.Duration {
	if c.QueryOffset == 0 {
		return c.EvaluationDelay
	}
	return c.QueryOffset
}

// alertmanagerTarget is one entry of -ruler.alertmanager-url.
type alertmanagerTarget struct {
	// url is the entry without its dns+ or dnssrv+ prefix and credentials;
	// its path is where the Alertmanager API lives (/alertmanager when the
	// entry gives none).
	url *url.URL
	// lookup is "", "A" (dns+) or "SRV" (dnssrv+, or
	// -ruler.alertmanager-discovery).
	lookup   string
	username string
	password string
}

var srvName = regexp.MustCompile(`^_[^.]+\._[^.]+\..+`)

// alertmanagers parses -ruler.alertmanager-url.
func (c *Config) alertmanagers() ([]alertmanagerTarget, error) {
	var out []alertmanagerTarget
	for _, raw := range strings.Split(c.AlertmanagerURL, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		t := alertmanagerTarget{}
		s := raw
		switch {
		case strings.HasPrefix(s, "dnssrv+"):
			t.lookup, s = "SRV", strings.TrimPrefix(s, "dnssrv+")
		case strings.HasPrefix(s, "dns+"):
			t.lookup, s = "A", strings.TrimPrefix(s, "dns+")
		case c.AlertmanagerDiscovery:
			t.lookup = "SRV"
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("-ruler.alertmanager-url: %q: %w", raw, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("-ruler.alertmanager-url: %q: want http(s)://host:port[/path], optionally prefixed dns+ or dnssrv+", raw)
		}
		if u.Scheme == "http" && c.AlertmanagerClient.TLS.TLSOn() {
			return nil, fmt.Errorf("-ruler.alertmanager-url: %q is plain HTTP but -%s.tls-* flags are set: use https://", raw, AlertmanagerClientTLSPrefix)
		}
		switch t.lookup {
		case "SRV":
			if !srvName.MatchString(u.Host) {
				return nil, fmt.Errorf("-ruler.alertmanager-url: %q: a DNS SRV name must look like _portname._tcp.service.fqdn, with no port", raw)
			}
		case "A":
			if u.Port() == "" {
				return nil, fmt.Errorf("-ruler.alertmanager-url: %q: dns+ needs a port (dns+https://host:port)", raw)
			}
		}
		if u.User != nil {
			t.username = u.User.Username()
			t.password, _ = u.User.Password()
			u.User = nil
		} else {
			t.username, t.password = c.AlertmanagerClient.BasicAuthUsername, c.AlertmanagerClient.BasicAuthPassword.String()
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		if u.Path == "" {
			u.Path = "/alertmanager"
		}
		t.url = u
		out = append(out, t)
	}
	return out, nil
}
