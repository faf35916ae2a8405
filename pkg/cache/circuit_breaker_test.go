package cache_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// The set-async circuit breaker against a real memcached, whose items are
// limited to 1 MiB: writes of larger items fail with a server error; after
// -consecutive-failures of them the breaker opens and even a small write is
// skipped without reaching memcached; after -open-duration a write goes
// through again.
func TestMemcachedSetCircuitBreaker(t *testing.T) {
	mc := cachetest.StartMemcachedTLS(t)
	cfg := defaultConfig(t)
	cfg.Addresses = mc.Addr
	cfg.Timeout = 5 * time.Second
	cfg.MaxItemSize = 0 // memcached, not the client, refuses the large items
	cfg.TLS.CAPath = mc.CAPath
	cfg.SetAsyncCircuitBreaker = cache.CircuitBreakerConfig{
		Enabled: true, HalfOpenMaxRequests: 1, OpenDuration: time.Second,
		MinRequests: 3, ConsecutiveFailures: 3, FailurePercent: 1,
	}
	if err := cfg.Validate(prefix); err != nil {
		t.Fatal(err)
	}
	tlsClient, err := tlsconfig.NewClient(prefix, cfg.TLS, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	c := cache.NewMemcached("test-cache", cfg, tlsClient, nil, reg)
	ctx := context.Background()
	metric := func(name string, labels ...string) float64 { return testkit.MetricSum(t, reg, name, labels...) }

	for _, k := range []string{"big1", "big2", "big3"} {
		c.Store(map[string][]byte{k: make([]byte, 2<<20)}, time.Hour)
	}
	testkit.Eventually(t, 10*time.Second, "three failed writes", func() bool {
		return metric("thanos_memcached_operation_failures_total", "operation", "set") == 3
	})

	c.Store(map[string][]byte{"small": []byte("x")}, time.Hour)
	testkit.Eventually(t, 10*time.Second, "the write to be skipped by the open breaker", func() bool {
		return metric("thanos_memcached_operation_skipped_total", "operation", "set", "reason", "circuit-breaker-open") == 1
	})
	if got := c.Fetch(ctx, []string{"small"}); len(got) != 0 {
		t.Fatal("a write skipped by the open breaker reached memcached")
	}
	if n := metric("thanos_memcached_operations_total", "operation", "set"); n != 3 {
		t.Fatalf("%v writes reached memcached, want the 3 failed ones", n)
	}

	// Half-open after -open-duration: a write goes through and closes it.
	testkit.Eventually(t, 10*time.Second, "a write to go through once the breaker half-opens", func() bool {
		c.Store(map[string][]byte{"after": []byte("y")}, time.Hour)
		time.Sleep(50 * time.Millisecond)
		return string(c.Fetch(ctx, []string{"after"})["after"]) == "y"
	})
}

func TestCircuitBreakerConfigValidated(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Addresses = "a:1"
	if cfg.SetAsyncCircuitBreaker != (cache.CircuitBreakerConfig{HalfOpenMaxRequests: 10, OpenDuration: 5 * time.Second, MinRequests: 50, ConsecutiveFailures: 5, FailurePercent: 0.05}) {
		t.Fatalf("defaults: %+v", cfg.SetAsyncCircuitBreaker)
	}
	cfg.SetAsyncCircuitBreaker.Enabled = true
	cfg.SetAsyncCircuitBreaker.FailurePercent = 1.5
	if err := cfg.Validate(prefix); err == nil || !strings.Contains(err.Error(), "-test.memcached.set-async.circuit-breaker.failure-percent") {
		t.Fatalf("failure percent 1.5: %v", err)
	}
	cfg.SetAsyncCircuitBreaker.FailurePercent = 0.5
	cfg.SetAsyncCircuitBreaker.ConsecutiveFailures = 0
	if err := cfg.Validate(prefix); err == nil || !strings.Contains(err.Error(), "-test.memcached.set-async.circuit-breaker.consecutive-failures") {
		t.Fatalf("no consecutive failures: %v", err)
	}
}
