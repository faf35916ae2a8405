package frontend

import (
	"errors"
	"flag"
	"log/slog"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/grafana/dskit/flagext"

	sharedcache "github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// MemcachedTLSPrefix is the flag prefix of the frontend's memcached link.
const MemcachedTLSPrefix = "frontend.memcached"

// MemcachedConfig configures memcached as the results cache instead of the
// embedded one: -frontend.memcached.*.
type MemcachedConfig struct {
	Addresses    flagext.StringSliceCSV `yaml:"addresses"`
	Timeout      time.Duration          `yaml:"timeout"`
	Expiration   time.Duration          `yaml:"expiration"`
	MaxIdleConns int                    `yaml:"max_idle_conns"`
	MaxItemSize  int                    `yaml:"max_item_size"`
	TLS          tlsconfig.ClientConfig `yaml:",inline"`
}

// RegisterFlags registers the -frontend.memcached.* flags.
func (c *MemcachedConfig) RegisterFlags(f *flag.FlagSet) {
	f.Var(&c.Addresses, MemcachedTLSPrefix+".addresses", "Comma-separated host:port of memcached servers holding the results cache (keys are spread over them by hash). Empty: the embedded in-memory cache.")
	f.DurationVar(&c.Timeout, MemcachedTLSPrefix+".timeout", 100*time.Millisecond, "Timeout of one memcached operation; a slow or failed one counts as a miss.")
	f.DurationVar(&c.Expiration, MemcachedTLSPrefix+".expiration", 0, "How long memcached keeps a result. 0: until evicted.")
	f.IntVar(&c.MaxIdleConns, MemcachedTLSPrefix+".max-idle-conns", 16, "Idle connections kept open to each memcached server.")
	f.IntVar(&c.MaxItemSize, MemcachedTLSPrefix+".max-item-size", 1<<20, "Results larger than this are not stored (memcached's own item limit is 1 MiB by default).")
	c.TLS.RegisterFlagsWithPrefix(MemcachedTLSPrefix, f)
}

// memcachedCache stores results in memcached through the shared gomemcache
// client of pkg/cache, over TLS when the -frontend.memcached.tls-* flags are
// set. Writes are synchronous: a result is readable once the query answered.
type memcachedCache struct {
	cfg     MemcachedConfig
	client  *memcache.Client
	metrics *metrics
	logger  *slog.Logger
}

func newMemcachedCache(cfg MemcachedConfig, tls *tlsconfig.Client, m *metrics, logger *slog.Logger) *memcachedCache {
	client := sharedcache.NewMemcachedClient(cfg.Addresses, cfg.Timeout, cfg.MaxIdleConns, tls)
	return &memcachedCache{cfg: cfg, client: client, metrics: m, logger: logger}
}

// memcachedKey fits any cache key into memcached's 250-byte, no-space keys.
func memcachedKey(key string) string { return sharedcache.HashKey("qfe:", key) }

func (c *memcachedCache) get(key string) ([]byte, bool) {
	c.metrics.cacheFetched.Inc()
	item, err := c.client.Get(memcachedKey(key))
	if err != nil {
		if !errors.Is(err, memcache.ErrCacheMiss) {
			c.logger.Debug("memcached get failed, counted as a miss", "err", err)
		}
		return nil, false
	}
	c.metrics.cacheHits.Inc()
	return item.Value, true
}

func (c *memcachedCache) set(key string, value []byte) {
	if len(value) > c.cfg.MaxItemSize {
		return
	}
	err := c.client.Set(&memcache.Item{
		Key:        memcachedKey(key),
		Value:      value,
		Expiration: int32(c.cfg.Expiration / time.Second),
	})
	if err != nil {
		c.logger.Debug("memcached set failed", "err", err)
	}
}
