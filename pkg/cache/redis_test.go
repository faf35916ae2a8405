package cache_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
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

const redisPrefix = "test.redis"

func defaultRedisConfig(t *testing.T) cache.RedisConfig {
	var cfg cache.RedisConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlagsWithPrefix(redisPrefix, fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRedisConfigDefaultsAndValidation(t *testing.T) {
	cfg := defaultRedisConfig(t)
	if cfg.DialTimeout != 5*time.Second || cfg.ReadTimeout != 3*time.Second || cfg.WriteTimeout != 3*time.Second ||
		cfg.MaxGetMultiConcurrency != 100 || cfg.GetMultiBatchSize != 100 || cfg.MaxSetMultiConcurrency != 100 ||
		cfg.SetMultiBatchSize != 100 || cfg.MaxAsyncConcurrency != 3 || cfg.MaxAsyncBufferSize != 10000 ||
		cfg.CacheSize != 0 || cfg.DB != 0 || cfg.MaxItemSize != 16<<20 || cfg.SetAsyncCircuitBreaker.Enabled {
		t.Fatalf("defaults: %+v", cfg)
	}
	for _, tc := range []struct {
		edit func(*cache.RedisConfig)
		flag string
	}{
		{func(*cache.RedisConfig) {}, "-test.redis.addresses"},
		{func(c *cache.RedisConfig) { c.Addresses = "dns+redis:6379" }, "-test.redis.addresses"},
		{func(c *cache.RedisConfig) { c.Addresses = "redis" }, "-test.redis.addresses"},
		{func(c *cache.RedisConfig) { c.Addresses = "a:1,:2" }, "-test.redis.addresses"},
		{func(c *cache.RedisConfig) { c.Addresses = "a:1"; c.DB = -1 }, "-test.redis.db"},
		{func(c *cache.RedisConfig) { c.Addresses = "a:1"; c.ReadTimeout = 0 }, "-test.redis.read-timeout"},
		{func(c *cache.RedisConfig) { c.Addresses = "a:1"; c.MaxAsyncBufferSize = 0 }, "-test.redis.max-async-buffer-size"},
		{func(c *cache.RedisConfig) { c.Addresses = "a:1"; c.GetMultiBatchSize = -1 }, "-test.redis.get-multi-batch-size"},
		{func(c *cache.RedisConfig) { c.Addresses = "a:1"; c.TLS.CertPath = "c.crt" }, "-test.redis.tls-cert-path"},
		{func(c *cache.RedisConfig) {
			c.Addresses = "a:1"
			c.SetAsyncCircuitBreaker.Enabled = true
			c.SetAsyncCircuitBreaker.FailurePercent = 2
		}, "-test.redis.set-async.circuit-breaker.failure-percent"},
	} {
		c := cfg
		tc.edit(&c)
		if err := c.Validate(redisPrefix); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("want an error naming %s, got %v", tc.flag, err)
		}
	}
	cfg.Addresses = "a:1, b:2"
	if err := cfg.Validate(redisPrefix); err != nil {
		t.Fatal(err)
	}
}

// redisTLSConfig is cfg for r, with its CA and client certificate.
func redisTLSConfig(t *testing.T, r *cachetest.Redis) cache.RedisConfig {
	cfg := defaultRedisConfig(t)
	cfg.Addresses = r.Addr
	cfg.TLS.CAPath = r.CAPath
	cfg.TLS.CertPath, cfg.TLS.KeyPath = r.ClientCertPath, r.ClientKeyPath
	return cfg
}

func newRedis(t *testing.T, cfg cache.RedisConfig, reg prometheus.Registerer) (*cache.Redis, error) {
	t.Helper()
	tlsClient, err := tlsconfig.NewClient(redisPrefix, cfg.TLS, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		return nil, err
	}
	c, err := cache.NewRedis("test-cache", redisPrefix, cfg, tlsClient, nil, reg)
	if err == nil {
		t.Cleanup(c.Stop)
	}
	return c, err
}

// TestRedisTLS runs against a real Redis serving mutual TLS: values written
// asynchronously become readable, batched reads find them, values over
// -max-item-size are skipped, items expire, and a Redis that is down is a
// miss, counted as a failure.
func TestRedisTLS(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{})
	cfg := redisTLSConfig(t, r)
	cfg.GetMultiBatchSize = 2
	cfg.SetMultiBatchSize = 2
	cfg.MaxSetMultiConcurrency = 1
	cfg.MaxItemSize = 100
	reg := prometheus.NewPedanticRegistry()
	c, err := newRedis(t, cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got := c.Fetch(ctx, []string{"absent"}); len(got) != 0 {
		t.Fatalf("hit on an absent key: %v", got)
	}
	long := strings.Repeat("k", 300)
	items := map[string][]byte{"a key with spaces": []byte("1"), "b": []byte("2"), "c": {0, 1, 2, 255}, long: []byte("4"), "too big": make([]byte, 101)}
	c.Store(items, time.Hour)
	keys := []string{"a key with spaces", "b", "c", long, "too big", "absent"}
	testkit.Eventually(t, 10*time.Second, "the values to be written", func() bool {
		return len(c.Fetch(ctx, keys)) == 4
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
			t.Errorf("%.20q: got %q, want %q", k, got[k], v)
		}
	}
	if n := testutil.ToFloat64(counter(t, reg, "thanos_redis_operation_skipped_total")); n != 1 {
		t.Errorf("skipped operations: %v, want 1", n)
	}
	// 4 items in batches of 2: two pipelines.
	if n := testutil.ToFloat64(counter(t, reg, "thanos_redis_operations_total")); n < 2 {
		t.Errorf("operations: %v", n)
	}

	c.Store(map[string][]byte{"short-lived": []byte("x")}, 300*time.Millisecond)
	testkit.Eventually(t, 5*time.Second, "the short-lived item to be written", func() bool {
		return len(c.Fetch(ctx, []string{"short-lived"})) == 1
	})
	testkit.Eventually(t, 5*time.Second, "the short-lived item to expire", func() bool {
		return len(c.Fetch(ctx, []string{"short-lived"})) == 0
	})

	r.Stop()
	start := time.Now()
	if got := c.Fetch(ctx, keys); len(got) != 0 {
		t.Fatalf("redis down: %d hits", len(got))
	}
	if time.Since(start) > cfg.ReadTimeout+time.Second {
		t.Errorf("a fetch from a dead redis took %s, over -read-timeout", time.Since(start))
	}
	if n := testutil.ToFloat64(counter(t, reg, "thanos_redis_operation_failures_total")); n == 0 {
		t.Error("no failure counted with redis down")
	}
}

// TestRedisClientSideCache reads through rueidis' client-side cache
// (-cache-size): a value read twice is served, and a new value written by
// another client invalidates it.
func TestRedisClientSideCache(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{})
	cfg := redisTLSConfig(t, r)
	writer, err := newRedis(t, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CacheSize = 1 << 20
	reader, err := newRedis(t, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	writer.Store(map[string][]byte{"k": []byte("v1")}, time.Hour)
	testkit.Eventually(t, 10*time.Second, "v1 to be read", func() bool { return string(reader.Fetch(ctx, []string{"k"})["k"]) == "v1" })
	if got := string(reader.Fetch(ctx, []string{"k"})["k"]); got != "v1" {
		t.Fatalf("cached read: %q", got)
	}
	writer.Store(map[string][]byte{"k": []byte("v2")}, time.Hour)
	testkit.Eventually(t, 10*time.Second, "the cached v1 to be invalidated", func() bool { return string(reader.Fetch(ctx, []string{"k"})["k"]) == "v2" })
}

// TestRedisTLSRefused checks the clients Redis or the client itself
// refuse, each failing at start with an error naming the flags to fix.
func TestRedisTLSRefused(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{})
	other := testkit.NewPKI(t, "another-ca")
	strange := other.Client(t, "stranger")
	for _, tc := range []struct {
		name string
		edit func(*cache.RedisConfig)
		want []string
	}{
		{"no CA: the server's certificate is not trusted", func(c *cache.RedisConfig) { c.TLS.CAPath = "" }, []string{"-test.redis", "not signed by a CA"}},
		{"no client certificate", func(c *cache.RedisConfig) { c.TLS.CertPath, c.TLS.KeyPath = "", "" }, []string{"-test.redis", "requires a client certificate"}},
		{"a client certificate of another CA", func(c *cache.RedisConfig) { c.TLS.CertPath, c.TLS.KeyPath = strange.Files() }, []string{"-test.redis", "tls"}},
		{"plaintext", func(c *cache.RedisConfig) { c.TLS = tlsconfig.ClientConfig{} }, []string{"-test.redis"}},
		{"a database out of range", func(c *cache.RedisConfig) { c.DB = 99 }, []string{"-test.redis.db=99", "DB index is out of range"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := redisTLSConfig(t, r)
			cfg.DialTimeout = 2 * time.Second
			tc.edit(&cfg)
			c, err := newRedis(t, cfg, nil)
			if tc.name == "plaintext" {
				// Redis closes a plaintext connection on its TLS port
				// without a word: a network failure, so a miss.
				if err != nil {
					t.Fatalf("plaintext: %v", err)
				}
				if got := c.Fetch(context.Background(), []string{"k"}); len(got) != 0 {
					t.Fatalf("plaintext: %v", got)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("refused: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// A file that cannot be read fails naming its flag.
	cfg := redisTLSConfig(t, r)
	cfg.TLS.CAPath = "/nonexistent/ca.crt"
	if _, err := newRedis(t, cfg, nil); err == nil || !strings.Contains(err.Error(), "test.redis.tls-ca-path") {
		t.Errorf("unreadable CA: %v", err)
	}
}

// TestRedisACL authenticates with an ACL user; a wrong password fails at
// start, naming the flags.
func TestRedisACL(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{Username: "cortex", Password: "s3cret"})
	cfg := redisTLSConfig(t, r)
	cfg.Username = "cortex"
	if err := cfg.Password.Set("s3cret"); err != nil {
		t.Fatal(err)
	}
	c, err := newRedis(t, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Store(map[string][]byte{"k": []byte("v")}, time.Hour)
	testkit.Eventually(t, 10*time.Second, "the value to be written", func() bool { return string(c.Fetch(ctx, []string{"k"})["k"]) == "v" })

	if err := cfg.Password.Set("wrong"); err != nil {
		t.Fatal(err)
	}
	_, err = newRedis(t, cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "-test.redis.username and -test.redis.password") || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v", err)
	}
	t.Logf("refused: %v", err)
	cfg.Username = ""
	_, err = newRedis(t, cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "-test.redis.password: ") {
		t.Fatalf("default user (off): %v", err)
	}
}

// TestRedisUnreachable starts against an address nothing listens on: the
// cache starts, and misses at once, counting the failures.
func TestRedisUnreachable(t *testing.T) {
	lis := testkit.Listen(t)
	addr := lis.Addr().String()
	_ = lis.Close()
	cfg := defaultRedisConfig(t)
	cfg.Addresses = addr
	reg := prometheus.NewPedanticRegistry()
	c, err := newRedis(t, cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	c.Store(map[string][]byte{"k": []byte("v")}, time.Hour)
	for i := range 3 {
		if got := c.Fetch(context.Background(), []string{fmt.Sprint("k", i)}); len(got) != 0 {
			t.Fatalf("hits from nowhere: %v", got)
		}
	}
	if n := testutil.ToFloat64(counter(t, reg, "thanos_redis_operation_failures_total")); n < 3 {
		t.Errorf("failures counted: %v, want at least 3", n)
	}
}

// TestRedisSentinel finds the master through a Sentinel
// (-master-name), both over mutual TLS.
func TestRedisSentinel(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{})
	s := cachetest.StartRedisSentinelTLS(t, r)
	cfg := redisTLSConfig(t, r)
	cfg.Addresses = s.Addr
	cfg.MasterName = "mymaster"
	c, err := newRedis(t, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Store(map[string][]byte{"k": []byte("through the sentinel")}, time.Hour)
	testkit.Eventually(t, 10*time.Second, "the value written to the master", func() bool {
		return string(c.Fetch(ctx, []string{"k"})["k"]) == "through the sentinel"
	})
	// The master itself holds it.
	direct, err := newRedis(t, redisTLSConfig(t, r), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(direct.Fetch(ctx, []string{"k"})["k"]); got != "through the sentinel" {
		t.Fatalf("the master holds %q", got)
	}
}

// TestRedisSlowServerBounded pauses Redis (CLIENT PAUSE): a read waits no
// longer than -read-timeout and misses, and writes beyond
// -max-async-buffer-size are dropped and counted rather than queued.
func TestRedisSlowServerBounded(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{})
	cfg := redisTLSConfig(t, r)
	cfg.ReadTimeout = 200 * time.Millisecond
	cfg.WriteTimeout = 5 * time.Second
	cfg.MaxAsyncConcurrency = 1
	cfg.MaxAsyncBufferSize = 2
	reg := prometheus.NewPedanticRegistry()
	c, err := newRedis(t, cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Store(map[string][]byte{"k": []byte("v")}, time.Hour)
	testkit.Eventually(t, 10*time.Second, "the value written", func() bool { return len(c.Fetch(ctx, []string{"k"})) == 1 })

	if got := r.Command(t, "CLIENT PAUSE 1500 ALL"); got != "OK" {
		t.Fatalf("CLIENT PAUSE: %q", got)
	}
	start := time.Now()
	if got := c.Fetch(ctx, []string{"k"}); len(got) != 0 {
		t.Fatalf("a paused redis answered: %v", got)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a read of a paused redis took %s, -read-timeout is %s", took, cfg.ReadTimeout)
	}
	for i := range 10 {
		c.Store(map[string][]byte{fmt.Sprint("w", i): []byte("v")}, time.Hour)
	}
	skipped := testkit.MetricSum(t, reg, "thanos_redis_operation_skipped_total", "reason", "async-buffer-full")
	if skipped != 8 {
		t.Fatalf("writes dropped with 2 waiting at most: %v, want 8", skipped)
	}
	if got := testkit.MetricSum(t, reg, "thanos_redis_operation_failures_total", "operation", "getmulti", "reason", "timeout"); got != 1 {
		t.Errorf("read timeouts counted: %v, want 1", got)
	}
}

// TestRedisCertificateReload: the CA bundle is read again when its file
// changes, and applies to the next connection: with a bundle that does not
// hold redis' CA the cache misses, with the right one it hits again, with
// no restart. (The CA bundle shows it best: the server's certificate is
// checked on every connection, a resumed TLS session included.)
func TestRedisCertificateReload(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{})
	caPath := t.TempDir() + "/ca.crt"
	copyCA := func(from string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		testkit.WriteFile(t, caPath, b, 0o600)
	}
	copyCA(r.CAPath)
	cfg := redisTLSConfig(t, r)
	cfg.TLS.CAPath = caPath
	loader := tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil)
	tlsClient, err := tlsconfig.NewClient(redisPrefix, cfg.TLS, loader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.NewRedis("test-cache", redisPrefix, cfg, tlsClient, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	ctx := context.Background()
	c.Store(map[string][]byte{"k": []byte("v")}, time.Hour)
	testkit.Eventually(t, 10*time.Second, "the value written", func() bool { return len(c.Fetch(ctx, []string{"k"})) == 1 })

	copyCA(testkit.NewPKI(t, "foreign").CAPath)
	loader.Reload()
	r.Command(t, "CLIENT KILL TYPE normal")
	testkit.Eventually(t, 10*time.Second, "misses with a CA bundle that does not hold redis' CA", func() bool {
		// Twice in a row: one read may miss on a connection the kill broke.
		for range 2 {
			if len(c.Fetch(ctx, []string{"k"})) != 0 {
				return false
			}
		}
		return true
	})
	copyCA(r.CAPath)
	loader.Reload()
	testkit.Eventually(t, 10*time.Second, "hits again with redis' CA", func() bool {
		return len(c.Fetch(ctx, []string{"k"})) == 1
	})
}

// TestRedisCluster runs against a Redis Cluster over mutual TLS: keys of
// many slots are written in pipelines and read in MGETs split by slot.
func TestRedisCluster(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{Cluster: true})
	cfg := redisTLSConfig(t, r)
	c, err := newRedis(t, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	items := map[string][]byte{}
	keys := make([]string, 0, 50)
	for i := range 50 {
		k := fmt.Sprint("key-", i)
		items[k] = []byte(fmt.Sprint("value-", i))
		keys = append(keys, k)
	}
	c.Store(items, time.Hour)
	testkit.Eventually(t, 10*time.Second, "50 keys of many slots read back", func() bool {
		got := c.Fetch(ctx, keys)
		for k, v := range items {
			if string(got[k]) != string(v) {
				return false
			}
		}
		return true
	})
}
