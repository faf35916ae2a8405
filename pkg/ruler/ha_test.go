package ruler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cortex-tls/cortex/pkg/shardring"
)

// fakeLiveness answers every ruler as running but those marked down, and
// counts the checks.
type fakeLiveness struct {
	mu    sync.Mutex
	down  map[string]bool
	calls int
}

func (f *fakeLiveness) Live(_ context.Context, _, addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return !f.down[addr]
}

// TestHAEvaluationTakesOverADeadPrimary: with a replication factor of 2,
// each group has one evaluating ruler: its first replica while it answers
// liveness checks, else its second; without HA evaluation, the first only.
func TestHAEvaluationTakesOverADeadPrimary(t *testing.T) {
	cfg := testConfig(t, "-ruler.enable-sharding", "-ruler.ring.replication-factor=2", "-ruler.enable-ha-evaluation")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	store := newRingKV(t)
	var members []*shardring.Member
	for i := range 3 {
		members = append(members, startMember(t, cfg, store, fmt.Sprintf("ruler-%d", i), 9100+i))
	}
	eventually(t, "every member sees three rulers", func() bool {
		for _, m := range members {
			if m.Ring().InstancesCount() != 3 {
				return false
			}
		}
		return true
	})
	live := &fakeLiveness{down: map[string]bool{}}
	owners := func(grp int, ha bool) []int {
		g := ruleGroup("tenant-a", "ns", fmt.Sprintf("group-%d", grp))
		var out []int
		for i, m := range members {
			owns := RingOwner(m.Ring(), m.Addr(), TenantShards{})
			if ha {
				owns = HARingOwner(m.Ring(), m.Addr(), TenantShards{}, live, cfg.LivenessCheckTimeout, nil)
			}
			if owns(g) {
				out = append(out, i)
			}
		}
		return out
	}
	replicas := func(grp int) []string {
		rs, err := members[0].Ring().Get(tokenForGroup("tenant-a", "ns", fmt.Sprintf("group-%d", grp)), RingOp, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rs.GetAddresses()
	}
	addrIndex := func(addr string) int {
		for i, m := range members {
			if m.Addr() == addr {
				return i
			}
		}
		return -1
	}

	for g := range 50 {
		r := replicas(g)
		if len(r) != 2 {
			t.Fatalf("group-%d has replicas %v, want 2", g, r)
		}
		primary := addrIndex(r[0])
		for _, ha := range []bool{false, true} {
			if got := owners(g, ha); len(got) != 1 || got[0] != primary {
				t.Fatalf("group-%d (HA %v), all rulers up: owners %v, want its first replica %d", g, ha, got, primary)
			}
		}
	}

	live.down[members[0].Addr()] = true
	tookOver := 0
	for g := range 50 {
		r := replicas(g)
		got := owners(g, true)
		switch {
		case addrIndex(r[0]) == 0:
			// ruler-0 still claims its groups (it is down: it evaluates
			// nothing); its second replica takes them over.
			if want := []int{0, addrIndex(r[1])}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("group-%d, first replica ruler-0 down: owners %v, want %v", g, got, want)
			}
			tookOver++
		default:
			if len(got) != 1 || got[0] != addrIndex(r[0]) {
				t.Fatalf("group-%d: owners %v, want only its first replica", g, got)
			}
		}
		if got := owners(g, false); len(got) != 1 || got[0] != addrIndex(r[0]) {
			t.Fatalf("group-%d without HA: owners %v, want only its first replica", g, got)
		}
	}
	if tookOver == 0 {
		t.Fatal("ruler-0 is the first replica of none of 50 groups")
	}
}

// TestLivenessChecksAreShared: the checks of one sync's groups ask each
// ruler ahead once, not once per group.
func TestLivenessChecksAreShared(t *testing.T) {
	live := &fakeLiveness{down: map[string]bool{"a": true}}
	memo := &livenessMemoCache{live: live, timeout: testConfig(t).LivenessCheckTimeout, answers: map[string]livenessAnswer{}}
	for range 100 {
		if memo.anyRunning("tenant-a", []string{"a"}) {
			t.Fatal("a ruler down answers as running")
		}
	}
	if !memo.anyRunning("tenant-a", []string{"a", "b"}) {
		t.Fatal("one of two rulers ahead running: not seen")
	}
	if live.calls != 2 {
		t.Fatalf("%d liveness checks for 101 groups over two rulers, want 2", live.calls)
	}
}

func TestHAEvaluationFlags(t *testing.T) {
	cfg := testConfig(t)
	if cfg.EnableHAEvaluation || cfg.LivenessCheckTimeout.String() != "1s" || cfg.Sharding.Ring.ReplicationFactor != 1 {
		t.Errorf("defaults differ from Cortex's: HA %v, liveness timeout %s, replication factor %d", cfg.EnableHAEvaluation, cfg.LivenessCheckTimeout, cfg.Sharding.Ring.ReplicationFactor)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-ruler.enable-ha-evaluation"}, "-ruler.enable-ha-evaluation needs -ruler.enable-sharding"},
		{[]string{"-ruler.enable-sharding", "-ruler.enable-ha-evaluation", "-ruler.liveness-check-timeout=0s"}, "-ruler.liveness-check-timeout must be positive"},
	} {
		cfg := testConfig(t, c.args...)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
