package cache_test

import (
	"context"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const prefix = "test.memcached"

func defaultConfig(t *testing.T) cache.MemcachedConfig {
	var cfg cache.MemcachedConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlagsWithPrefix(prefix, fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestMemcachedConfigDefaultsAndValidation(t *testing.T) {
	cfg := defaultConfig(t)
	if cfg.Timeout != 100*time.Millisecond || cfg.MaxIdleConnections != 16 || cfg.MaxAsyncConcurrency != 3 ||
		cfg.MaxAsyncBufferSize != 10000 || cfg.MaxGetMultiConcurrency != 100 || cfg.MaxGetMultiBatchSize != 0 || cfg.MaxItemSize != 1<<20 {
		t.Fatalf("defaults: %+v", cfg)
	}
	for _, tc := range []struct {
		edit func(*cache.MemcachedConfig)
		flag string
	}{
		{func(*cache.MemcachedConfig) {}, "-test.memcached.addresses"},
		{func(c *cache.MemcachedConfig) { c.Addresses = "dns+memcached:11211" }, "-test.memcached.addresses"},
		{func(c *cache.MemcachedConfig) { c.Addresses = "no-port" }, "-test.memcached.addresses"},
		{func(c *cache.MemcachedConfig) { c.Addresses = "a:1"; c.Timeout = 0 }, "-test.memcached.timeout"},
		{func(c *cache.MemcachedConfig) { c.Addresses = "a:1"; c.MaxAsyncConcurrency = 0 }, "-test.memcached.max-async-concurrency"},
		{func(c *cache.MemcachedConfig) { c.Addresses = "a:1"; c.MaxItemSize = -1 }, "-test.memcached.max-item-size"},
	} {
		c := cfg
		tc.edit(&c)
		if err := c.Validate(prefix); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("want an error naming %s, got %v", tc.flag, err)
		}
	}
	cfg.Addresses = "a:1, b:2"
	if err := cfg.Validate(prefix); err != nil {
		t.Fatal(err)
	}
}

// TestMemcachedTLS runs against a real memcached serving TLS: values
// written asynchronously become readable, batched reads find them, values
// over -max-item-size are skipped, and a memcached that is down is a miss.
func TestMemcachedTLS(t *testing.T) {
	mc := cachetest.StartMemcachedTLS(t)
	cfg := defaultConfig(t)
	cfg.Addresses = mc.Addr
	cfg.Timeout = time.Second
	cfg.MaxGetMultiBatchSize = 2
	cfg.MaxItemSize = 100
	cfg.TLS.CAPath = mc.CAPath
	tlsClient, err := tlsconfig.NewClient(prefix, cfg.TLS, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	c := cache.NewMemcached("test-cache", cfg, tlsClient, nil, reg)
	ctx := context.Background()
	if got := c.Fetch(ctx, []string{"absent"}); len(got) != 0 {
		t.Fatalf("hit on an absent key: %v", got)
	}
	items := map[string][]byte{"a key with spaces": []byte("1"), "b": []byte("2"), "c": []byte("3"), "too big": make([]byte, 101)}
	c.Store(items, time.Hour)
	keys := []string{"a key with spaces", "b", "c", "too big", "absent"}
	testkit.Eventually(t, 10*time.Second, "the values to be written", func() bool {
		return len(c.Fetch(ctx, keys)) == 3
	})
	got := c.Fetch(ctx, keys)
	for k, v := range items {
		if k == "too big" {
			if _, ok := got[k]; ok {
				t.Error("a value over -max-item-size was stored")
			}
			continue
		}
		if string(got[k]) != string(v) {
			t.Errorf("%q: got %q, want %q", k, got[k], v)
		}
	}
	if n := testutil.ToFloat64(counter(t, reg, "thanos_memcached_operation_skipped_total")); n != 1 {
		t.Errorf("skipped operations: %v, want 1", n)
	}
	mc.Stop()
	if got := c.Fetch(ctx, keys); len(got) != 0 {
		t.Fatalf("memcached down: %d hits", len(got))
	}
	if n := testutil.ToFloat64(counter(t, reg, "thanos_memcached_operation_failures_total")); n == 0 {
		t.Error("no failure counted with memcached down")
	}
}

// counter sums a counter over its series.
func counter(t *testing.T, g prometheus.Gatherer, name string) prometheus.Counter {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				c.Add(m.GetCounter().GetValue())
			}
		}
	}
	return c
}
