package ruler

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/shardring"
)

// The ruler ring's name and key in the KV store. Cortex keeps it under the
// key "ring" of its own prefix; here every ring shares the "collectors/"
// prefix (and memberlist has none), so the key names the ruler.
const (
	RingName = "ruler"
	RingKey  = "ruler"
)

// ringCheckPeriod is how often a sharded ruler looks for changes of the
// ring, syncing its groups at once when rulers came, went or changed state
// (Cortex's period): a departed ruler's groups are taken over by the others
// within it, without waiting for -ruler.poll-interval.
const ringCheckPeriod = 5 * time.Second

// RingOp finds the ruler that evaluates a group: the ACTIVE owner of the
// group's token, as in Cortex.
var RingOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// The values of -ruler.sharding-strategy, Cortex's (shardring's).
const (
	ShardingStrategyDefault = shardring.StrategyDefault
	ShardingStrategyShuffle = shardring.StrategyShuffle
)

// ShardingConfig is the part of Cortex's ruler block that shards groups
// between rulers: enable_sharding, sharding_strategy and the ring.
type ShardingConfig struct {
	EnableSharding   bool             `yaml:"enable_sharding"`
	ShardingStrategy string           `yaml:"sharding_strategy"`
	Ring             shardring.Config `yaml:"ring"`
}

// RegisterFlags registers -ruler.enable-sharding, -ruler.sharding-strategy
// and the -ruler.ring.* flags with Cortex's defaults.
func (c *ShardingConfig) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.EnableSharding, "ruler.enable-sharding", false, "Distribute rule groups across rulers on the -ruler.ring.* ring: each group is evaluated by one ruler, and GET /api/v1/rules asks every ruler of the ring and merges their answers.")
	f.StringVar(&c.ShardingStrategy, "ruler.sharding-strategy", ShardingStrategyDefault, "The sharding strategy to use. Supported values are: default, shuffle-sharding. With shuffle-sharding, each tenant's groups go to -ruler.tenant-shard-size rulers of the ring (its per-tenant limit ruler_tenant_shard_size).")
	c.Ring.RegisterFlags("ruler.ring", shardring.Defaults{
		HeartbeatPeriod:   5 * time.Second,
		HeartbeatTimeout:  time.Minute,
		NumTokens:         128,
		ReplicationFactor: 1,
		FinalSleep:        true,
	}, f)
	f.IntVar(&c.Ring.NumTokens, "ruler.ring.num-tokens", 128, "Number of tokens for each ruler.")
	// A ruler that stopped heartbeating is left out, so that the others
	// still find an owner for every token while any of them is healthy.
	c.Ring.ReplicationStrategy = ring.NewIgnoreUnhealthyInstancesReplicationStrategy()
}

// Validate checks the strategy, and the ring when sharding is enabled.
func (c *ShardingConfig) Validate() error {
	if err := shardring.ValidateStrategy("ruler.sharding-strategy", c.ShardingStrategy); err != nil {
		return err
	}
	if !c.EnableSharding {
		return nil
	}
	if c.Ring.NumTokens <= 0 {
		return fmt.Errorf("-ruler.ring.num-tokens must be positive, got %d", c.Ring.NumTokens)
	}
	if err := c.Ring.Validate(); err != nil {
		return fmt.Errorf("ruler sharding: %w", err)
	}
	return nil
}

// TenantShards gives the part of the ring that holds a tenant's groups.
type TenantShards = shardring.TenantShards

// tokenForGroup is a group's key on the ring: FNV-1a over the tenant, the
// namespace and the group's name, as Cortex's, so both place a group on the
// same ruler.
func tokenForGroup(user, namespace, group string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	_, _ = h.Write([]byte(namespace))
	_, _ = h.Write([]byte(group))
	return h.Sum32()
}

// RingOwner is the OwnerFunc of the ruler advertising addr on r: it owns
// the groups whose token falls to it, on the tenant's shard of the ring;
// with -ruler.ring.replication-factor above 1, the first of a group's
// replicas, as in Cortex (HARingOwner lets the others take over). When the
// ring has no owner for a group (no healthy ruler), nobody
// evaluates it until one joins.
func RingOwner(r ring.ReadRing, addr string, shards TenantShards) OwnerFunc {
	return func(g rulestore.RuleGroup) bool {
		rs, err := shards.Ring(r, g.User).Get(tokenForGroup(g.User, g.Namespace, g.Group.Name), RingOp, nil, nil, nil)
		if err != nil || len(rs.Instances) == 0 {
			return false
		}
		return rs.Instances[0].Addr == addr
	}
}

// ShardedService runs the ruler as one member of the ruler ring. Starting,
// it joins the ring ACTIVE (and, with -ruler.ring.wait-stability-*, waits
// for the ring to settle) before the first sync, so its first sync already
// takes only its share. It syncs every -ruler.poll-interval and whenever
// the ring changes; stopping, it leaves the ring first, so the others take
// its groups over while it stops its own.
func (r *Ruler) ShardedService(member *shardring.Member) services.Service {
	var last ring.ReplicationSet
	ringState := func() ring.ReplicationSet {
		rs, err := member.Ring().GetAllHealthy(RingOp)
		if err != nil {
			return ring.ReplicationSet{}
		}
		return rs
	}
	starting := func(ctx context.Context) error {
		if err := member.Start(ctx); err != nil {
			return err // Start leaves nothing running when it fails
		}
		last = ringState()
		if err := services.StartAndAwaitRunning(ctx, r.Service); err != nil {
			return errors.Join(err, member.Stop())
		}
		r.logger.Info("ACTIVE in the ruler ring", "instance", member.ID(), "addr", member.Addr())
		return nil
	}
	running := func(ctx context.Context) error {
		ticker := time.NewTicker(ringCheckPeriod)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
				cur := ringState()
				if !ring.HasReplicationSetChanged(last, cur) {
					continue
				}
				last = cur
				r.logger.Info("the ruler ring changed; syncing rule groups", "rulers", len(cur.Instances))
				r.sync(ctx, "ring-change")
				if p, ok := r.peers.(*RingPeers); ok {
					// Close the connections to rulers that left.
					addrs := make([]string, 0, len(cur.Instances))
					for _, inst := range cur.Instances {
						addrs = append(addrs, inst.Addr)
					}
					p.pool.retain(addrs)
				}
			}
		}
	}
	stopping := func(error) error {
		err := member.Stop()
		return errors.Join(err, services.StopAndAwaitTerminated(context.Background(), r.Service))
	}
	return services.NewBasicService(starting, running, stopping).WithName("ruler")
}
