package distributor

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// holdPushes makes every ingester of c wait in its pushes until the
// returned func is called.
func holdPushes(c *cluster) (release func()) {
	ch := make(chan struct{})
	for _, f := range c.ingesters {
		f.admit = func(ctx context.Context, _ int) error {
			select {
			case <-ch:
			case <-ctx.Done():
			}
			return nil
		}
	}
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func onePush(name string) *prompb.WriteRequest {
	return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series([]int64{nowMs()}, "__name__", name)}}
}

// A push over an in-flight limit gets Cortex's 503 while one is held up,
// and goes through once it is over.
func TestInstanceLimitsInflight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit func(*InstanceLimits)
		want  string
	}{
		{"push requests", func(l *InstanceLimits) { l.MaxInflightPushRequests = 1 }, "too many inflight push requests in distributor (-distributor.instance-limits.max-inflight-push-requests)"},
		// One push of replication factor 3 has three ingester calls.
		{"client requests", func(l *InstanceLimits) { l.MaxInflightClientRequests = 2 }, "too many inflight ingester client requests in distributor (-distributor.instance-limits.max-inflight-client-requests)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { tc.limit(&cfg.InstanceLimits) }})
			release := holdPushes(c)
			defer release()
			first := make(chan *http.Response, 1)
			go func() { first <- c.push(onePush("first")) }()
			testkit.Eventually(t, 5*time.Second, "the first push's ingester calls in flight", func() bool {
				return c.d.instance.inflightCalls.Load() == 3
			})

			r := c.push(onePush("second"))
			if got := body(t, r); r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(got, tc.want) {
				t.Fatalf("second push: %d %q, want 503 %q", r.StatusCode, got, tc.want)
			}
			release()
			if r := <-first; r.StatusCode != http.StatusNoContent {
				t.Fatalf("first push: %d %s", r.StatusCode, body(t, r))
			}
			if r := c.push(onePush("third")); r.StatusCode != http.StatusNoContent {
				t.Fatalf("a push once the first is over: %d %s", r.StatusCode, body(t, r))
			}
			if v := c.metric("cortex_distributor_inflight_push_requests"); v != 0 {
				t.Errorf("cortex_distributor_inflight_push_requests = %v after every push, want 0", v)
			}
		})
	}
}

// Over -distributor.instance-limits.max-ingestion-rate, averaged over
// one-second ticks, pushes get 503 until the rate decays under it.
func TestInstanceLimitsIngestionRate(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.InstanceLimits.MaxIngestionRate = 50 }})
	var mu sync.Mutex
	now := time.Now()
	c.d.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	if v := c.metric("cortex_distributor_instance_limits", "limit", "max_ingestion_rate"); v != 50 {
		t.Fatalf(`cortex_distributor_instance_limits{limit="max_ingestion_rate"} = %v, want 50`, v)
	}

	req := &prompb.WriteRequest{}
	for i := range 100 {
		req.Timeseries = append(req.Timeseries, series([]int64{now.UnixMilli()}, "__name__", "m", "i", string(rune('a'+i%26))+string(rune('a'+i/26))))
	}
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("first push: %d %s", r.StatusCode, body(t, r))
	}
	advance(time.Second) // 100 samples in the first second
	if v := c.metric("cortex_distributor_ingestion_rate_samples_per_second"); v != 100 {
		t.Fatalf("cortex_distributor_ingestion_rate_samples_per_second = %v, want 100", v)
	}
	r := c.push(onePush("second"))
	want := "distributor's samples push rate limit reached (-distributor.instance-limits.max-ingestion-rate)"
	if got := body(t, r); r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(got, want) {
		t.Fatalf("at 100 samples/s: %d %q, want 503 %q", r.StatusCode, got, want)
	}
	// 100 * 0.8^4 = 41 samples/s after four more quiet seconds.
	advance(4 * time.Second)
	if r := c.push(onePush("third")); r.StatusCode != http.StatusNoContent {
		t.Fatalf("once the rate decayed: %d %s", r.StatusCode, body(t, r))
	}
}

func TestInstanceLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		l    InstanceLimits
		want string
	}{
		{InstanceLimits{MaxIngestionRate: -1}, "-distributor.instance-limits.max-ingestion-rate must not be negative"},
		{InstanceLimits{MaxInflightPushRequests: -1}, "-distributor.instance-limits.max-inflight-push-requests must not be negative"},
		{InstanceLimits{MaxInflightClientRequests: -1}, "-distributor.instance-limits.max-inflight-client-requests must not be negative"},
	} {
		if err := tc.l.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.l, err, tc.want)
		}
	}
}
