package shardring

import (
	"context"
	"errors"
	"flag"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// With -<prefix>.detailed-metrics-enabled (the default) the ring client
// exports each member's tokens and share of the ring, which add up to 1;
// without, neither metric.
func TestDetailedMetrics(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
		t.Cleanup(func() { _ = closer.Close() })
		reg := prometheus.NewRegistry()
		var members []*Member
		for i, id := range []string{"a", "b"} {
			cfg := testConfig(t, "-test.ring.instance-id="+id)
			cfg.DetailedMetricsEnabled = enabled
			r := prometheus.NewRegistry()
			if i == 0 {
				r = reg
			}
			m, err := NewMember(cfg, "test", "test-key", store, "127.0.0.1", 9000+i, ring.ACTIVE, nil, r)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Stop() })
			members = append(members, m)
		}
		testkit.Eventually(t, 5*time.Second, "both members in the ring", func() bool { return members[0].Ring().InstancesCount() == 2 })

		if !enabled {
			if n, err := testutil.GatherAndCount(reg, "ring_tokens_owned", "ring_member_ownership_percent"); err != nil || n != 0 {
				t.Fatalf("detailed metrics disabled: %d series, %v", n, err)
			}
			continue
		}
		tokens := testkit.MetricValues(t, reg, "ring_tokens_owned")
		if tokens[`member=a,name=test`] != 64 || tokens[`member=b,name=test`] != 64 {
			t.Fatalf("ring_tokens_owned: %v, want 64 per member", tokens)
		}
		share := testkit.MetricValues(t, reg, "ring_member_ownership_percent")
		a, b := share[`member=a,name=test`], share[`member=b,name=test`]
		if a <= 0 || b <= 0 || math.Abs(a+b-1) > 1e-9 {
			t.Fatalf("ring_member_ownership_percent: %v, want two shares adding up to 1", share)
		}
	}
}

func TestCountTokens(t *testing.T) {
	desc := ring.NewDesc()
	desc.AddIngester("a", "a:1", "", []uint32{100, 300}, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
	desc.AddIngester("b", "b:1", "", []uint32{200}, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
	desc.AddIngester("c", "c:1", "", nil, ring.PENDING, time.Now(), false, time.Time{}, nil)
	n, owned := countTokens(desc)
	// a owns [100, 200) and [300, 100) around the ring, b [200, 300).
	if n["a"] != 2 || n["b"] != 1 || n["c"] != 0 {
		t.Fatalf("token counts %v", n)
	}
	if owned["b"] != 100 || owned["a"] != 100+int64(math.MaxUint32)-300+100 || owned["c"] != 0 {
		t.Fatalf("owned ranges %v", owned)
	}
}

// optionsConfig is testConfig of a ring with a final sleep and an instance
// state timeout.
func optionsConfig(t *testing.T, args ...string) Config {
	t.Helper()
	var cfg Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags("test.ring", Defaults{HeartbeatPeriod: 100 * time.Millisecond, HeartbeatTimeout: time.Minute, ReplicationFactor: 1, NumTokens: 64, FinalSleep: true, WaitInstanceStateTimeout: time.Minute}, f)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// -<prefix>.final-sleep keeps a stopping member for that long after it
// left the ring: the others see it gone before it stops.
func TestFinalSleep(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	cfg := optionsConfig(t, "-test.ring.instance-id=a", "-test.ring.final-sleep=300ms")
	if cfg.FinalSleep != 300*time.Millisecond {
		t.Fatalf("final sleep %v", cfg.FinalSleep)
	}
	m, err := NewMember(cfg, "test", "test-key", store, "127.0.0.1", 9000, ring.ACTIVE, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- m.Stop() }()
	testkit.EventuallyNil(t, 5*time.Second, "the member gone from the ring", func() error {
		v, err := store.Get(context.Background(), "test-key")
		if err != nil {
			return err
		}
		if d, ok := v.(*ring.Desc); ok && len(d.Ingesters) > 0 {
			return errors.New("still in the ring")
		}
		return nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("stopped (%v) without the final sleep", err)
	default:
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// -<prefix>.wait-instance-state-timeout bounds the wait for the member to
// show in the ring: a ring client that never sees it fails the start,
// naming the flag.
func TestWaitInstanceStateTimeout(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	cfg := optionsConfig(t, "-test.ring.instance-id=a", "-test.ring.wait-instance-state-timeout=200ms")
	// The member registers as JOINING, but waits to be seen ACTIVE, which
	// never happens.
	m, err := NewMember(cfg, "test", "test-key", store, "127.0.0.1", 9000, ring.JOINING, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = m.waitState(ctx, ring.LEAVING)
	if err == nil || !strings.Contains(err.Error(), "not LEAVING in the ring within -test.ring.wait-instance-state-timeout=200ms") {
		t.Fatalf("got %v", err)
	}
}

func TestRingOptionFlags(t *testing.T) {
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	var cfg Config
	cfg.RegisterFlags("store-gateway.sharding-ring", Defaults{HeartbeatPeriod: 15 * time.Second, HeartbeatTimeout: time.Minute, NumTokens: 512, FinalSleep: true, WaitInstanceStateTimeout: 10 * time.Minute}, f)
	if !cfg.DetailedMetricsEnabled || cfg.FinalSleep != 0 || cfg.WaitInstanceStateTimeout != 10*time.Minute {
		t.Fatalf("defaults: %v %v %v", cfg.DetailedMetricsEnabled, cfg.FinalSleep, cfg.WaitInstanceStateTimeout)
	}
	g := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags("compactor.ring", Defaults{HeartbeatPeriod: 5 * time.Second, HeartbeatTimeout: time.Minute, NumTokens: 512}, g)
	if g.Lookup("compactor.ring.final-sleep") != nil || g.Lookup("compactor.ring.wait-instance-state-timeout") != nil || g.Lookup("compactor.ring.detailed-metrics-enabled") == nil {
		t.Fatal("a ring without final sleep and state timeout registers them, or lacks detailed metrics")
	}
}
