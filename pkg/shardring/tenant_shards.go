package shardring

import (
	"fmt"

	"github.com/grafana/dskit/ring"
)

// The values of a ring's -<component>.sharding-strategy flag, Cortex's.
const (
	// StrategyDefault spreads every tenant's items over the whole ring.
	StrategyDefault = "default"
	// StrategyShuffle spreads a tenant's items over its own shard of the
	// ring, chosen by the tenant's ID, so that one tenant's load reaches
	// only its shard.
	StrategyShuffle = "shuffle-sharding"
)

// ValidateStrategy checks the value of flag, a sharding strategy.
func ValidateStrategy(flag, strategy string) error {
	switch strategy {
	case StrategyDefault, StrategyShuffle:
		return nil
	}
	return fmt.Errorf("-%s=%q: unknown strategy; valid values: %s, %s", flag, strategy, StrategyDefault, StrategyShuffle)
}

// TenantShards gives the part of a ring that holds a tenant's items: with
// the shuffle-sharding strategy and a tenant shard size above zero, the
// tenant's shuffle shard of that many instances (dskit's ShuffleShard: the
// same instances for every reader of the same ring); otherwise the whole
// ring.
type TenantShards struct {
	Strategy  string
	ShardSize func(tenant string) int
}

// Ring returns the part of r that holds tenant's items.
func (t TenantShards) Ring(r ring.ReadRing, tenant string) ring.ReadRing {
	if t.Strategy != StrategyShuffle || t.ShardSize == nil {
		return r
	}
	if n := t.ShardSize(tenant); n > 0 {
		return r.ShuffleShard(tenant, n)
	}
	return r
}
