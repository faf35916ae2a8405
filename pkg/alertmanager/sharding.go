package alertmanager

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/grafana/dskit/ring"

	"github.com/cortex-tls/cortex/pkg/shardring"
)

// The alertmanager ring's name and key in the KV store. Every ring here
// shares the "collectors/" prefix (and memberlist has none), so the key
// names the alertmanager.
const (
	RingName = "alertmanager"
	RingKey  = "alertmanager"
)

// ClientTLSPrefix is the flag prefix of the alertmanager -> alertmanager
// gRPC link, as in Cortex: -alertmanager.alertmanager-client.tls-cert-path
// and the others.
const ClientTLSPrefix = "alertmanager.alertmanager-client"

// RingOp finds a tenant's replicas: the ACTIVE owners of its token, the
// set extended past an owner that is not ACTIVE (joining or leaving), as in
// Cortex.
var RingOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, func(s ring.InstanceState) bool { return s != ring.ACTIVE })

// ringOpNoExtension finds a tenant's replicas among its token's owners
// only (-alertmanager.sharding-ring.disable-replica-set-extension): fewer
// replicas while one is not ACTIVE, but a configuration that breaks
// alertmanagers does not spread to the ones after them.
var ringOpNoExtension = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// ringCheckPeriod is how often a sharded alertmanager looks for changes of
// the ring, polling the storage at once when alertmanagers came, went or
// changed state, so that a departed instance's tenants are taken over
// without waiting for -alertmanager.configs.poll-interval.
const ringCheckPeriod = time.Second

// ShardingConfig is the part of Cortex's alertmanager block that shards and
// replicates tenants: sharding_enabled, sharding_ring, alertmanager_client
// and peer_timeout.
type ShardingConfig struct {
	ShardingEnabled    bool             `yaml:"sharding_enabled"`
	ShardingRing       shardring.Config `yaml:"sharding_ring"`
	AlertmanagerClient ClientConfig     `yaml:"alertmanager_client"`
	PeerTimeout        time.Duration    `yaml:"peer_timeout"`
	// DisableReplicaSetExtension is kept in sharding_ring in Cortex's file.
	DisableReplicaSetExtension bool `yaml:"disable_replica_set_extension"`
}

// RegisterFlags registers -alertmanager.sharding-enabled, the
// -alertmanager.sharding-ring.* flags, the -alertmanager.alertmanager-client.*
// flags and -alertmanager.peer-timeout with Cortex's defaults.
func (c *ShardingConfig) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.ShardingEnabled, "alertmanager.sharding-enabled", false, "Shard tenants across the alertmanagers of the -alertmanager.sharding-ring.* ring: each tenant's Alertmanager runs on -alertmanager.sharding-ring.replication-factor of them, which replicate its silences and notification log to each other over gRPC; any alertmanager answers any tenant's API by forwarding to them.")
	c.ShardingRing.RegisterFlags("alertmanager.sharding-ring", shardring.Defaults{
		HeartbeatPeriod:          15 * time.Second,
		HeartbeatTimeout:         time.Minute,
		ReplicationFactor:        3,
		NumTokens:                128,
		FinalSleep:               true,
		WaitInstanceStateTimeout: 10 * time.Minute,
	}, f)
	// A stopped alertmanager is left out once its heartbeat times out, so
	// that a tenant keeps replicas while any of them is healthy.
	c.ShardingRing.ReplicationStrategy = ring.NewIgnoreUnhealthyInstancesReplicationStrategy()
	f.BoolVar(&c.DisableReplicaSetExtension, "alertmanager.sharding-ring.disable-replica-set-extension", false, "Disable extending the replica set when instances are unhealthy. This limits blast radius during config corruption incidents but reduces availability during normal failures.")
	c.AlertmanagerClient.RegisterFlags(f)
	f.DurationVar(&c.PeerTimeout, "alertmanager.peer-timeout", DefaultPeerTimeout, "Another name of -alertmanager.cluster.peer-timeout (Cortex's): time each replica of a tenant waits, per position before it in the tenant's replica set, before sending a notification. Give either name, or both with one value.")
}

// Validate checks the ring when sharding is enabled.
func (c *ShardingConfig) Validate() error {
	if !c.ShardingEnabled {
		return nil
	}
	if err := c.ShardingRing.Validate(); err != nil {
		return fmt.Errorf("alertmanager sharding: %w", err)
	}
	if err := c.AlertmanagerClient.Validate(); err != nil {
		return err
	}
	if c.PeerTimeout < 0 {
		return fmt.Errorf("-alertmanager.peer-timeout must not be negative, got %s", c.PeerTimeout)
	}
	return nil
}

// tenantToken is a tenant's token on the ring: FNV-1a of its ID, as
// Cortex's, so both place a tenant on the same alertmanagers.
func tenantToken(tenant string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	return h.Sum32()
}

// replicaRing is a tenant's replicas as the ring places them.
type replicaRing struct {
	ring ring.ReadRing
	addr string // this instance's advertised gRPC address
	op   ring.Operation
}

// replicas returns the addresses of the tenant's replicas, in the ring's
// order (its token's owner first).
func (r replicaRing) replicas(tenant string) ([]string, error) {
	rs, err := r.ring.Get(tenantToken(tenant), r.op, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	if len(rs.Instances) == 0 {
		return nil, errors.New("no healthy alertmanager in the ring")
	}
	addrs := make([]string, len(rs.Instances))
	for i, in := range rs.Instances {
		addrs[i] = in.Addr
	}
	return addrs, nil
}

// position is this instance's index among the tenant's replicas; 0 when it
// is not one (or the ring cannot say), so it never waits needlessly.
func (r replicaRing) position(tenant string) int {
	addrs, err := r.replicas(tenant)
	if err != nil {
		return 0
	}
	return max(0, slices.Index(addrs, r.addr))
}

// first reports whether this instance is the tenant's first replica.
func (r replicaRing) first(tenant string) bool {
	addrs, err := r.replicas(tenant)
	return err == nil && addrs[0] == r.addr
}

// owns reports whether this instance is one of the tenant's replicas.
func (r replicaRing) owns(tenant string) bool {
	addrs, err := r.replicas(tenant)
	return err == nil && slices.Contains(addrs, r.addr)
}

// fingerprint summarises the ring's healthy ACTIVE instances, to notice
// that it changed.
func (r replicaRing) fingerprint() string {
	rs, err := r.ring.GetAllHealthy(RingOp)
	if err != nil {
		return "error: " + err.Error()
	}
	ids := make([]string, 0, len(rs.Instances))
	for _, in := range rs.Instances {
		ids = append(ids, in.Id+"@"+in.Addr)
	}
	slices.Sort(ids)
	return fmt.Sprint(ids)
}

// remoteContext bounds one call to another alertmanager.
func (am *MultitenantAlertmanager) remoteContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, am.cfg.Sharding.AlertmanagerClient.RemoteTimeout)
}
