package cache

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/rueidis"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// RedisConfig is Cortex's redis client block of the blocks storage caches
// (-blocks-storage.bucket-store.*-cache.redis.*), with the TLS flags of
// this project's client links.
type RedisConfig struct {
	Addresses  string         `yaml:"addresses"`
	Username   string         `yaml:"username"`
	Password   flagext.Secret `yaml:"password"`
	DB         int            `yaml:"db"`
	MasterName string         `yaml:"master_name"`

	MaxGetMultiConcurrency int `yaml:"max_get_multi_concurrency"`
	GetMultiBatchSize      int `yaml:"get_multi_batch_size"`
	MaxSetMultiConcurrency int `yaml:"max_set_multi_concurrency"`
	SetMultiBatchSize      int `yaml:"set_multi_batch_size"`
	MaxAsyncConcurrency    int `yaml:"max_async_concurrency"`
	MaxAsyncBufferSize     int `yaml:"max_async_buffer_size"`

	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`

	TLS tlsconfig.ClientConfig `yaml:",inline"`

	CacheSize   int `yaml:"cache_size"`
	MaxItemSize int `yaml:"max_item_size"`

	SetAsyncCircuitBreaker CircuitBreakerConfig `yaml:"set_async_circuit_breaker_config"`
}

// RegisterFlagsWithPrefix registers -<prefix>.addresses and its siblings
// with Cortex's defaults; prefix has no trailing dot, as for the TLS flags.
func (c *RedisConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	p := prefix + "."
	f.StringVar(&c.Addresses, p+"addresses", "", "Comma separated list of redis addresses (host:port): one server, the seeds of a Redis Cluster, or with -"+p+"master-name the Sentinels.")
	f.StringVar(&c.Username, p+"username", "", "Redis username.")
	f.Var(&c.Password, p+"password", "Redis password.")
	f.IntVar(&c.DB, p+"db", 0, "Database to be selected after connecting to the server.")
	f.DurationVar(&c.DialTimeout, p+"dial-timeout", 5*time.Second, "Client dial timeout.")
	f.DurationVar(&c.ReadTimeout, p+"read-timeout", 3*time.Second, "Client read timeout.")
	f.DurationVar(&c.WriteTimeout, p+"write-timeout", 3*time.Second, "Client write timeout.")
	f.IntVar(&c.MaxGetMultiConcurrency, p+"max-get-multi-concurrency", 100, "The maximum number of concurrent GetMulti() operations. If set to 0, concurrency is unlimited.")
	f.IntVar(&c.GetMultiBatchSize, p+"get-multi-batch-size", 100, "The maximum size per batch for mget.")
	f.IntVar(&c.MaxSetMultiConcurrency, p+"max-set-multi-concurrency", 100, "The maximum number of concurrent SetMulti() operations. If set to 0, concurrency is unlimited.")
	f.IntVar(&c.SetMultiBatchSize, p+"set-multi-batch-size", 100, "The maximum size per batch for pipeline set.")
	f.IntVar(&c.MaxAsyncConcurrency, p+"max-async-concurrency", 3, "The maximum number of concurrent asynchronous operations can occur.")
	f.IntVar(&c.MaxAsyncBufferSize, p+"max-async-buffer-size", 10000, "The maximum number of enqueued asynchronous operations allowed.")
	f.StringVar(&c.MasterName, p+"master-name", "", "Specifies the master's name. Must be not empty for Redis Sentinel.")
	f.IntVar(&c.CacheSize, p+"cache-size", 0, "If not zero then client-side caching is enabled. Client-side caching is when data is stored in memory instead of fetching data each time: the size in bytes of the cache of each connection. See https://redis.io/docs/manual/client-side-caching/ for more info.")
	f.IntVar(&c.MaxItemSize, p+"max-item-size", 16<<20, "The maximum size of an item stored in redis. Bigger items are not stored. If set to 0, no maximum size is enforced.")
	c.TLS.RegisterFlagsWithPrefix(prefix, f)
	c.SetAsyncCircuitBreaker.RegisterFlagsWithPrefix(p+"set-async.", f)
}

// AddressList is Addresses split, without blanks.
func (c *RedisConfig) AddressList() []string { return SplitAddresses(c.Addresses) }

// Validate checks the block registered under prefix.
func (c *RedisConfig) Validate(prefix string) error {
	if err := ValidateRedisAddresses("-"+prefix+".addresses", c.AddressList()); err != nil {
		return err
	}
	p := "-" + prefix + "."
	switch {
	case c.DB < 0:
		return fmt.Errorf("%sdb must not be negative, got %d", p, c.DB)
	case c.DialTimeout <= 0:
		return fmt.Errorf("%sdial-timeout must be positive", p)
	case c.ReadTimeout <= 0:
		return fmt.Errorf("%sread-timeout must be positive", p)
	case c.WriteTimeout <= 0:
		return fmt.Errorf("%swrite-timeout must be positive", p)
	case c.MaxGetMultiConcurrency < 0:
		return fmt.Errorf("%smax-get-multi-concurrency must not be negative", p)
	case c.GetMultiBatchSize < 0:
		return fmt.Errorf("%sget-multi-batch-size must not be negative", p)
	case c.MaxSetMultiConcurrency < 0:
		return fmt.Errorf("%smax-set-multi-concurrency must not be negative", p)
	case c.SetMultiBatchSize < 0:
		return fmt.Errorf("%sset-multi-batch-size must not be negative", p)
	case c.MaxAsyncConcurrency <= 0:
		return fmt.Errorf("%smax-async-concurrency must be positive", p)
	case c.MaxAsyncBufferSize <= 0:
		return fmt.Errorf("%smax-async-buffer-size must be positive", p)
	case c.CacheSize < 0:
		return fmt.Errorf("%scache-size must not be negative", p)
	case c.MaxItemSize < 0:
		return fmt.Errorf("%smax-item-size must not be negative", p)
	case (c.TLS.CertPath != "") != (c.TLS.KeyPath != ""):
		return fmt.Errorf("%stls-cert-path and %stls-key-path: both client key and certificate must be provided", p, p)
	}
	return c.SetAsyncCircuitBreaker.Validate(p + "set-async.")
}

// ValidateRedisAddresses checks a list of host:port given by flagName.
func ValidateRedisAddresses(flagName string, addrs []string) error {
	return validateAddresses(flagName, "redis", addrs, true)
}

// Redis is a Cache in Redis, as Cortex's blocks storage caches use it
// (Thanos' redis client). Writes are asynchronous: at most
// -max-async-buffer-size items wait, run by -max-async-concurrency
// writers in pipelines of -set-multi-batch-size, at most
// -max-set-multi-concurrency pipelines at once; further items are dropped
// and counted. Reads are MGETs of -get-multi-batch-size keys, at most
// -max-get-multi-concurrency at once, each bounded by -read-timeout; a
// failed read is a miss.
type Redis struct {
	name   string
	cfg    RedisConfig
	client *RedisClient

	writes  chan redisWrite
	pending atomic.Int64  // items accepted and not yet written
	getGate chan struct{} // a slot per running MGET; nil: unlimited
	setGate chan struct{} // a slot per running pipeline; nil: unlimited
	breaker *circuitBreaker
	m       *redisMetrics

	stop    chan struct{}
	workers sync.WaitGroup
	once    sync.Once
}

type redisWrite struct {
	items map[string][]byte
	ttl   time.Duration
}

// redisMetrics are Thanos' redis client and redis cache metrics, by cache
// name. Thanos' client counts no operations, failures or skipped writes:
// those follow its memcached client's names.
type redisMetrics struct {
	clientMetrics
	requests, hits prometheus.Counter
}

const opSetMulti = "setmulti"

func newRedisMetrics(name string, reg prometheus.Registerer) *redisMetrics {
	f := promauto.With(prometheus.WrapRegistererWith(prometheus.Labels{"name": name}, reg))
	return &redisMetrics{
		clientMetrics: newClientMetrics(f, "redis", opSetMulti, opGetMulti),
		requests: f.NewCounter(prometheus.CounterOpts{
			Name: "thanos_cache_redis_requests_total",
			Help: "Total number of items requests to redis.",
		}),
		hits: f.NewCounter(prometheus.CounterOpts{
			Name: "thanos_cache_redis_hits_total",
			Help: "Total number of items requests to the cache that were a hit.",
		}),
	}
}

// NewRedis returns a Redis cache named name (a label of its metrics),
// connected through tls (nil: plaintext); prefix names cfg's flags in
// errors. Credentials, a database or certificates Redis refuses fail it;
// a Redis not reachable yet does not (see NewRedisClient).
func NewRedis(name, prefix string, cfg RedisConfig, tls *tlsconfig.Client, logger *slog.Logger, reg prometheus.Registerer) (*Redis, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("cache", name)
	client, err := NewRedisClient(RedisLink{
		Prefix:       prefix,
		Addresses:    cfg.AddressList(),
		Username:     cfg.Username,
		Password:     cfg.Password.String(),
		DB:           cfg.DB,
		MasterName:   cfg.MasterName,
		DialTimeout:  cfg.DialTimeout,
		WriteTimeout: cfg.WriteTimeout,
		CacheSize:    cfg.CacheSize,
		TLS:          tls,
	}, logger)
	if err != nil {
		return nil, err
	}
	c := &Redis{
		name:    name,
		cfg:     cfg,
		client:  client,
		writes:  make(chan redisWrite, cfg.MaxAsyncBufferSize),
		breaker: newCircuitBreaker(name, cfg.SetAsyncCircuitBreaker),
		m:       newRedisMetrics(name, reg),
		stop:    make(chan struct{}),
	}
	if cfg.MaxGetMultiConcurrency > 0 {
		c.getGate = make(chan struct{}, cfg.MaxGetMultiConcurrency)
	}
	if cfg.MaxSetMultiConcurrency > 0 {
		c.setGate = make(chan struct{}, cfg.MaxSetMultiConcurrency)
	}
	for range max(cfg.MaxAsyncConcurrency, 1) {
		c.workers.Go(c.writer)
	}
	return c, nil
}

// Name implements Cache.
func (c *Redis) Name() string { return c.name }

// redisKey is the key in Redis: the cache key itself, or when longer than
// memcached's 250 bytes its hash, so that long matcher sets do not make
// long Redis keys.
func redisKey(key string) string {
	if len(key) <= 250 {
		return key
	}
	return HashKey("sha256:", key)
}

// Store implements Cache.
func (c *Redis) Store(items map[string][]byte, ttl time.Duration) {
	accepted := make(map[string][]byte, len(items))
	for k, v := range items {
		if c.cfg.MaxItemSize > 0 && len(v) > c.cfg.MaxItemSize {
			c.m.skipped.WithLabelValues(opSetMulti, "max-item-size").Inc()
			continue
		}
		if c.pending.Add(1) > int64(c.cfg.MaxAsyncBufferSize) {
			c.pending.Add(-1)
			c.m.skipped.WithLabelValues(opSetMulti, "async-buffer-full").Inc()
			continue
		}
		accepted[redisKey(k)] = v
	}
	if len(accepted) == 0 {
		return
	}
	select {
	case c.writes <- redisWrite{items: accepted, ttl: ttl}:
	default:
		// Unreachable while each write holds at least one of the
		// -max-async-buffer-size pending items; kept as a bound.
		c.pending.Add(-int64(len(accepted)))
		c.m.skipped.WithLabelValues(opSetMulti, "async-buffer-full").Add(float64(len(accepted)))
	}
}

// writer writes the stored items until Stop.
func (c *Redis) writer() {
	for {
		select {
		case w := <-c.writes:
			c.write(w)
		case <-c.stop:
			return
		}
	}
}

// write writes w's items in pipelines of -set-multi-batch-size,
// concurrently up to -max-set-multi-concurrency over all writers.
func (c *Redis) write(w redisWrite) {
	defer c.pending.Add(-int64(len(w.items)))
	var wg sync.WaitGroup
	for _, batch := range splitItems(w.items, c.cfg.SetMultiBatchSize) {
		if c.setGate != nil {
			c.setGate <- struct{}{}
		}
		wg.Go(func() {
			if c.setGate != nil {
				defer func() { <-c.setGate }()
			}
			err := c.breaker.execute(func() error {
				return c.do(opSetMulti, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), c.cfg.WriteTimeout)
					defer cancel()
					return c.client.Set(ctx, batch, w.ttl)
				})
			})
			if isOpen(err) {
				c.m.skipped.WithLabelValues(opSetMulti, "circuit-breaker-open").Add(float64(len(batch)))
			}
		})
	}
	wg.Wait()
}

// splitItems cuts items into maps of at most size (0: one map).
func splitItems(items map[string][]byte, size int) []map[string][]byte {
	if size <= 0 || len(items) <= size {
		return []map[string][]byte{items}
	}
	var out []map[string][]byte
	cur := make(map[string][]byte, size)
	for k, v := range items {
		cur[k] = v
		if len(cur) == size {
			out = append(out, cur)
			cur = make(map[string][]byte, size)
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (c *Redis) do(op string, f func() error) error {
	start := time.Now()
	c.m.ops.WithLabelValues(op).Inc()
	err := f()
	c.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		c.m.failures.WithLabelValues(op, redisFailureReason(err)).Inc()
		c.client.LogFailure(op, err)
	}
	return err
}

func redisFailureReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errNotConnected):
		return "not-connected"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return "server-error"
	}
	return "other"
}

// Fetch implements Cache.
func (c *Redis) Fetch(ctx context.Context, keys []string) map[string][]byte {
	found := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return found
	}
	c.m.requests.Add(float64(len(keys)))
	byRedisKey := make(map[string]string, len(keys))
	rkeys := make([]string, 0, len(keys))
	for _, k := range keys {
		rk := redisKey(k)
		if _, dup := byRedisKey[rk]; !dup {
			byRedisKey[rk] = k
			rkeys = append(rkeys, rk)
		}
	}
	batch := len(rkeys)
	if c.cfg.GetMultiBatchSize > 0 {
		batch = c.cfg.GetMultiBatchSize
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for start := 0; start < len(rkeys); start += batch {
		part := rkeys[start:min(start+batch, len(rkeys))]
		wg.Go(func() {
			if c.getGate != nil {
				select {
				case c.getGate <- struct{}{}:
					defer func() { <-c.getGate }()
				case <-ctx.Done():
					return
				}
			}
			var got map[string][]byte
			// A failed batch is a miss of its keys; do counts and logs it.
			_ = c.do(opGetMulti, func() (err error) {
				rctx, cancel := context.WithTimeout(ctx, c.cfg.ReadTimeout)
				defer cancel()
				got, err = c.client.MGet(rctx, part)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			for rk, v := range got {
				found[byRedisKey[rk]] = v
			}
		})
	}
	wg.Wait()
	c.m.hits.Add(float64(len(found)))
	return found
}

// Stop ends the writers (the items still waiting are dropped) and the
// connection.
func (c *Redis) Stop() {
	c.once.Do(func() {
		close(c.stop)
		c.workers.Wait()
		c.client.Close()
	})
}
