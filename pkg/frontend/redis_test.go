package frontend

import (
	"context"
	"crypto/tls"
	"flag"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"

	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// redisConfig is -frontend.redis.* for r, over mutual TLS.
func redisConfig(t *testing.T, r *cachetest.Redis) RedisConfig {
	t.Helper()
	var cfg RedisConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg.Endpoint = r.Addr
	cfg.Timeout = 2 * time.Second
	cfg.TLS.CAPath = r.CAPath
	cfg.TLS.CertPath, cfg.TLS.KeyPath = r.ClientCertPath, r.ClientKeyPath
	return cfg
}

func redisTLS(t *testing.T, cfg RedisConfig) *tlsconfig.Client {
	t.Helper()
	c, err := tlsconfig.NewClient(RedisTLSPrefix, cfg.TLS, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requests counts cortex_rediscache_request_duration_seconds' observations.
func requests(t *testing.T, g prometheus.Gatherer, method, status string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != "cortex_rediscache_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["method"] == method && labels["status_code"] == status {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// TestRedisResultsCacheTLS: with -frontend.redis.endpoint and its TLS
// flags, parts are cached in a real Redis over mutual TLS and served from
// it; with Redis gone, a miss, not an error.
func TestRedisResultsCacheTLS(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{Password: "results"})
	cfg := defaultConfig()
	cfg.CacheResults = true
	api := newPromAPI(t)
	h := newHarness(t, cfg, api, 2)
	h.f.cfg.Redis = redisConfig(t, r)
	if err := h.f.cfg.Redis.Password.Set("results"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	rc, err := newRedisCache(h.f.cfg.Redis, time.Hour, redisTLS(t, h.f.cfg.Redis), slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	h.f.redis = rc
	h.f.cache = h.f.newCache(nil, nil)

	params := rangeParams(`rate(metric_a[5m])`, 3600, 32*3600, 300)
	code, first := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
	if code != 200 {
		t.Fatalf("first query: %d %s", code, first)
	}
	// Written in the background (-frontend.background.write-back-concurrency).
	testkit.Eventually(t, 5*time.Second, "both parts stored in redis", func() bool {
		return requests(t, reg, "RedisCache.MSet", "200") == 2
	})
	calls := api.calls.Load()
	code, second := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
	if code != 200 || second != first || api.calls.Load() != calls {
		t.Fatalf("second query not served from redis: %d, %d more querier calls", code, api.calls.Load()-calls)
	}
	if hits := testutil.ToFloat64(h.f.metrics.cacheHits); hits != 2 {
		t.Fatalf("cortex_cache_hits = %v, want 2", hits)
	}
	r.Stop()
	if code, third := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params); code != 200 || third != first {
		t.Fatalf("with redis down: %d", code)
	}
	if requests(t, reg, "RedisCache.MGet", "500") == 0 {
		t.Fatal("no failed request counted with redis down")
	}
}

// TestRedisResultsCacheRefused: the frontend does not start with a wrong
// password, nor with both memcached and redis; it starts with a redis not
// reachable yet, whose reads miss.
func TestRedisResultsCacheRefused(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{Password: "right"})
	cfg := defaultConfig()
	cfg.CacheResults = true
	cfg.Redis = redisConfig(t, r)
	if err := cfg.Redis.Password.Set("wrong"); err != nil {
		t.Fatal(err)
	}
	_, err := New(cfg, nil, nil, nil, WithRedisTLS(redisTLS(t, cfg.Redis)))
	if err == nil || !strings.Contains(err.Error(), "-frontend.redis.password") || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v", err)
	}

	cfg.Memcached.Addresses = []string{"localhost:11211"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-frontend.redis.endpoint") {
		t.Fatalf("memcached and redis: %v", err)
	}
	cfg.Memcached.Addresses = nil
	cfg.Redis.Endpoint = "redis"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-frontend.redis.endpoint") {
		t.Fatalf("no port: %v", err)
	}

	lis := testkit.Listen(t)
	cfg.Redis.Endpoint = lis.Addr().String()
	_ = lis.Close()
	f, err := New(cfg, nil, nil, nil, WithRedisTLS(redisTLS(t, cfg.Redis)))
	if err != nil {
		t.Fatalf("unreachable redis: %v", err)
	}
	start := time.Now()
	if got := f.redis.fetch(context.Background(), []string{"k"}); len(got) != 0 {
		t.Fatalf("hits from nowhere: %v", got)
	}
	if time.Since(start) > cfg.Redis.Timeout {
		t.Fatalf("a read from an unreachable redis took %s", time.Since(start))
	}
	f.redis.stop()
}

// inspector is a client of its own for reading r's INFO.
func inspector(t *testing.T, r *cachetest.Redis, password string) func(field string) int {
	t.Helper()
	cfg := redisConfig(t, r)
	tc := redisTLS(t, cfg)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, Password: password, ForceSingleClient: true, DisableCache: true,
		DialCtxFn: func(ctx context.Context, addr string, _ *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return tc.DialContext(ctx, "tcp", addr, nil)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return func(field string) int {
		info, err := c.Do(context.Background(), c.B().Info().Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatalf("INFO has no %s", field)
		return 0
	}
}

// TestRedisResultsCachePool: requests take connections of their own from
// a pool of -frontend.redis.pool-size; -max-connection-age replaces old
// connections without failing a request, and -idle-timeout closes idle
// ones.
func TestRedisResultsCachePool(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{})
	info := inspector(t, r, "")
	cfg := redisConfig(t, r)
	cfg.PoolSize = 2
	cfg.MaxConnAge = 100 * time.Millisecond
	reg := prometheus.NewPedanticRegistry()
	rc, err := newRedisCache(cfg, time.Hour, redisTLS(t, cfg), slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.stop)
	rc.store("k", []byte("v"))
	ctx := context.Background()
	conns := info("total_connections_received")
	testkit.Eventually(t, 10*time.Second, "connections past -max-connection-age replaced", func() bool {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if got := rc.fetch(ctx, []string{"k"}); string(got["k"]) != "v" {
					t.Errorf("fetch: %q", got)
				}
			})
		}
		wg.Wait()
		return info("total_connections_received") >= conns+4
	})
	if n := requests(t, reg, "RedisCache.MGet", "500"); n != 0 {
		t.Fatalf("%d requests failed while connections were replaced", n)
	}

	// Idle connections, on a Redis of their own.
	r2 := cachetest.StartRedisTLS(t, cachetest.RedisOptions{})
	info2 := inspector(t, r2, "")
	cfg = redisConfig(t, r2)
	cfg.PoolSize = 2
	cfg.IdleTimeout = 100 * time.Millisecond
	idle, err := newRedisCache(cfg, time.Hour, redisTLS(t, cfg), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idle.stop)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { idle.fetch(ctx, []string{"k"}) })
	}
	wg.Wait()
	peak := info2("connected_clients")
	testkit.Eventually(t, 10*time.Second, "idle pooled connections closed", func() bool {
		// The inspector's own connection stays.
		return info2("connected_clients") == 1
	})
	if peak <= 1 {
		t.Fatalf("no pooled connection seen open: %d clients", peak)
	}
}
