package distributor

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/kv/consul"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/cortex-tls/cortex/pkg/ha"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

type haLimits struct{ max int }

func (l haLimits) MaxHAClusters(string) int { return l.max }

// newHACluster is a test cluster whose tenant accepts HA samples, with an
// HA tracker on an in-memory consul KV.
func newHACluster(t testing.TB, maxClusters int, limits ...func(*validation.Limits)) *cluster {
	t.Helper()
	c := newCluster(t, clusterOpts{discard: len(limits) > 0, limits: func(l *validation.Limits) {
		l.AcceptHASamples = true
		for _, f := range limits {
			f(l)
		}
	}})
	kvc, closer := consul.NewInMemoryClient(ha.Codec{}, kitlog.New(slog.New(slog.DiscardHandler)), nil)
	t.Cleanup(func() { _ = closer.Close() })
	tr, err := ha.New(ha.Config{EnableHATracker: true, UpdateTimeout: 15 * time.Second, FailoverTimeout: 30 * time.Second}, kvc, haLimits{maxClusters}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	startService(t, tr)
	c.d.SetHATracker(tr, c.reg)
	return c
}

func haRequest(replica string, n int) *prompb.WriteRequest {
	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{}
	for i := range n {
		req.Timeseries = append(req.Timeseries, series([]int64{now}, "__name__", "up", "__replica__", replica, "cluster", "prom", "instance", fmt.Sprintf("host-%d", i)))
	}
	return req
}

func TestHAElectedReplicaStoredWithoutReplicaLabel(t *testing.T) {
	c := newHACluster(t, 0)
	if r := c.push(haRequest("replica-0", 2)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("elected replica: %d %s, want 204", r.StatusCode, body(t, r))
	}
	c.waitStored(`__name__="up",cluster="prom",instance="host-0"`, 3)
	c.waitStored(`__name__="up",cluster="prom",instance="host-1"`, 3)

	// The other replica's request is answered 202 with no body and
	// nothing of it is stored.
	r := c.push(haRequest("replica-1", 3))
	if b := body(t, r); r.StatusCode != http.StatusAccepted || b != "" {
		t.Fatalf("other replica: %d %q, want 202 and no body", r.StatusCode, b)
	}
	if n, _ := c.stored(`__name__="up",cluster="prom",instance="host-2"`); n != 0 {
		t.Fatalf("other replica's series stored on %d ingesters", n)
	}
	for _, s := range c.storedSeries() {
		if strings.Contains(s, "__replica__") {
			t.Fatalf("stored series %s keeps the replica label", s)
		}
	}
	if got := c.metric("cortex_distributor_deduped_samples_total", "user", testTenant, "cluster", "prom"); got != 3 {
		t.Fatalf("deduped samples: %v, want 3", got)
	}

	// Remote write 2.0: 202 with written headers of 0.
	st := writev2.NewSymbolTable()
	var refs []uint32
	for _, s := range []string{"__name__", "up", "__replica__", "replica-1", "cluster", "prom"} {
		refs = append(refs, st.Symbolize(s))
	}
	r = c.pushV2(&writev2.Request{Symbols: st.Symbols(), Timeseries: []writev2.TimeSeries{{LabelsRefs: refs, Samples: []writev2.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}}})
	if b := body(t, r); r.StatusCode != http.StatusAccepted || b != "" || r.Header.Get(headerSamplesWritten) != "0" {
		t.Fatalf("other replica over 2.0: %d %q, samples written %q; want 202, no body, 0", r.StatusCode, b, r.Header.Get(headerSamplesWritten))
	}

	// Series without both labels are written as they come, and counted.
	if r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series([]int64{time.Now().UnixMilli()}, "__name__", "up", "cluster", "prom", "__replica__", "")}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("series without a replica: %d %s", r.StatusCode, body(t, r))
	}
	if got := c.metric("cortex_distributor_non_ha_samples_received_total", "user", testTenant); got != 1 {
		t.Fatalf("non-HA samples: %v, want 1", got)
	}
}

