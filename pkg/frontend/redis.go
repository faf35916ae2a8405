package frontend

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"

	sharedcache "github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// RedisTLSPrefix is the flag prefix of the frontend's redis link.
const RedisTLSPrefix = "frontend.redis"

// RedisConfig configures Redis as the results cache instead of the
// embedded one: Cortex's -frontend.redis.* (its redis block), with the TLS
// flags of every client link, of which Cortex has tls-enabled and
// tls-insecure-skip-verify.
type RedisConfig struct {
	Endpoint   string         `yaml:"endpoint"`
	MasterName string         `yaml:"master_name"`
	Timeout    time.Duration  `yaml:"timeout"`
	Expiration time.Duration  `yaml:"expiration"`
	DB         int            `yaml:"db"`
	PoolSize   int            `yaml:"pool_size"`
	Password   flagext.Secret `yaml:"password"`
	// IdleTimeout closes pooled connections idle that long, MaxConnAge
	// those older (0: never), as go-redis does for Cortex.
	IdleTimeout time.Duration          `yaml:"idle_timeout"`
	MaxConnAge  time.Duration          `yaml:"max_connection_age"`
	MaxItemSize int                    `yaml:"max_item_size"`
	TLS         tlsconfig.ClientConfig `yaml:",inline"`
}

// RegisterFlags registers the -frontend.redis.* flags.
func (c *RedisConfig) RegisterFlags(f *flag.FlagSet) {
	p := RedisTLSPrefix + "."
	f.StringVar(&c.Endpoint, p+"endpoint", "", "Redis Server endpoint to use for caching. A comma-separated list of endpoints for Redis Cluster or Redis Sentinel. If empty, no redis will be used.")
	f.StringVar(&c.MasterName, p+"master-name", "", "Redis Sentinel master name. An empty string for Redis Server or Redis Cluster.")
	f.DurationVar(&c.Timeout, p+"timeout", 500*time.Millisecond, "Maximum time to wait before giving up on redis requests: a slow or failed read counts as a miss.")
	f.DurationVar(&c.Expiration, p+"expiration", 0, "How long keys stay in the redis. 0: -frontend.default-validity, and with that 0 too, until evicted.")
	f.IntVar(&c.DB, p+"db", 0, "Database index.")
	f.IntVar(&c.PoolSize, p+"pool-size", 0, "Maximum number of connections in the pool: each request takes a connection of its own. 0: 10 per CPU.")
	f.Var(&c.Password, p+"password", "Password to use when connecting to redis.")
	f.DurationVar(&c.IdleTimeout, p+"idle-timeout", 0, "Close connections after remaining idle for this duration. If the value is zero, then idle connections are not closed.")
	f.DurationVar(&c.MaxConnAge, p+"max-connection-age", 0, "Close connections older than this duration. If the value is zero, then the pool does not close connections based on age.")
	f.IntVar(&c.MaxItemSize, p+"max-item-size", 16<<20, "Results larger than this are not stored in redis. 0: no limit.")
	c.TLS.RegisterFlagsWithPrefix(RedisTLSPrefix, f)
}

// enabled reports whether redis holds the results cache.
func (c *RedisConfig) enabled() bool { return c.Endpoint != "" }

// addresses is Endpoint split, without blanks.
func (c *RedisConfig) addresses() []string { return sharedcache.SplitAddresses(c.Endpoint) }

// Validate checks the flags.
func (c *RedisConfig) Validate() error {
	if !c.enabled() {
		return nil
	}
	p := "-" + RedisTLSPrefix + "."
	if err := sharedcache.ValidateRedisAddresses(p+"endpoint", c.addresses()); err != nil {
		return err
	}
	switch {
	case c.Timeout <= 0:
		return fmt.Errorf("%stimeout must be positive, got %s", p, c.Timeout)
	case c.Expiration < 0:
		return fmt.Errorf("%sexpiration must not be negative, got %s", p, c.Expiration)
	case c.DB < 0:
		return fmt.Errorf("%sdb must not be negative, got %d", p, c.DB)
	case c.PoolSize < 0:
		return fmt.Errorf("%spool-size must not be negative, got %d", p, c.PoolSize)
	case c.IdleTimeout < 0:
		return fmt.Errorf("%sidle-timeout must not be negative, got %s", p, c.IdleTimeout)
	case c.MaxConnAge < 0:
		return fmt.Errorf("%smax-connection-age must not be negative, got %s", p, c.MaxConnAge)
	case c.MaxItemSize < 0:
		return fmt.Errorf("%smax-item-size must not be negative, got %d", p, c.MaxItemSize)
	case (c.TLS.CertPath != "") != (c.TLS.KeyPath != ""):
		return fmt.Errorf("%stls-cert-path and %stls-key-path: both client key and certificate must be provided", p, p)
	}
	return nil
}

