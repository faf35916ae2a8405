package ha

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type maxClusters int

func (m maxClusters) MaxHAClusters(string) int { return int(m) }

// clock is a settable time shared by the trackers of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testConfig() Config {
	return Config{EnableHATracker: true, UpdateTimeout: 15 * time.Second, FailoverTimeout: 30 * time.Second}
}

// newTrackers starts n trackers sharing one in-memory consul KV.
func newTrackers(t *testing.T, n int, limit int, c *clock) ([]*Tracker, []*prometheus.Registry) {
	t.Helper()
	kvc, closer := consul.NewInMemoryClient(Codec{}, log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	var ts []*Tracker
	var regs []*prometheus.Registry
	for range n {
		reg := prometheus.NewRegistry()
		tr, err := New(testConfig(), kvc, maxClusters(limit), nil, reg)
		if err != nil {
			t.Fatal(err)
		}
		tr.now = c.Now
		if err := services.StartAndAwaitRunning(context.Background(), tr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), tr) })
		ts = append(ts, tr)
		regs = append(regs, reg)
	}
	return ts, regs
}

func TestElectionAndFailover(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	trs, _ := newTrackers(t, 2, 0, c)
	a, b := trs[0], trs[1]

	if err := a.CheckReplica(ctx, "user-1", "prom", "replica-0"); err != nil {
		t.Fatalf("first replica seen: %v, want it elected", err)
	}
	// The other distributor reads the election from the store.
	err := b.CheckReplica(ctx, "user-1", "prom", "replica-1")
	var nm ReplicasNotMatchError
	if !errors.As(err, &nm) || nm.Elected != "replica-0" || nm.Replica != "replica-1" {
		t.Fatalf("other replica on the other distributor: %v, want replicas not matching with replica-0 elected", err)
	}
	if got := err.Error(); got != "replicas did not match, rejecting sample: replica=replica-1, elected=replica-0" {
		t.Fatalf("error text %q", got)
	}
	if err := b.CheckReplica(ctx, "user-1", "prom", "replica-0"); err != nil {
		t.Fatalf("elected replica on the other distributor: %v", err)
	}

	// replica-0 keeps sending: replica-1 stays refused past the failover
	// timeout, since each update renews the election.
	for range 4 {
		c.Add(16 * time.Second)
		if err := a.CheckReplica(ctx, "user-1", "prom", "replica-0"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.CheckReplica(ctx, "user-1", "prom", "replica-1"); !IsReplicasNotMatch(err) {
		t.Fatalf("replica-1 while replica-0 sends: %v", err)
	}

	// replica-0 falls silent: before the failover timeout replica-1 is
	// still refused, after it replica-1 is elected.
	c.Add(29 * time.Second)
	if err := b.CheckReplica(ctx, "user-1", "prom", "replica-1"); !IsReplicasNotMatch(err) {
		t.Fatalf("replica-1 29s after replica-0's last sample: %v", err)
	}
	c.Add(2 * time.Second)
	if err := b.CheckReplica(ctx, "user-1", "prom", "replica-1"); err != nil {
		t.Fatalf("replica-1 31s after replica-0's last sample: %v, want it elected", err)
	}
	if err := a.CheckReplica(ctx, "user-1", "prom", "replica-0"); !IsReplicasNotMatch(err) {
		t.Fatalf("replica-0 after the failover: %v, want it refused", err)
	}
	if got := testutil.ToFloat64(b.electedChanges.WithLabelValues("user-1", "prom")); got != 1 {
		t.Fatalf("elected replica changes on b: %v, want 1", got)
	}
	if got := testutil.ToFloat64(b.electedTimestamp.WithLabelValues("user-1", "prom")); got != float64(c.Now().Unix()) {
		t.Fatalf("elected replica timestamp: %v, want %v", got, c.Now().Unix())
	}
}

// TestStaleWatchEventKeepsNewerElection: a watch event of an election
// older than the one a distributor holds (its own write, observed at once,
// overtaking the store's events of the writes before it) neither brings
// the old replica back nor counts as a change.
func TestStaleWatchEventKeepsNewerElection(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	trs, _ := newTrackers(t, 1, 0, c)
	tr := trs[0]
	k := key("user-1", "prom")
	tr.observe(k, &ReplicaDesc{Replica: "replica-0", ReceivedAt: c.Now().UnixMilli()})
	tr.observe(k, &ReplicaDesc{Replica: "replica-1", ReceivedAt: c.Now().Add(31 * time.Second).UnixMilli()})
	tr.observe(k, &ReplicaDesc{Replica: "replica-0", ReceivedAt: c.Now().Add(16 * time.Second).UnixMilli()})
	tr.mu.Lock()
	got := tr.elected["user-1"]["prom"].Replica
	tr.mu.Unlock()
	if got != "replica-1" {
		t.Fatalf("elected after a stale event: %q, want replica-1", got)
	}
	if n := testutil.ToFloat64(tr.electedChanges.WithLabelValues("user-1", "prom")); n != 1 {
		t.Fatalf("elected replica changes: %v, want 1", n)
	}
}

func TestMaxClusters(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	trs, regs := newTrackers(t, 1, 2, c)
	tr := trs[0]
	for _, cl := range []string{"a", "b"} {
		if err := tr.CheckReplica(ctx, "user-1", cl, "r0"); err != nil {
			t.Fatalf("cluster %s: %v", cl, err)
		}
	}
	err := tr.CheckReplica(ctx, "user-1", "c", "r0")
	if !IsTooManyClusters(err) || err.Error() != "too many HA clusters (limit: 2, set by -distributor.ha-tracker.max-clusters or ha_max_clusters)" {
		t.Fatalf("third cluster: %v", err)
	}
	// Known clusters and other tenants are not affected.
	if err := tr.CheckReplica(ctx, "user-1", "a", "r0"); err != nil {
		t.Fatal(err)
	}
	if err := tr.CheckReplica(ctx, "user-2", "c", "r0"); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(regs[0], strings.NewReader(`
# HELP cortex_ha_tracker_user_clusters Number of HA clusters tracked for each user.
# TYPE cortex_ha_tracker_user_clusters gauge
cortex_ha_tracker_user_clusters{user="user-1"} 2
cortex_ha_tracker_user_clusters{user="user-2"} 1
`), "cortex_ha_tracker_user_clusters"); err != nil {
		t.Fatal(err)
	}
}

func TestCleanup(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	trs, _ := newTrackers(t, 1, 0, c)
	tr := trs[0]
	if err := tr.CheckReplica(ctx, "user-1", "old", "r0"); err != nil {
		t.Fatal(err)
	}
	c.Add(20 * time.Minute)
	if err := tr.CheckReplica(ctx, "user-1", "fresh", "r0"); err != nil {
		t.Fatal(err)
	}
	c.Add(11 * time.Minute)
	tr.cleanup(ctx)
	if got := testutil.ToFloat64(tr.cleanupMarked); got != 1 {
		t.Fatalf("marked for deletion: %v, want 1 (the cluster silent for 31 minutes)", got)
	}
	v, err := tr.client.Get(ctx, "user-1/old")
	if err != nil || v.(*ReplicaDesc).DeletedAt != c.Now().UnixMilli() {
		t.Fatalf("old election after cleanup: %+v, %v", v, err)
	}
	// A marked election elects anew at once.
	if err := tr.CheckReplica(ctx, "user-1", "old", "r1"); err != nil {
		t.Fatalf("replica of a cluster marked deleted: %v", err)
	}
	c.Add(31 * time.Minute)
	tr.cleanup(ctx) // marks both
	c.Add(31 * time.Minute)
	tr.cleanup(ctx) // deletes both
	if got := testutil.ToFloat64(tr.cleanupDeleted); got != 2 {
		t.Fatalf("deleted: %v, want 2", got)
	}
	keys, err := tr.client.List(ctx, "")
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys left: %v, %v", keys, err)
	}
	if got := tr.Elections(); len(got) != 0 {
		t.Fatalf("elections left: %+v", got)
	}
}

func TestMergeKeepsLatest(t *testing.T) {
	a := &ReplicaDesc{Replica: "r0", ReceivedAt: 1000}
	b := &ReplicaDesc{Replica: "r1", ReceivedAt: 2000}
	change, err := a.Merge(b.Clone(), false)
	if err != nil || change == nil || *a != *b {
		t.Fatalf("older.Merge(newer): %+v, change %v, %v", a, change, err)
	}
	change, err = b.Merge(&ReplicaDesc{Replica: "r0", ReceivedAt: 1000}, false)
	if err != nil || change != nil || b.Replica != "r1" {
		t.Fatalf("newer.Merge(older): %+v, change %v, %v", b, change, err)
	}
	// Same time: the merge is commutative.
	x, y := &ReplicaDesc{Replica: "r0", ReceivedAt: 5}, &ReplicaDesc{Replica: "r1", ReceivedAt: 5}
	x2, y2 := *x, *y
	_, _ = x.Merge(&y2, false)
	_, _ = y.Merge(&x2, false)
	if *x != *y {
		t.Fatalf("merges disagree: %+v vs %+v", x, y)
	}
	enc, err := Codec{}.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Codec{}.Decode(enc)
	if err != nil || *dec.(*ReplicaDesc) != *b {
		t.Fatalf("codec round trip: %+v, %v", dec, err)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := testConfig()
	cfg.FailoverTimeout = 15 * time.Second
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "-distributor.ha-tracker.failover-timeout (15s) must be at least") {
		t.Fatalf("failover below update timeout: %v", err)
	}
}

func TestStatusPage(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	trs, _ := newTrackers(t, 1, 0, c)
	if err := trs[0].CheckReplica(context.Background(), "user-<1>", "prom", "replica-0"); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	trs[0].ServeHTTP(rec, httptest.NewRequest("GET", "/distributor/ha_tracker", nil))
	body, _ := io.ReadAll(rec.Body)
	want := "<tr><td>user-&lt;1&gt;</td><td>prom</td><td>replica-0</td><td>2023-11-14T22:13:20Z</td><td>15s</td><td>30s</td></tr>"
	if !strings.Contains(string(body), want) {
		t.Fatalf("page lacks %s:\n%s", want, body)
	}
}
