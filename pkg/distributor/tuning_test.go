package distributor

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// setIngesterState changes an instance's state in the ingester ring and
// waits until the distributor's ring client sees it.
func (c *cluster) setIngesterState(t *testing.T, id string, state ring.InstanceState) {
	t.Helper()
	err := c.kv.CAS(context.Background(), "ring", func(in any) (any, bool, error) {
		desc := in.(*ring.Desc)
		inst := desc.Ingesters[id]
		inst.State = state
		desc.Ingesters[id] = inst
		return desc, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := c.d.ring.(*ring.Ring)
	testkit.Eventually(t, 5*time.Second, id+" "+state.String()+" in the ring client", func() bool {
		s, err := r.GetInstanceState(id)
		return err == nil && s == state
	})
}

// With -distributor.extend-writes a series whose replicas include an
// ingester that is not ACTIVE goes to the next ACTIVE ingester instead, so
// it keeps the replication factor's replicas; without, it gets one fewer.
func TestExtendWrites(t *testing.T) {
	for _, extend := range []bool{true, false} {
		t.Run(fmt.Sprint("extend=", extend), func(t *testing.T) {
			c := newCluster(t, clusterOpts{ingesters: 4, cfg: func(cfg *Config) { cfg.ExtendWrites = extend }})
			c.setIngesterState(t, "ingester-0", ring.LEAVING)
			now := nowMs()
			var req prompb.WriteRequest
			for i := range 20 {
				req.Timeseries = append(req.Timeseries, series([]int64{now}, "__name__", "up", "i", fmt.Sprint(i)))
			}
			if r := c.push(&req); r.StatusCode != http.StatusNoContent {
				t.Fatalf("%d %q", r.StatusCode, body(t, r))
			}
			if n := c.ingesters[0].seriesCount(testTenant); n != 0 {
				t.Errorf("the LEAVING ingester got %d series", n)
			}
			short := 0
			for i := range 20 {
				s := fmt.Sprintf(`__name__="up",i="%d"`, i)
				if extend {
					c.waitStored(s, 3)
					continue
				}
				// Without extension a series of the LEAVING ingester is
				// written to its two ACTIVE replicas, both needed for the
				// quorum: the push answered once they had stored it.
				if n, _ := c.stored(s); n == 2 {
					short++
				}
			}
			if !extend && short == 0 {
				t.Error("no series with 2 replicas: every series missed the LEAVING ingester")
			}
		})
	}
}

// -distributor.num-push-workers runs the ingester calls on that many
// goroutines; a call finding them busy runs on its own, counted.
func TestNumPushWorkers(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.NumPushWorkers = 1 }})
	for _, f := range c.ingesters {
		f.delay.Store(int64(100 * time.Millisecond))
	}
	if r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series([]int64{nowMs()}, "__name__", "up")}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("%d %q", r.StatusCode, body(t, r))
	}
	c.waitStored(`__name__="up"`, 3)
	// Three calls at once and one worker: at least two ran on their own.
	if got := c.metric("cortex_worker_pool_fallback_total", "name", "distributor"); got < 2 {
		t.Errorf("cortex_worker_pool_fallback_total = %v, want at least 2", got)
	}
}

// The distributor's pool closes the connection of an ingester gone from
// the ring within -distributor.client-cleanup-period.
func TestClientCleanupPeriod(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.ClientCleanupPeriod = 50 * time.Millisecond }})
	if r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series([]int64{nowMs()}, "__name__", "up")}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("%d %q", r.StatusCode, body(t, r))
	}
	c.waitStored(`__name__="up"`, 3)
	if got := c.metric("cortex_ingester_clients", "client", "distributor"); got != 3 {
		t.Fatalf("cortex_ingester_clients = %v, want 3", got)
	}
	err := c.kv.CAS(context.Background(), "ring", func(in any) (any, bool, error) {
		desc := in.(*ring.Desc)
		delete(desc.Ingesters, "ingester-2")
		return desc, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "the connection to the removed ingester closed", func() bool {
		return c.metric("cortex_ingester_clients", "client", "distributor") == 2
	})
}

// With -distributor.sign-write-requests each ingester's share of a push
// carries the signature of its series (as validation left them) and
// metadata, which the ingester verifies.
func TestSignWriteRequests(t *testing.T) {
	for _, sign := range []bool{true, false} {
		t.Run(fmt.Sprint("sign=", sign), func(t *testing.T) {
			c := newCluster(t, clusterOpts{
				ingesters: 4,
				cfg:       func(cfg *Config) { cfg.SignWriteRequests = sign },
				limits:    func(l *validation.Limits) { l.DropLabels = []string{"pod"} },
			})
			for _, f := range c.ingesters {
				f.verify = true
			}
			now := nowMs()
			req := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "Up."}}}
			for i := range 10 {
				s := series([]int64{now}, "__name__", "up", "i", fmt.Sprint(i), "pod", "p")
				s.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprint(i)}}, Value: 1, Timestamp: now}}
				req.Timeseries = append(req.Timeseries, s)
			}
			r := c.push(req)
			b := body(t, r)
			if sign && r.StatusCode != http.StatusNoContent {
				t.Fatalf("signed push: %d %q", r.StatusCode, b)
			}
			if !sign && (r.StatusCode < 400 || !strings.Contains(b, "has 0 signatures, want 1")) {
				t.Fatalf("unsigned push to verifying ingesters: %d %q, want refused", r.StatusCode, b)
			}
			if sign {
				c.waitStored(`__name__="up",i="3"`, 3)
			}
		})
	}
}

// BenchmarkPushHandlerSigned is BenchmarkPushHandler with and without
// -distributor.sign-write-requests: the distributor's cost of signing each
// ingester's share of 1,000 series (the ingesters here do not verify).
func BenchmarkPushHandlerSigned(b *testing.B) {
	for _, sign := range []bool{false, true} {
		b.Run(fmt.Sprint("sign=", sign), func(b *testing.B) {
			c := newCluster(b, clusterOpts{discard: true, limits: func(l *validation.Limits) { l.IngestionRate = 0 }, cfg: func(cfg *Config) { cfg.SignWriteRequests = sign }})
			body := encodeV1(b, benchRequest())
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if r := c.pushRaw(body, nil); r.StatusCode != http.StatusNoContent {
					b.Fatalf("push: %d", r.StatusCode)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