// redisCache stores results in Redis, each read and write bounded by
// -frontend.redis.timeout; a failed read is a miss.
type redisCache struct {
	client      *sharedcache.RedisClient
	expiration  time.Duration
	timeout     time.Duration
	maxItemSize int
	// duration is Cortex's cortex_rediscache_request_duration_seconds.
	duration *prometheus.HistogramVec
}

// newRedisCache connects to cfg's Redis; credentials, a database or
// certificates Redis refuses fail it (see sharedcache.NewRedisClient).
func newRedisCache(cfg RedisConfig, expiration time.Duration, tls *tlsconfig.Client, logger *slog.Logger, reg prometheus.Registerer) (*redisCache, error) {
	poolSize := cfg.PoolSize
	if poolSize == 0 {
		poolSize = sharedcache.DefaultRedisPoolSize()
	}
	client, err := sharedcache.NewRedisClient(sharedcache.RedisLink{
		Prefix:       RedisTLSPrefix,
		Addresses:    cfg.addresses(),
		Password:     cfg.Password.String(),
		DB:           cfg.DB,
		MasterName:   cfg.MasterName,
		DialTimeout:  cfg.Timeout,
		WriteTimeout: cfg.Timeout,
		PoolSize:     poolSize,
		IdleTimeout:  cfg.IdleTimeout,
		MaxConnAge:   cfg.MaxConnAge,
		TLS:          tls,
	}, logger.With("cache", "frontend.redis"))
	if err != nil {
		return nil, err
	}
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace:   "cortex",
		Name:        "rediscache_request_duration_seconds",
		Help:        "Total time spent in seconds doing Redis requests.",
		Buckets:     prometheus.ExponentialBuckets(0.000016, 4, 8),
		ConstLabels: prometheus.Labels{"name": "frontend.redis"},
	}, []string{"method", "status_code"})
	if reg != nil {
		reg.MustRegister(duration)
	}
	return &redisCache{client: client, expiration: expiration, timeout: cfg.Timeout, maxItemSize: cfg.MaxItemSize, duration: duration}, nil
}

// redisKey fits any cache key into a short Redis key.
func redisKey(key string) string { return sharedcache.HashKey("qfe:", key) }

func (c *redisCache) observe(method string, start time.Time, err error) {
	status := "200"
	if err != nil {
		status = "500"
	}
	c.duration.WithLabelValues(method, status).Observe(time.Since(start).Seconds())
}

func (c *redisCache) fetch(ctx context.Context, keys []string) map[string][]byte {
	byRedisKey := make(map[string]string, len(keys))
	rkeys := make([]string, 0, len(keys))
	for _, k := range keys {
		rk := redisKey(k)
		if _, dup := byRedisKey[rk]; !dup {
			byRedisKey[rk] = k
			rkeys = append(rkeys, rk)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	got, err := c.client.MGet(ctx, rkeys)
	c.observe("RedisCache.MGet", start, err)
	if err != nil {
		c.client.LogFailure("mget", err)
		return nil
	}
	found := make(map[string][]byte, len(got))
	for rk, v := range got {
		found[byRedisKey[rk]] = v
	}
	return found
}

func (c *redisCache) store(key string, value []byte) {
	if c.maxItemSize > 0 && len(value) > c.maxItemSize {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	err := c.client.Set(ctx, map[string][]byte{redisKey(key): value}, c.expiration)
	c.observe("RedisCache.MSet", start, err)
	if err != nil {
		c.client.LogFailure("set", err)
	}
}

func (c *redisCache) stop() { c.client.Close() }

// WithRedisTLS gives the TLS of the -frontend.redis link (nil: plaintext),
// used when -frontend.redis.endpoint is set.
func WithRedisTLS(tls *tlsconfig.Client) Option { return func(f *Frontend) { f.redisTLS = tls } }
