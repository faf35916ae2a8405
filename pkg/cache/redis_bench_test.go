package cache_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// BenchmarkIndexCacheBackends reads the store-gateway's index cache
// workload from memcached and from redis side by side, both over TLS on
// loopback with their default client settings: 1,000 ExpandedPostings
// items of 2 KiB (a few hundred series' postings), read one key per
// request as a Select does, and ten keys per request as the chunks cache
// reads subranges, from 8 goroutines per CPU. A read that times out
// (memcached's default -timeout is 100ms) is a miss, reported per op.
func BenchmarkIndexCacheBackends(b *testing.B) {
	const items = 1000
	keys := make([]string, items)
	values := map[string][]byte{}
	for i := range keys {
		keys[i] = fmt.Sprintf("ExpandedPostings:01JCXYZ%04d:{__name__=\"http_requests_total\",job=~\"api-.*\",instance=\"host-%d\"}", i, i)
		v := make([]byte, 2048)
		for j := range v {
			v[j] = byte(i + j)
		}
		values[keys[i]] = v
	}
	loader := tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil)
	backends := []struct {
		name string
		open func(b *testing.B) cache.Cache
	}{
		{"memcached", func(b *testing.B) cache.Cache {
			mc := cachetest.StartMemcachedTLS(b)
			var cfg cache.MemcachedConfig
			registerDefaults(b, func(f *flag.FlagSet) { cfg.RegisterFlagsWithPrefix("bench.memcached", f) })
			cfg.Addresses, cfg.TLS.CAPath = mc.Addr, mc.CAPath
			tls, err := tlsconfig.NewClient("bench.memcached", cfg.TLS, loader)
			if err != nil {
				b.Fatal(err)
			}
			return cache.NewMemcached("bench", cfg, tls, nil, nil)
		}},
		{"redis", func(b *testing.B) cache.Cache {
			r := cachetest.StartRedisTLS(b, cachetest.RedisOptions{})
			var cfg cache.RedisConfig
			registerDefaults(b, func(f *flag.FlagSet) { cfg.RegisterFlagsWithPrefix("bench.redis", f) })
			cfg.Addresses, cfg.TLS.CAPath = r.Addr, r.CAPath
			cfg.TLS.CertPath, cfg.TLS.KeyPath = r.ClientCertPath, r.ClientKeyPath
			tls, err := tlsconfig.NewClient("bench.redis", cfg.TLS, loader)
			if err != nil {
				b.Fatal(err)
			}
			c, err := cache.NewRedis("bench", "bench.redis", cfg, tls, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Stop)
			return c
		}},
	}
	caches := make([]cache.Cache, len(backends))
	ctx := context.Background()
	for i, be := range backends {
		c := be.open(b)
		for start := 0; start < items; start += 100 {
			part := map[string][]byte{}
			for _, k := range keys[start : start+100] {
				part[k] = values[k]
			}
			c.Store(part, time.Hour)
		}
		testkit.Eventually(b, 30*time.Second, "the items written to "+be.name, func() bool {
			return len(c.Fetch(ctx, keys)) == items
		})
		caches[i] = c
	}
	for _, n := range []int{1, 10} {
		for i, be := range backends {
			c := caches[i]
			b.Run(fmt.Sprintf("keys=%d/backend=%s", n, be.name), func(b *testing.B) {
				var misses atomic.Int64
				defer func() { b.ReportMetric(float64(misses.Load())/float64(b.N), "misses/op") }()
				b.SetParallelism(8)
				b.SetBytes(int64(n) * 2048)
				b.RunParallel(func(pb *testing.PB) {
					rnd := rand.New(rand.NewPCG(rand.Uint64(), 0))
					for pb.Next() {
						start := rnd.IntN(items - n)
						misses.Add(int64(n - len(c.Fetch(ctx, keys[start:start+n]))))
					}
				})
			})
		}
	}
}

// registerDefaults parses no arguments into the flags register registers:
// their defaults.
func registerDefaults(b *testing.B, register func(*flag.FlagSet)) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	register(fs)
	if err := fs.Parse(nil); err != nil {
		b.Fatal(err)
	}
}
