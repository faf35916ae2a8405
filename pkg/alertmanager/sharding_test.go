package alertmanager

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func shardingConfig(t *testing.T, args ...string) ShardingConfig {
	t.Helper()
	var c ShardingConfig
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(f)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestShardingFlagsAndDefaults(t *testing.T) {
	c := shardingConfig(t)
	r := c.ShardingRing
	if c.ShardingEnabled || r.ReplicationFactor != 3 || r.HeartbeatPeriod != 15*time.Second || r.HeartbeatTimeout != time.Minute ||
		r.KVStore.Store != "inmemory" || c.PeerTimeout != 15*time.Second || c.AlertmanagerClient.RemoteTimeout != 2*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	c = shardingConfig(t, "-alertmanager.sharding-enabled", "-alertmanager.sharding-ring.zone-awareness-enabled")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-alertmanager.sharding-ring.zone-awareness-enabled needs -alertmanager.sharding-ring.instance-availability-zone") {
		t.Fatalf("zone awareness without a zone: %v", err)
	}
	c = shardingConfig(t, "-alertmanager.sharding-enabled", "-alertmanager.alertmanager-client.remote-timeout=0s")
	if err := c.Validate(); err == nil || err.Error() != "-alertmanager.alertmanager-client.remote-timeout must be positive, got 0s" {
		t.Fatalf("zero remote timeout: %v", err)
	}
	c = shardingConfig(t, "-alertmanager.alertmanager-client.tls-cert-path=a.crt", "-alertmanager.alertmanager-client.tls-server-name=am")
	if c.AlertmanagerClient.TLS.CertPath != "a.crt" || c.AlertmanagerClient.TLS.ServerName != "am" {
		t.Fatalf("client TLS flags: %+v", c.AlertmanagerClient.TLS)
	}
}

// Four alertmanagers at replication factor 3: every tenant has three
// replicas, each member agrees on their order, and each replica's
// position is its index, so exactly one replica waits no peer timeout.
func TestTenantReplicasAndPositions(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	var rings []replicaRing
	for i := range 4 {
		c := shardingConfig(t, "-alertmanager.sharding-ring.instance-id=am-"+fmt.Sprint(i), "-alertmanager.sharding-ring.heartbeat-period=100ms")
		m, err := shardring.NewMember(c.ShardingRing, RingName, RingKey, store, "127.0.0.1", 9000+i, ring.ACTIVE, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Stop() })
		rings = append(rings, replicaRing{ring: m.Ring(), addr: m.Addr(), op: RingOp})
	}
	testkit.Eventually(t, 5*time.Second, "every member sees the four", func() bool {
		for _, r := range rings {
			if r.ring.InstancesCount() != 4 {
				return false
			}
		}
		return true
	})
	owners := map[string]int{}
	for i := range 50 {
		tenant := fmt.Sprintf("tenant-%d", i)
		want, err := rings[0].replicas(tenant)
		if err != nil || len(want) != 3 {
			t.Fatalf("%s: replicas %v %v", tenant, want, err)
		}
		zeros := 0
		for _, r := range rings {
			got, _ := r.replicas(tenant)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: %s sees replicas %v, another %v", tenant, r.addr, got, want)
			}
			if r.owns(tenant) != slices.Contains(want, r.addr) {
				t.Fatalf("%s: %s owns %v", tenant, r.addr, r.owns(tenant))
			}
			if r.owns(tenant) {
				owners[r.addr]++
				if p := r.position(tenant); p != slices.Index(want, r.addr) {
					t.Fatalf("%s: %s at position %d of %v", tenant, r.addr, p, want)
				} else if p == 0 {
					zeros++
				}
			}
		}
		if zeros != 1 {
			t.Fatalf("%s: %d replicas at position 0", tenant, zeros)
		}
	}
	if len(owners) != 4 {
		t.Fatalf("tenants spread over %v", owners)
	}
}

// A tenant's replica set is extended past an owner that is LEAVING, unless
// -alertmanager.sharding-ring.disable-replica-set-extension.
func TestReplicaSetExtension(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	desc := ring.NewDesc()
	now := time.Now()
	for i := range 4 {
		state := ring.ACTIVE
		if i == 0 {
			state = ring.LEAVING
		}
		desc.AddIngester(fmt.Sprintf("am-%d", i), fmt.Sprintf("127.0.0.1:%d", 9000+i), "", []uint32{uint32(i+1) << 30}, state, now, false, time.Time{}, nil)
	}
	if err := store.CAS(context.Background(), RingKey, func(any) (any, bool, error) { return desc, false, nil }); err != nil {
		t.Fatal(err)
	}
	cfg := ring.Config{HeartbeatTimeout: time.Minute, ReplicationFactor: 3}
	r, err := ring.NewWithStoreClientAndStrategy(cfg, RingName, RingKey, store, ring.NewIgnoreUnhealthyInstancesReplicationStrategy(), nil, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	tenant := "" // every tenant token falls before am-0's token at 1<<30 or wraps to it
	for i := 0; ; i++ {
		tenant = fmt.Sprintf("tenant-%d", i)
		if tenantToken(tenant) < 1<<30 {
			break
		}
	}
	extended, err := replicaRing{ring: r, op: RingOp}.replicas(tenant)
	if err != nil || len(extended) != 3 || slices.Contains(extended, "127.0.0.1:9000") {
		t.Fatalf("with extension: replicas %v, %v; want the 3 ACTIVE instances", extended, err)
	}
	strict, err := replicaRing{ring: r, op: ringOpNoExtension}.replicas(tenant)
	if err != nil || len(strict) != 2 || slices.Contains(strict, "127.0.0.1:9000") {
		t.Fatalf("without extension: replicas %v, %v; want the 2 ACTIVE owners of the 3", strict, err)
	}
}
