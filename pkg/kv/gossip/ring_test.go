package gossip

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	gokitlog "github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestDskitRingOverGossip wires the KV into dskit's ring as the ingester
// ring is: a lifecycler on one member registers an instance, and a ring
// client given another member's KV client sees it come and go.
func TestDskitRingOverGossip(t *testing.T) {
	a, b, _ := threeMembers(t)

	var ringCfg ring.Config
	ringCfg.RegisterFlags(flag.NewFlagSet("ring", flag.PanicOnError))
	ringCfg.ReplicationFactor = 1
	r, err := ring.NewWithStoreClientAndStrategy(ringCfg, "ingester", ringKey, b.kv.Client(ring.GetCodec()), ring.NewDefaultReplicationStrategy(), nil, gokitlog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	startService(t, r)

	lcCfg := ring.BasicLifecyclerConfig{
		ID: "ingester-1", Addr: "127.0.0.1:9095",
		HeartbeatPeriod: 500 * time.Millisecond, HeartbeatTimeout: time.Minute, NumTokens: 8,
	}
	lc, err := ring.NewBasicLifecycler(lcCfg, "ingester", ringKey, a.client, ring.NewInstanceRegisterDelegate(ring.ACTIVE, 8), gokitlog.NewNopLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stopLifecycler := startService(t, lc)

	testkit.EventuallyNil(t, waitTimeout, "b's ring to see the instance registered on a", func() error {
		if n := r.InstancesCount(); n != 1 {
			return fmt.Errorf("%d instances", n)
		}
		if _, err := r.GetAllHealthy(ring.Read); err != nil {
			return err
		}
		return nil
	})

	stopLifecycler() // unregisters: the instance leaves the ring
	testkit.EventuallyNil(t, waitTimeout, "b's ring to see the instance leave", func() error {
		if n := r.InstancesCount(); n != 0 {
			return fmt.Errorf("%d instances", n)
		}
		return nil
	})
}

// startService starts s, stops it when the test ends, and returns a func
// that stops it earlier.
func startService(t *testing.T, s services.Service) (stop func()) {
	t.Helper()
	if err := s.StartAsync(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.AwaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := services.StopAndAwaitTerminated(ctx, s); err != nil {
			t.Errorf("stopping %T: %v", s, err)
		}
	}
	t.Cleanup(stop)
	return stop
}
