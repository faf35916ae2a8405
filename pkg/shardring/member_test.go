package shardring

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func testConfig(t *testing.T, args ...string) Config {
	t.Helper()
	var cfg Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags("test.ring", Defaults{HeartbeatPeriod: 100 * time.Millisecond, HeartbeatTimeout: time.Minute, ReplicationFactor: 1, NumTokens: 64}, f)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestFlagsNamedUnderPrefix(t *testing.T) {
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	var cfg Config
	cfg.RegisterFlags("store-gateway.sharding-ring", Defaults{HeartbeatPeriod: 15 * time.Second, HeartbeatTimeout: time.Minute, ReplicationFactor: 3, NumTokens: 512}, f)
	for _, name := range []string{"store", "consul.hostname", "etcd.endpoints", "heartbeat-period", "replication-factor", "tokens-file-path", "instance-addr", "instance-availability-zone"} {
		if f.Lookup("store-gateway.sharding-ring."+name) == nil {
			t.Errorf("no -store-gateway.sharding-ring.%s", name)
		}
	}
	if cfg.KVStore.Store != "inmemory" || cfg.ReplicationFactor != 3 {
		t.Fatalf("defaults: store %q, replication factor %d", cfg.KVStore.Store, cfg.ReplicationFactor)
	}

	g := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags("compactor.ring", Defaults{HeartbeatPeriod: 5 * time.Second, HeartbeatTimeout: time.Minute, NumTokens: 512}, g)
	if g.Lookup("compactor.ring.replication-factor") != nil || cfg.ReplicationFactor != 1 {
		t.Fatalf("a ring without replication has replication factor %d and a flag %v", cfg.ReplicationFactor, g.Lookup("compactor.ring.replication-factor"))
	}
}

func TestValidateNamesFlag(t *testing.T) {
	cfg := testConfig(t, "-test.ring.zone-awareness-enabled")
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "-test.ring.instance-availability-zone") {
		t.Fatalf("got %v, want an error naming -test.ring.instance-availability-zone", err)
	}
}

// Two members share the items of the ring: each key is owned by exactly
// one of them at replication factor 1, by both at 2.
func TestMembersShareKeys(t *testing.T) {
	for _, rf := range []int{1, 2} {
		store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
		t.Cleanup(func() { _ = closer.Close() })
		var members []*Member
		for i, id := range []string{"a", "b"} {
			cfg := testConfig(t, "-test.ring.instance-id="+id)
			cfg.ReplicationFactor = rf
			m, err := NewMember(cfg, "test", "test-key", store, "127.0.0.1", 9000+i, ring.ACTIVE, nil, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Stop() })
			members = append(members, m)
		}
		op := ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)
		testkit.Eventually(t, 5*time.Second, "both members see each other", func() bool {
			return members[0].Ring().InstancesCount() == 2 && members[1].Ring().InstancesCount() == 2
		})
		owned := [2]int{}
		for key := uint32(0); key < 1<<32-1<<24; key += 1 << 24 {
			n := 0
			for i, m := range members {
				ok, err := m.Owns(key, op)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					owned[i]++
					n++
				}
			}
			if n != rf {
				t.Fatalf("rf %d: key %d has %d owners", rf, key, n)
			}
		}
		if owned[0] == 0 || owned[1] == 0 {
			t.Fatalf("rf %d: keys owned %v: one member owns none", rf, owned)
		}
		// Whatever the replication factor, one member is the first owner.
		for _, name := range []string{"user-index.json.gz", "a", "b", "c"} {
			if n := btoi(members[0].FirstOwnerOf(name, op)) + btoi(members[1].FirstOwnerOf(name, op)); n != 1 {
				t.Fatalf("rf %d: %q has %d first owners, want 1", rf, name, n)
			}
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
