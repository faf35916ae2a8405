// Package shardring is what the components that shard work on a ring of
// their own (store-gateways shard blocks, compactors shard tenants) share:
// Cortex's ring flags under the component's prefix, the instance's
// membership (dskit's BasicLifecycler) and the ring client every instance
// reads to find an item's owners.
//
// It knows nothing of blocks or tenants: the components hash their items.
package shardring

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
)

// Config is one component's sharding ring, Cortex's keys and flags under a
// prefix such as -store-gateway.sharding-ring.
type Config struct {
	KVStore              kv.Config     `yaml:"kvstore"`
	HeartbeatPeriod      time.Duration `yaml:"heartbeat_period"`
	HeartbeatTimeout     time.Duration `yaml:"heartbeat_timeout"`
	ReplicationFactor    int           `yaml:"replication_factor"`
	ZoneAwarenessEnabled bool          `yaml:"zone_awareness_enabled"`
	TokensFilePath       string        `yaml:"tokens_file_path"`
	// KeepInstanceInTheRingOnShutdown leaves the instance (and its tokens)
	// in the ring when it stops, so a restart takes back the same items.
	KeepInstanceInTheRingOnShutdown bool          `yaml:"keep_instance_in_the_ring_on_shutdown"`
	WaitStabilityMinDuration        time.Duration `yaml:"wait_stability_min_duration"`
	WaitStabilityMaxDuration        time.Duration `yaml:"wait_stability_max_duration"`

	InstanceID             string   `yaml:"instance_id"`
	InstanceInterfaceNames []string `yaml:"instance_interface_names"`
	InstanceAddr           string   `yaml:"instance_addr"`
	InstancePort           int      `yaml:"instance_port"`
	InstanceZone           string   `yaml:"instance_availability_zone"`

	// NumTokens is the token count per instance: a flag of the ruler ring
	// only (-ruler.ring.num-tokens), fixed for the others, as in Cortex.
	NumTokens int `yaml:"num_tokens"`
	// ReplicationStrategy decides how many owners an item needs: dskit's
	// default (a quorum of the replication factor) when nil.
	ReplicationStrategy ring.ReplicationStrategy `yaml:"-"`
	// AutoForgetDelay is how long an instance may go without a heartbeat
	// before the others remove it from the ring: autoForgetPeriods
	// heartbeat timeouts when nil, never when 0 (a component's own flag,
	// such as -compactor.auto-forget-delay).
	AutoForgetDelay *time.Duration `yaml:"-"`
	// WaitActiveTimeout bounds Start's wait for this instance to show in
	// the ring in its registered state; 0 waits as long as Start's context.
	WaitActiveTimeout time.Duration `yaml:"-"`
	// WaitInstanceStateTimeout bounds the waits for this instance to show
	// in the ring in its registered state and then ACTIVE (Cortex's
	// store-gateway and alertmanager rings); 0 waits as long as the
	// caller's context.
	WaitInstanceStateTimeout time.Duration `yaml:"wait_instance_state_timeout"`
	// FinalSleep is how long a stopping instance waits once it left the
	// ring, so the others see it gone before it stops answering.
	FinalSleep time.Duration `yaml:"final_sleep"`
	// DetailedMetricsEnabled exports each member's tokens and ownership
	// (RegisterDetailedMetrics) from the ring client.
	DetailedMetricsEnabled bool `yaml:"detailed_metrics_enabled"`
	// Prefix is the flag prefix, for errors.
	Prefix string `yaml:"-"`
}

// Defaults are the values a component gives its ring's flags.
type Defaults struct {
	HeartbeatPeriod, HeartbeatTimeout time.Duration
	// ReplicationFactor 0 registers no replication-factor flag: the
	// component owns each item once (compactors).
	ReplicationFactor        int
	WaitStabilityMinDuration time.Duration
	WaitStabilityMaxDuration time.Duration
	NumTokens                int
	// FinalSleep registers -<prefix>.final-sleep (default 0, Cortex's);
	// WaitInstanceStateTimeout, when not 0, -wait-instance-state-timeout
	// with that default. Cortex has them on some rings only.
	FinalSleep               bool
	WaitInstanceStateTimeout time.Duration
}

