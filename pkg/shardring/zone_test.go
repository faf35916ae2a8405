package shardring

import (
	"context"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// Members started with -<prefix>.instance-availability-zone register their
// zone, and with -<prefix>.zone-awareness-enabled the ring replicates each
// key to members of different zones, as the store-gateway, compactor and
// ruler rings do.
func TestZoneAwareMembers(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	zoneOf := map[string]string{}
	var members []*Member
	for i, id := range []string{"a1", "a2", "a3", "b1"} {
		zone := "zone-" + id[:1]
		cfg := testConfig(t, "-test.ring.instance-id="+id, "-test.ring.zone-awareness-enabled", "-test.ring.instance-availability-zone="+zone)
		cfg.ReplicationFactor = 2
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		m, err := NewMember(cfg, "test", "test-key", store, "127.0.0.1", 9100+i, ring.ACTIVE, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop() })
		members = append(members, m)
		zoneOf[m.Addr()] = zone
	}
	r := members[0].Ring()
	testkit.Eventually(t, 5*time.Second, "the ring to hold 4 members", func() bool { return r.InstancesCount() == 4 })
	op := ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)
	b1Keys := 0
	for key := uint32(0); key < 1<<31; key += 1 << 22 {
		rs, err := r.Get(key, op, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs.Instances) != 2 || zoneOf[rs.Instances[0].Addr] == zoneOf[rs.Instances[1].Addr] {
			t.Fatalf("key %d on %v, want one member in each zone", key, rs.Instances)
		}
		for _, inst := range rs.Instances {
			if inst.Zone != zoneOf[inst.Addr] {
				t.Fatalf("member %s registered in zone %q, want %q", inst.Addr, inst.Zone, zoneOf[inst.Addr])
			}
			if inst.Id == "b1" {
				b1Keys++
			}
		}
	}
	// zone-b has one member: it holds a replica of every key.
	if want := (1 << 31) / (1 << 22); b1Keys != want {
		t.Fatalf("b1, alone in zone-b, holds %d of %d keys", b1Keys, want)
	}
}