func TestHAMaxClusters(t *testing.T) {
	c := newHACluster(t, 1)
	if r := c.push(haRequest("replica-0", 1)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("first cluster: %d %s", r.StatusCode, body(t, r))
	}
	req := haRequest("replica-0", 1)
	req.Timeseries[0].Labels[2].Value = "other"
	r := c.push(req)
	want := `cluster "other" of tenant "` + testTenant + `": too many HA clusters (limit: 1, set by -distributor.ha-tracker.max-clusters or ha_max_clusters)`
	if b := body(t, r); r.StatusCode != http.StatusBadRequest || strings.TrimSpace(b) != want {
		t.Fatalf("cluster over the limit: %d %q, want 400 %q", r.StatusCode, b, want)
	}
	if got := c.metric("cortex_discarded_samples_total", "reason", "too_many_ha_clusters"); got != 1 {
		t.Fatalf("discarded samples: %v, want 1", got)
	}
}

func TestHAOffForTenant(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	kvc, closer := consul.NewInMemoryClient(ha.Codec{}, kitlog.New(slog.New(slog.DiscardHandler)), nil)
	t.Cleanup(func() { _ = closer.Close() })
	tr, err := ha.New(ha.Config{EnableHATracker: true, UpdateTimeout: 15 * time.Second, FailoverTimeout: 30 * time.Second}, kvc, haLimits{}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	startService(t, tr)
	c.d.SetHATracker(tr, c.reg)
	for _, replica := range []string{"replica-0", "replica-1"} {
		if r := c.push(haRequest(replica, 1)); r.StatusCode != http.StatusNoContent {
			t.Fatalf("%s without accept_ha_samples: %d %s", replica, r.StatusCode, body(t, r))
		}
		c.waitStored(`__name__="up",__replica__="`+replica+`",cluster="prom",instance="host-0"`, 3)
	}
}

// With -experimental.distributor.ha-tracker.mixed-ha-samples each series
// is checked against its own cluster's elected replica: one request may
// mix two clusters' replicas and series without HA labels.
func TestHAMixedSamples(t *testing.T) {
	c := newHACluster(t, 0, func(l *validation.Limits) { l.AcceptMixedHASamples = true })
	now := time.Now().UnixMilli()
	elect := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series([]int64{now}, "__name__", "up", "__replica__", "a-0", "cluster", "a"),
		series([]int64{now}, "__name__", "up", "__replica__", "b-1", "cluster", "b"),
	}}
	if r := c.push(elect); r.StatusCode != http.StatusNoContent {
		t.Fatalf("electing a-0 and b-1: %d %s", r.StatusCode, body(t, r))
	}
	mixed := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series([]int64{now + 1}, "__name__", "up", "__replica__", "a-1", "cluster", "a"), // not a's elected replica
		series([]int64{now + 1}, "__name__", "up", "__replica__", "b-1", "cluster", "b"),
		series([]int64{now + 1}, "__name__", "up", "job", "plain"),
	}}
	if r := c.push(mixed); r.StatusCode != http.StatusNoContent {
		t.Fatalf("mixed request: %d %s, want 204", r.StatusCode, body(t, r))
	}
	if got := c.metric("cortex_distributor_deduped_samples_total", "user", testTenant, "cluster", "a"); got != 1 {
		t.Errorf("deduped samples of cluster a = %v, want 1", got)
	}
	if got := c.metric("cortex_distributor_non_ha_samples_received_total", "user", testTenant); got != 1 {
		t.Errorf("non-HA samples = %v, want 1", got)
	}
	if got := c.metric("cortex_distributor_received_samples_total", "user", testTenant); got != 4 {
		t.Errorf("received samples = %v, want the 2 elected, then b-1's and the plain series'", got)
	}
}
