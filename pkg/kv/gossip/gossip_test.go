package gossip

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// threeMembers starts a, then b and c joining a, all with mutual TLS from
// one CA, configured through the -memberlist.tls-* flags as the wiring does.
func threeMembers(t *testing.T) (a, b, c *node) {
	t.Helper()
	ca := testkit.NewPKI(t, "gossip-ca")
	member := func(name string, join []string) *node {
		cert, key := ca.Server(t, name).Files()
		return startNode(t, name, nodeOptions{tls: fromFlags(ca.CAPath, cert, key), join: join})
	}
	a = member("a", nil)
	b = member("b", []string{a.addr()})
	c = member("c", []string{a.addr()})
	waitMembers(t, 3, a, b, c)
	return a, b, c
}

func TestMutualTLSGossipReplicatesRing(t *testing.T) {
	a, b, c := threeMembers(t)

	// b watches the key before a writes it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan []string, 16)
	var watching sync.WaitGroup
	watching.Add(1)
	go func() {
		defer watching.Done()
		b.client.WatchKey(ctx, ringKey, func(v any) bool {
			seen <- ringIDs(v)
			return !slices.Contains(ringIDs(v), "ingester-a")
		})
	}()
	testkit.Eventually(t, waitTimeout, "b's WatchKey to register", func() bool { return b.watching(ringKey, "") == 1 })

	a.cas(t, addIngester("ingester-a"))
	select {
	case ids := <-seen:
		for !slices.Contains(ids, "ingester-a") {
			select {
			case ids = <-seen:
			case <-time.After(waitTimeout):
				t.Fatalf("b's WatchKey saw %v but never ingester-a", ids)
			}
		}
	case <-time.After(waitTimeout):
		t.Fatal("b's WatchKey was not called within the wait after a's CAS")
	}
	watching.Wait() // f returned false: the watch ended
	waitIngesters(t, []string{"ingester-a"}, a, b, c)

	// Concurrent writes from every member converge to the union.
	want := []string{"ingester-a"}
	var wg sync.WaitGroup
	for _, n := range []*node{a, b, c} {
		for i := range 4 {
			want = append(want, fmt.Sprintf("%s-%d", n.name, i))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				err := n.client.CAS(ctx, ringKey, addIngester(fmt.Sprintf("%s-%d", n.name, i)))
				cancel()
				if err != nil {
					t.Errorf("node %s: CAS: %v", n.name, err)
				}
			}
		}()
	}
	wg.Wait()
	waitIngesters(t, want, a, b, c)

	if got := testkit.MetricValues(t, a.reg, "cortex_memberlist_client_cluster_members_count")[""]; got != 3 {
		t.Errorf("cortex_memberlist_client_cluster_members_count = %v, want 3", got)
	}
	if got := testkit.MetricValues(t, b.reg, "cortex_memberlist_client_messages_received_total")[""]; got == 0 {
		t.Error("b counted no received gossip messages")
	}
}

func TestPlaintextGossip(t *testing.T) {
	a := startNode(t, "a", nodeOptions{})
	b := startNode(t, "b", nodeOptions{join: []string{a.addr()}})
	waitMembers(t, 2, a, b)

	b.cas(t, addIngester("ingester-b"))
	waitIngesters(t, []string{"ingester-b"}, a, b)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	keys, err := a.client.List(ctx, "ri")
	if err != nil || !slices.Equal(keys, []string{ringKey}) {
		t.Fatalf("a.List(\"ri\") = %v, %v; want [%s]", keys, err, ringKey)
	}

	// A deletion reaches the peer; WatchPrefix reports changes, not deletions.
	prefixSeen := make(chan string, 16)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go a.client.WatchPrefix(watchCtx, "ri", func(key string, v any) bool {
		prefixSeen <- fmt.Sprintf("%s=%v", key, ringIDs(v))
		return true
	})
	testkit.Eventually(t, waitTimeout, "a's WatchPrefix to register", func() bool { return a.watching("", "ri") == 1 })
	b.cas(t, addIngester("ingester-b2"))
	select {
	case got := <-prefixSeen:
		if !strings.HasPrefix(got, ringKey+"=") {
			t.Fatalf("WatchPrefix reported %q", got)
		}
	case <-time.After(waitTimeout):
		t.Fatal("a's WatchPrefix was not called after b's CAS")
	}

	if err := b.client.Delete(ctx, ringKey); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyNil(t, waitTimeout, "the deletion to reach a", func() error {
		v, err := a.client.Get(ctx, ringKey)
		if err != nil || v != nil {
			return fmt.Errorf("a.Get = %v, %v", ringIDs(v), err)
		}
		return nil
	})
}