// RegisterFlags registers the ring's flags under prefix (without the
// trailing dot), for example "store-gateway.sharding-ring". The KV store
// defaults to inmemory, like the ingester ring's here: one process needs no
// KV service (Cortex defaults to consul).
func (c *Config) RegisterFlags(prefix string, d Defaults, f *flag.FlagSet) {
	c.Prefix = prefix
	p := prefix + "."
	c.KVStore.Store = "inmemory"
	c.KVStore.RegisterFlagsWithPrefix(p, "collectors/", f)
	f.DurationVar(&c.HeartbeatPeriod, p+"heartbeat-period", d.HeartbeatPeriod, "Period at which to heartbeat to the ring. 0 disables heartbeats altogether.")
	f.DurationVar(&c.HeartbeatTimeout, p+"heartbeat-timeout", d.HeartbeatTimeout, "The heartbeat timeout after which instances are considered unhealthy within the ring. 0 = never (timeout disabled).")
	c.ReplicationFactor = 1
	if d.ReplicationFactor > 0 {
		f.IntVar(&c.ReplicationFactor, p+"replication-factor", d.ReplicationFactor, "The replication factor to use when sharding on the ring: how many instances own each item.")
	}
	f.BoolVar(&c.ZoneAwarenessEnabled, p+"zone-awareness-enabled", false, "True to enable zone-awareness and replicate items across different availability zones.")
	f.StringVar(&c.TokensFilePath, p+"tokens-file-path", "", "File path where tokens are stored. If empty, tokens are not stored at shutdown and restored at startup.")
	f.BoolVar(&c.KeepInstanceInTheRingOnShutdown, p+"keep-instance-in-the-ring-on-shutdown", false, "True to keep the instance in the ring when it shuts down. The instance will then be auto-forgotten from the ring after 10*heartbeat_timeout.")
	f.DurationVar(&c.WaitStabilityMinDuration, p+"wait-stability-min-duration", d.WaitStabilityMinDuration, "Minimum time to wait for ring stability at startup. 0 to disable.")
	f.DurationVar(&c.WaitStabilityMaxDuration, p+"wait-stability-max-duration", d.WaitStabilityMaxDuration, "Maximum time to wait for ring stability at startup. If the ring keeps changing after this period of time, the instance starts anyway.")
	c.InstanceInterfaceNames = []string{"eth0", "en0"}
	f.Var((*flagext.StringSliceCSV)(&c.InstanceInterfaceNames), p+"instance-interface-names", "Name of network interface to read address from.")
	f.StringVar(&c.InstanceID, p+"instance-id", "", "Instance ID to register in the ring. Empty: the hostname.")
	f.StringVar(&c.InstanceAddr, p+"instance-addr", "", "IP address to advertise in the ring. Empty: read from -"+p+"instance-interface-names.")
	f.IntVar(&c.InstancePort, p+"instance-port", 0, "Port to advertise in the ring. 0: the gRPC listen port (-server.grpc-listen-port).")
	f.StringVar(&c.InstanceZone, p+"instance-availability-zone", "", "The availability zone where this instance is running. Required if zone-awareness is enabled.")
	f.BoolVar(&c.DetailedMetricsEnabled, p+"detailed-metrics-enabled", true, "Export each member's token count (cortex_ring_tokens_owned) and share of the ring (cortex_ring_member_ownership_percent). Disabling them removes two series per member.")
	if d.FinalSleep {
		f.DurationVar(&c.FinalSleep, p+"final-sleep", 0, "Time a stopping instance waits once it left the ring before it stops serving: set it close to or above the KV store's propagation delay.")
	}
	if d.WaitInstanceStateTimeout > 0 {
		f.DurationVar(&c.WaitInstanceStateTimeout, p+"wait-instance-state-timeout", d.WaitInstanceStateTimeout, "Time a starting instance waits to see itself in the ring, registered and then ACTIVE, before it fails.")
	}
	c.NumTokens = d.NumTokens
}

// Validate checks the settings, naming the flag at fault.
func (c *Config) Validate() error {
	p := "-" + c.Prefix + "."
	if c.ReplicationFactor <= 0 {
		return fmt.Errorf("%sreplication-factor must be positive, got %d", p, c.ReplicationFactor)
	}
	if c.HeartbeatTimeout < 0 || c.HeartbeatPeriod < 0 {
		return fmt.Errorf("%sheartbeat-period and %sheartbeat-timeout must not be negative", p, p)
	}
	if c.ZoneAwarenessEnabled && c.InstanceZone == "" {
		return fmt.Errorf("%szone-awareness-enabled needs %sinstance-availability-zone", p, p)
	}
	if c.WaitStabilityMaxDuration < c.WaitStabilityMinDuration {
		return fmt.Errorf("%swait-stability-max-duration (%v) must not be shorter than %swait-stability-min-duration (%v)", p, c.WaitStabilityMaxDuration, p, c.WaitStabilityMinDuration)
	}
	if c.NumTokens <= 0 {
		return errors.New("shardring: no token count")
	}
	return nil
}

// RingConfig is the ring client's view of the settings.
func (c *Config) RingConfig() ring.Config {
	var rc ring.Config
	rc.KVStore = c.KVStore
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ReplicationFactor = c.ReplicationFactor
	rc.ZoneAwarenessEnabled = c.ZoneAwarenessEnabled
	rc.SubringCacheDisabled = true
	return rc
}
