package ruler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/shardring"
)

// newRingKV is an in-memory KV store shared by a test's ruler ring members.
func newRingKV(t testing.TB) kv.Client {
	t.Helper()
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	return store
}

// newMember prepares the membership of id in the ruler ring in store,
// advertising 127.0.0.1:port, with the ring settings of cfg.
func newMember(t testing.TB, cfg Config, store kv.Client, id string, port int) *shardring.Member {
	t.Helper()
	rc := cfg.Sharding.Ring
	rc.InstanceID = id
	m, err := shardring.NewMember(rc, RingName, RingKey, store, "127.0.0.1", port, ring.ACTIVE, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startMember joins the ruler ring as newMember prepares it.
func startMember(t testing.TB, cfg Config, store kv.Client, id string, port int) *shardring.Member {
	t.Helper()
	m := newMember(t, cfg, store, id, port)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	return m
}

func ruleGroup(user, namespace, name string) rulestore.RuleGroup {
	return rulestore.RuleGroup{User: user, Namespace: namespace, Group: rulefmt.RuleGroup{Name: name}}
}

// TestTokenForGroupIsCortexs: the token is FNV-1a over the tenant, the
// namespace and the group name, concatenated, as Cortex's tokenForGroup;
// the expected values are FNV-1a of the concatenated strings.
func TestTokenForGroupIsCortexs(t *testing.T) {
	for _, c := range []struct {
		user, ns, group string
		want            uint32
	}{
		{"", "", "", 0x811c9dc5}, // the FNV-1a offset basis
		{"a", "", "", 0xe40c292c},
		{"tenant", "ns", "g", 0x25c9a473},
	} {
		if got := tokenForGroup(c.user, c.ns, c.group); got != c.want {
			t.Errorf("tokenForGroup(%q, %q, %q) = %#x, want %#x", c.user, c.ns, c.group, got, c.want)
		}
	}
	// Only the concatenation counts, as in Cortex.
	if tokenForGroup("ab", "c", "d") != tokenForGroup("a", "bc", "d") {
		t.Error("the token is not a hash of the concatenation")
	}
}

// TestEachGroupHasOneOwnerOfThree: on a ring of three rulers, each group is
// evaluated by exactly one of them, and each evaluates some; with shuffle
// sharding and a tenant shard size of 2, a tenant's groups go to the same
// two rulers only, one each.
func TestEachGroupHasOneOwnerOfThree(t *testing.T) {
	cfg := testConfig(t, "-ruler.enable-sharding")
	store := newRingKV(t)
	var members []*shardring.Member
	for i := range 3 {
		members = append(members, startMember(t, cfg, store, fmt.Sprintf("ruler-%d", i), 9000+i))
	}
	eventually(t, "every member sees three rulers", func() bool {
		for _, m := range members {
			if m.Ring().InstancesCount() != 3 {
				return false
			}
		}
		return true
	})

	check := func(shards TenantShards, tenants int) (perRuler [3]int, rulersOfTenant map[string]map[int]bool) {
		rulersOfTenant = map[string]map[int]bool{}
		for u := range tenants {
			user := fmt.Sprintf("tenant-%d", u)
			rulersOfTenant[user] = map[int]bool{}
			for n := range 10 {
				for g := range 10 {
					grp := ruleGroup(user, fmt.Sprintf("ns-%d", n), fmt.Sprintf("group-%d", g))
					owners := 0
					for i, m := range members {
						if RingOwner(m.Ring(), m.Addr(), shards)(grp) {
							owners++
							perRuler[i]++
							rulersOfTenant[user][i] = true
						}
					}
					if owners != 1 {
						t.Fatalf("group %s/%s/%s has %d owners, want 1", user, grp.Namespace, grp.Group.Name, owners)
					}
				}
			}
		}
		return perRuler, rulersOfTenant
	}

	perRuler, _ := check(TenantShards{Strategy: ShardingStrategyDefault}, 5)
	for i, n := range perRuler {
		// 500 groups over three rulers of 128 tokens each.
		if n < 50 {
			t.Errorf("ruler-%d owns %d of 500 groups", i, n)
		}
	}

	shuffle := TenantShards{Strategy: ShardingStrategyShuffle, ShardSize: func(string) int { return 2 }}
	_, rulersOfTenant := check(shuffle, 20)
	used := map[int]bool{}
	for user, rulers := range rulersOfTenant {
		if len(rulers) != 2 {
			t.Errorf("with a shard size of 2, %s's 100 groups are on %d rulers", user, len(rulers))
		}
		for i := range rulers {
			used[i] = true
		}
	}
	if len(used) != 3 {
		t.Errorf("the shards of 20 tenants use %d of 3 rulers", len(used))
	}
}

func TestShardingFlagsAndValidation(t *testing.T) {
	cfg := testConfig(t)
	if cfg.Sharding.EnableSharding || cfg.Sharding.ShardingStrategy != "default" || cfg.Sharding.Ring.NumTokens != 128 ||
		cfg.Sharding.Ring.HeartbeatPeriod != 5*time.Second || cfg.Sharding.Ring.KVStore.Store != "inmemory" {
		t.Fatalf("defaults: %+v", cfg.Sharding)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-ruler.sharding-strategy=random"}, `-ruler.sharding-strategy="random": unknown strategy`},
		{[]string{"-ruler.enable-sharding", "-ruler.ring.num-tokens=0"}, "-ruler.ring.num-tokens must be positive"},
		{[]string{"-ruler.enable-sharding", "-ruler.ring.zone-awareness-enabled"}, "-ruler.ring.instance-availability-zone"},
	} {
		cfg := testConfig(t, c.args...)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error containing %q", c.args, err, c.want)
		}
	}
}