func TestLeftMemberIsSeenGone(t *testing.T) {
	a, b, c := threeMembers(t)
	gone := c.kv.NodeName()
	c.stop(t)
	waitMembers(t, 2, a, b)
	for _, n := range []*node{a, b} {
		if slices.Contains(n.kv.Members(), gone) {
			t.Errorf("%s still lists %s among %v", n.name, gone, n.kv.Members())
		}
	}
	// The others keep gossiping.
	a.cas(t, addIngester("after-leave"))
	waitIngesters(t, []string{"after-leave"}, a, b)
}

func TestClusterLabelSeparatesClusters(t *testing.T) {
	label := func(l string) func(*dskitConfig) { return func(cfg *dskitConfig) { cfg.ClusterLabel = l } }
	a := startNode(t, "a", nodeOptions{configure: label("blue")})
	other := newNode(t, "other", nodeOptions{join: []string{a.addr()}, abortIfJoinFails: true, configure: label("green")})
	if err := other.start(t); err == nil {
		t.Fatalf("a member labelled green joined the blue cluster: a sees %v", a.kv.Members())
	}
	b := startNode(t, "b", nodeOptions{join: []string{a.addr()}, configure: label("blue")})
	waitMembers(t, 2, a, b)
}

func TestTombstonesExpire(t *testing.T) {
	a := startNode(t, "a", nodeOptions{configure: func(cfg *dskitConfig) { cfg.LeftIngestersTimeout = time.Second }})
	a.cas(t, addIngester("x"))
	a.cas(t, addIngester("y"))
	// Dropping x from the ring in a CAS leaves a tombstone (x LEFT) for the peers.
	a.cas(t, func(in any) (any, bool, error) {
		desc := in.(*ring.Desc)
		desc.RemoveIngester("x")
		return desc, true, nil
	})
	if got := a.ingesters(t); !slices.Equal(got, []string{"y"}) {
		t.Fatalf("ring after removing x = %v, want [y]", got)
	}
	// Tombstone timestamps have one-second resolution.
	testkit.EventuallyNil(t, waitTimeout, "x's tombstone to be removed", func() error {
		a.kv.store.mu.Lock()
		defer a.kv.store.mu.Unlock()
		desc := a.kv.store.entries[ringKey].value.(*ring.Desc)
		if _, ok := desc.Ingesters["x"]; ok {
			return fmt.Errorf("x is still stored, state %s", desc.Ingesters["x"].State)
		}
		return nil
	})
	if got := testkit.MetricValues(t, a.reg, "cortex_memberlist_client_removed_tombstones_total")[""]; got < 1 {
		t.Errorf("cortex_memberlist_client_removed_tombstones_total = %v, want at least 1", got)
	}
}

func TestJoinThroughDNS(t *testing.T) {
	if addrs, err := net.LookupHost("localhost"); err != nil || !slices.Contains(addrs, "127.0.0.1") {
		t.Skipf("localhost does not resolve to 127.0.0.1 here (%v, %v)", addrs, err)
	}
	a := startNode(t, "a", nodeOptions{})
	b := startNode(t, "b", nodeOptions{join: []string{fmt.Sprintf("dns+localhost:%d", a.kv.ListenPort())}, abortIfJoinFails: true})
	waitMembers(t, 2, a, b)
}
