package querier

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// staleRingQuerier serves a querier over three ingesters of which the
// last stale ones stopped heartbeating an hour ago.
func staleRingQuerier(t *testing.T, stale int) (*httptest.Server, []string) {
	t.Helper()
	var addrs []string
	for range 3 {
		addrs = append(addrs, serve(t, newFakeIngester()))
	}
	logger := kitlog.New(slog.New(slog.DiscardHandler))
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), logger, nil)
	t.Cleanup(func() { _ = closer.Close() })
	ctx := context.Background()
	err := kv.CAS(ctx, "ring", func(any) (any, bool, error) {
		desc := ring.NewDesc()
		for i, addr := range addrs {
			id := fmt.Sprintf("ingester-%d", i)
			inst := desc.AddIngester(id, addr, "", []uint32{uint32(i+1) * 1_000_000}, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
			if i >= len(addrs)-stale {
				inst.Timestamp = time.Now().Add(-time.Hour).Unix()
				desc.Ingesters[id] = inst
			}
		}
		return desc, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(ring.Config{HeartbeatTimeout: time.Minute, ReplicationFactor: 3}, "ingester", "ring", kv, ring.NewDefaultReplicationStrategy(), nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(ctx, r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, r) })

	var limits validation.Limits
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	limits.RegisterFlags(fs)
	var clientCfg client.Config
	clientCfg.RegisterFlags(fs)
	q, err := New(defaultConfig(), clientCfg, nil, validation.NewOverrides(limits, nil), r, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(ctx, q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, q) })
	srv := httptest.NewServer(tenant.HTTPMiddleware(true, q.Handler()))
	t.Cleanup(srv.Close)
	return srv, addrs[len(addrs)-stale:]
}

// Ingesters past the heartbeat timeout are a 503 naming them, on every
// read endpoint, not a 500 without a cause.
func TestAPIStaleHeartbeats(t *testing.T) {
	srv, stale := staleRingQuerier(t, 2)
	now := time.Now().Unix()
	for _, path := range []string{
		fmt.Sprintf("/prometheus/api/v1/query?query=sum(up)&time=%d", now),
		fmt.Sprintf("/prometheus/api/v1/query_range?query=up&start=%d&end=%d&step=15", now-600, now),
		"/prometheus/api/v1/labels",
		"/prometheus/api/v1/label/job/values",
		"/prometheus/api/v1/series?match[]=up",
	} {
		code, body := get(t, srv, path, "team-a")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, `"errorType":"unavailable"`) || !strings.Contains(body, "too many unhealthy ingesters") {
			t.Errorf("GET %s: %d %s, want 503 naming too many unhealthy ingesters", path, code, body)
			continue
		}
		for _, addr := range stale {
			if !strings.Contains(body, addr) {
				t.Errorf("GET %s: %s does not name the stale ingester %s", path, body, addr)
			}
		}
	}

	// One stale ingester of three leaves a quorum.
	srv, _ = staleRingQuerier(t, 1)
	if code, body := get(t, srv, "/prometheus/api/v1/labels", "team-a"); code != http.StatusOK {
		t.Fatalf("one stale ingester: %d %s", code, body)
	}
}
