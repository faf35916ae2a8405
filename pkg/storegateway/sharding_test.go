package storegateway

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// startMembers starts n store-gateway ring members (replication factor 1)
// on one in-memory KV store and waits until each sees all of them.
func startMembers(t *testing.T, n int) []*shardring.Member {
	t.Helper()
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	var members []*shardring.Member
	for i := 0; i < n; i++ {
		var cfg GatewayConfig
		f := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(f)
		if err := f.Parse([]string{
			"-store-gateway.sharding-ring.instance-id=" + fmt.Sprintf("sg-%d", i),
			"-store-gateway.sharding-ring.replication-factor=1",
			"-store-gateway.sharding-ring.heartbeat-period=100ms",
			"-store-gateway.sharding-ring.wait-stability-min-duration=0",
		}); err != nil {
			t.Fatal(err)
		}
		m, err := shardring.NewMember(cfg.ShardingRing, RingName, RingKey, store, "127.0.0.1", 9000+i, ring.ACTIVE, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop() })
		members = append(members, m)
	}
	testkit.Eventually(t, 10*time.Second, "every member sees the whole ring", func() bool {
		for _, m := range members {
			if m.Ring().InstancesCount() != n {
				return false
			}
		}
		return true
	})
	return members
}

// With shuffle sharding, a tenant's blocks go to its shard of the ring
// only, each block to exactly one member at replication factor 1; a tenant
// without a shard size, or the default strategy, spreads over every member.
func TestShuffleShardingPlacesATenantsBlocksOnItsShard(t *testing.T) {
	members := startMembers(t, 4)
	size := map[string]int{"small": 2, "whole": 0}
	shuffle := TenantShards{Strategy: ShardingStrategyShuffle, ShardSize: func(tenant string) int { return size[tenant] }}
	spread := TenantShards{Strategy: ShardingStrategyDefault, ShardSize: shuffle.ShardSize}

	ids := make([]ulid.ULID, 300)
	for i := range ids {
		ids[i] = ulid.Make()
	}
	owners := func(shards TenantShards, tenant string) map[string]bool {
		seen := map[string]bool{}
		for _, id := range ids {
			var of []string
			for _, m := range members {
				if ownedBy(m, shards)(tenant, id, false) {
					of = append(of, m.ID())
				}
			}
			if len(of) != 1 {
				t.Fatalf("tenant %s, block %s: owned by %v, want exactly one member", tenant, id, of)
			}
			seen[of[0]] = true
		}
		return seen
	}
	if got := owners(shuffle, "small"); len(got) != 2 {
		t.Errorf("tenant with shard size 2: blocks on %v, want 2 members", got)
	}
	if got := owners(shuffle, "whole"); len(got) != 4 {
		t.Errorf("tenant with shard size 0: blocks on %v, want all 4 members", got)
	}
	if got := owners(spread, "small"); len(got) != 4 {
		t.Errorf("default strategy: blocks on %v, want all 4 members", got)
	}

	// The queriers' view of the shard is the same: the ring's owners of
	// each block within the tenant's shard.
	for _, id := range ids[:20] {
		rs, err := shuffle.Ring(members[0].Ring(), "small").Get(HashBlockID(id), BlocksRead, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			if ownedBy(m, shuffle)("small", id, false) != rs.Includes(m.Addr()) {
				t.Fatalf("block %s: member %s owns it %v, but the read set is %v", id, m.ID(), !rs.Includes(m.Addr()), rs.GetAddresses())
			}
		}
	}
}

func TestShardingStrategyValidated(t *testing.T) {
	cfg := GatewayConfig{ShardingStrategy: "zone"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `-store-gateway.sharding-strategy="zone"`) || !strings.Contains(err.Error(), "shuffle-sharding") {
		t.Fatalf("got %v, want an error naming the flag and the valid values", err)
	}
}
