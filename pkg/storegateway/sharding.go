package storegateway

import (
	"flag"
	"fmt"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"

	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/util/queryprotection"
	"github.com/cortex-tls/cortex/pkg/util/tenantfilter"
)

// The store-gateway ring's name and key in the KV store, as Cortex's.
const (
	RingName = "store-gateway"
	RingKey  = "store-gateway"
)

// Operations on the store-gateway ring, Cortex's.
var (
	// BlocksOwnerSync finds every owner of a block, joining and leaving
	// ones included: each loads it.
	BlocksOwnerSync = ring.NewOp([]ring.InstanceState{ring.JOINING, ring.ACTIVE, ring.LEAVING}, nil)
	// BlocksRead finds the store-gateways a querier asks for a block: only
	// ACTIVE ones have loaded their blocks, so an owner that is not ACTIVE
	// extends the set to the next instance, which keeps the block until
	// the new owner is ACTIVE.
	BlocksRead = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, func(s ring.InstanceState) bool {
		return s != ring.ACTIVE
	})
)

// HashBlockID is a block's key on the ring: FNV-1a over the ID's bytes, as
// Cortex's, so both place a block on the same store-gateways.
func HashBlockID(id ulid.ULID) uint32 {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for _, b := range id {
		h ^= uint32(b)
		h *= prime32
	}
	return h
}

// The values of -store-gateway.sharding-strategy, Cortex's (shardring's).
const (
	ShardingStrategyDefault = shardring.StrategyDefault
	ShardingStrategyShuffle = shardring.StrategyShuffle
)

// GatewayConfig is Cortex's store_gateway block.
type GatewayConfig struct {
	ShardingEnabled  bool             `yaml:"sharding_enabled"`
	ShardingRing     shardring.Config `yaml:"sharding_ring"`
	ShardingStrategy string           `yaml:"sharding_strategy"`
	// HedgedRequest hedges the store-gateway's requests to the bucket.
	HedgedRequest bucket.HedgedRequestConfig `yaml:"hedged_request"`

	EnabledTenants  flagext.StringSliceCSV `yaml:"enabled_tenants"`
	DisabledTenants flagext.StringSliceCSV `yaml:"disabled_tenants"`

	// QueryProtection refuses calls while the CPU or the heap is nearly
	// saturated: -store-gateway.query-protection.rejection.threshold.*.
	QueryProtection queryprotection.Config `yaml:"query_protection"`
}

// AllowedTenants is the filter of -store-gateway.enabled-tenants and
// -store-gateway.disabled-tenants, for WithAllowedTenants.
func (c *GatewayConfig) AllowedTenants() *tenantfilter.Allowed {
	return tenantfilter.New(c.EnabledTenants, c.DisabledTenants)
}

// RegisterFlags registers -store-gateway.sharding-enabled and the ring's
// -store-gateway.sharding-ring.* flags with Cortex's defaults.
func (c *GatewayConfig) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.ShardingEnabled, "store-gateway.sharding-enabled", false, "Shard blocks across store-gateways on the -store-gateway.sharding-ring ring, each block loaded by -store-gateway.sharding-ring.replication-factor of them. Queriers must be given the same ring. When false, every store-gateway loads every block and queriers use -querier.store-gateway-addresses.")
	c.HedgedRequest.RegisterFlagsWithPrefix("store-gateway.", f)
	f.StringVar(&c.ShardingStrategy, "store-gateway.sharding-strategy", ShardingStrategyDefault, "The sharding strategy to use. Supported values are: default, shuffle-sharding. With shuffle-sharding, each tenant's blocks go to -store-gateway.tenant-shard-size store-gateways of the ring (its per-tenant limit store_gateway_tenant_shard_size); queriers must be given the same strategy and limits.")
	c.ShardingRing.RegisterFlags("store-gateway.sharding-ring", shardring.Defaults{
		HeartbeatPeriod:          15 * time.Second,
		HeartbeatTimeout:         time.Minute,
		ReplicationFactor:        3,
		WaitStabilityMinDuration: time.Minute,
		WaitStabilityMaxDuration: 5 * time.Minute,
		NumTokens:                512,
		FinalSleep:               true,
		WaitInstanceStateTimeout: 10 * time.Minute,
	}, f)
	f.Var(&c.EnabledTenants, "store-gateway.enabled-tenants", "Comma separated list of tenants whose store metrics this storegateway can process. If specified, only these tenants will be handled by storegateway, otherwise this storegateway will be enabled for all the tenants in the store-gateway cluster.")
	f.Var(&c.DisabledTenants, "store-gateway.disabled-tenants", "Comma separated list of tenants whose store metrics this storegateway cannot process. If specified, a storegateway that would normally pick the specified tenant(s) for processing will ignore them instead.")
	c.QueryProtection.RegisterFlagsWithPrefix(f, "store-gateway.", "store-gateway")
	c.QueryProtection.RegisterCPUFlagWithPrefix(f, "store-gateway.", "store-gateway")
	// Every store-gateway counts as healthy as long as it heartbeats: a
	// ring smaller than the replication factor still serves each block.
	c.ShardingRing.ReplicationStrategy = ring.NewIgnoreUnhealthyInstancesReplicationStrategy()
}

// Validate checks the ring settings when sharding is enabled.
func (c *GatewayConfig) Validate() error {
	if err := c.HedgedRequest.Validate("store-gateway."); err != nil {
		return err
	}
	if err := shardring.ValidateStrategy("store-gateway.sharding-strategy", c.ShardingStrategy); err != nil {
		return err
	}
	if err := c.QueryProtection.Validate("store-gateway."); err != nil {
		return err
	}
	if !c.ShardingEnabled {
		return nil
	}
	if err := c.ShardingRing.Validate(); err != nil {
		return fmt.Errorf("store-gateway sharding: %w", err)
	}
	return nil
}

// TenantShards gives the part of the ring that holds a tenant's blocks.
type TenantShards = shardring.TenantShards
