package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// MemcachedConfig is Cortex's memcached client block (the
// -blocks-storage.bucket-store.*-cache.memcached.* flags), with the TLS
// flags of this project's client links.
type MemcachedConfig struct {
	Addresses              string                 `yaml:"addresses"`
	Timeout                time.Duration          `yaml:"timeout"`
	MaxIdleConnections     int                    `yaml:"max_idle_connections"`
	MaxAsyncConcurrency    int                    `yaml:"max_async_concurrency"`
	MaxAsyncBufferSize     int                    `yaml:"max_async_buffer_size"`
	MaxGetMultiConcurrency int                    `yaml:"max_get_multi_concurrency"`
	MaxGetMultiBatchSize   int                    `yaml:"max_get_multi_batch_size"`
	MaxItemSize            int                    `yaml:"max_item_size"`
	AutoDiscovery          bool                   `yaml:"auto_discovery"`
	SetAsyncCircuitBreaker CircuitBreakerConfig   `yaml:"set_async_circuit_breaker_config"`
	TLS                    tlsconfig.ClientConfig `yaml:",inline"`
}

// RegisterFlagsWithPrefix registers -<prefix>.addresses and its siblings;
// prefix has no trailing dot, as for the TLS flags.
func (c *MemcachedConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.Addresses, prefix+".addresses", "", "Comma-separated list of memcached addresses (host:port). Keys are spread over them by hash.")
	f.DurationVar(&c.Timeout, prefix+".timeout", 100*time.Millisecond, "The socket read/write timeout.")
	f.IntVar(&c.MaxIdleConnections, prefix+".max-idle-connections", 16, "The maximum number of idle connections that will be maintained per address.")
	f.IntVar(&c.MaxAsyncConcurrency, prefix+".max-async-concurrency", 3, "The maximum number of concurrent asynchronous operations can occur.")
	f.IntVar(&c.MaxAsyncBufferSize, prefix+".max-async-buffer-size", 10000, "The maximum number of enqueued asynchronous operations allowed.")
	f.IntVar(&c.MaxGetMultiConcurrency, prefix+".max-get-multi-concurrency", 100, "The maximum number of concurrent connections running get operations. If set to 0, concurrency is unlimited.")
	f.IntVar(&c.MaxGetMultiBatchSize, prefix+".max-get-multi-batch-size", 0, "The maximum number of keys a single underlying get operation should run. If more keys are specified, internally keys are split into multiple batches and fetched concurrently, honoring the max concurrency. If set to 0, the max batch size is unlimited.")
	f.IntVar(&c.MaxItemSize, prefix+".max-item-size", 1024*1024, "The maximum size of an item stored in memcached. Bigger items are not stored. If set to 0, no maximum size is enforced.")
	f.BoolVar(&c.AutoDiscovery, prefix+".auto-discovery", false, "Use memcached auto-discovery mechanism provided by some cloud provider like GCP and AWS. The addresses are then the cluster's configuration endpoints, asked for its nodes (config get cluster) every 10s.")
	c.SetAsyncCircuitBreaker.RegisterFlagsWithPrefix(prefix+".set-async.", f)
	c.TLS.RegisterFlagsWithPrefix(prefix, f)
}

// AddressList is Addresses split, without blanks.
func (c *MemcachedConfig) AddressList() []string { return SplitAddresses(c.Addresses) }

// SplitAddresses splits a comma-separated address flag, without blanks.
func SplitAddresses(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// validateAddresses checks the host:port list flagName gives for a cache
// of server (memcached, redis); with needHost, an empty host or port is
// refused too.
func validateAddresses(flagName, server string, addrs []string, needHost bool) error {
	if len(addrs) == 0 {
		return fmt.Errorf("%s must name at least one %s server", flagName, server)
	}
	for _, a := range addrs {
		// Cortex's dns+ and dnssrv+ service discovery is not implemented:
		// better refused than dialled as a host name.
		if strings.Contains(a, "+") {
			return fmt.Errorf("%s: %q: service discovery prefixes (dns+, dnssrv+) are not supported; give host:port", flagName, a)
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("%s: %q: %w", flagName, a, err)
		}
		if needHost && (host == "" || port == "") {
			return fmt.Errorf("%s: %q: want host:port", flagName, a)
		}
	}
	return nil
}

// Validate checks the block registered under prefix.
func (c *MemcachedConfig) Validate(prefix string) error {
	if err := validateAddresses("-"+prefix+".addresses", "memcached", c.AddressList(), false); err != nil {
		return err
	}
	switch {
	case c.Timeout <= 0:
		return fmt.Errorf("-%s.timeout must be positive", prefix)
	case c.MaxIdleConnections < 0:
		return fmt.Errorf("-%s.max-idle-connections must not be negative", prefix)
	case c.MaxAsyncConcurrency <= 0:
		return fmt.Errorf("-%s.max-async-concurrency must be positive", prefix)
	case c.MaxAsyncBufferSize <= 0:
		return fmt.Errorf("-%s.max-async-buffer-size must be positive", prefix)
	case c.MaxGetMultiConcurrency < 0:
		return fmt.Errorf("-%s.max-get-multi-concurrency must not be negative", prefix)
	case c.MaxGetMultiBatchSize < 0:
		return fmt.Errorf("-%s.max-get-multi-batch-size must not be negative", prefix)
	case c.MaxItemSize < 0:
		return fmt.Errorf("-%s.max-item-size must not be negative", prefix)
	}
	return c.SetAsyncCircuitBreaker.Validate(prefix + ".set-async.")
}

// Memcached is a Cache in memcached. Writes are asynchronous, as in Cortex:
// a query does not wait for them, and when -max-async-buffer-size writes
// are pending further ones are dropped.
type Memcached struct {
	name    string
	cfg     MemcachedConfig
	client  *memcache.Client
	logger  *slog.Logger
	asyncCh chan struct{} // a slot per running write
	pending atomic.Int64  // writes started or waiting for a slot
	getCh   chan struct{} // a slot per running get; nil: unlimited
	m       *memcachedMetrics
	// setBreaker guards the asynchronous writes; nil: none.
	setBreaker *circuitBreaker
}

// clientMetrics are Thanos' metrics of a cache client, by cache name:
// thanos_<backend>_operations_total and its failures, skipped operations
// and durations.
type clientMetrics struct {
	ops, failures, skipped *prometheus.CounterVec
	duration               *prometheus.HistogramVec
}

// memcachedMetrics are Thanos' memcached client metrics.
type memcachedMetrics = clientMetrics

const (
	opSet      = "set"
	opGetMulti = "getmulti"
)

// newClientMetrics registers backend's client metrics with f, each
// operation's series created at zero.
func newClientMetrics(f promauto.Factory, backend string, operations ...string) clientMetrics {
	m := clientMetrics{
		ops: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_" + backend + "_operations_total",
			Help: "Total number of operations against " + backend + ".",
		}, []string{"operation"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_" + backend + "_operation_failures_total",
			Help: "Total number of operations against " + backend + " that failed.",
		}, []string{"operation", "reason"}),
		skipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_" + backend + "_operation_skipped_total",
			Help: "Total number of operations against " + backend + " that have been skipped.",
		}, []string{"operation", "reason"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "thanos_" + backend + "_operation_duration_seconds",
			Help:    "Duration of operations against " + backend + ".",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 3, 6, 10},
		}, []string{"operation"}),
	}
	for _, op := range operations {
		m.ops.WithLabelValues(op)
		m.duration.WithLabelValues(op)
	}
	return m
}

func newMemcachedMetrics(name string, reg prometheus.Registerer) *memcachedMetrics {
	m := newClientMetrics(promauto.With(prometheus.WrapRegistererWith(prometheus.Labels{"name": name}, reg)), "memcached", opSet, opGetMulti)
	return &m
}

// NewMemcached returns a memcached cache named name (a label of its
// metrics) over cfg.Addresses, dialled through tls (nil: plaintext).
func NewMemcached(name string, cfg MemcachedConfig, tls *tlsconfig.Client, logger *slog.Logger, reg prometheus.Registerer) *Memcached {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	selector := newServerSelector(cfg.AddressList())
	if cfg.AutoDiscovery {
		// The addresses are the cluster's configuration endpoints.
		selector.discovery = &autoDiscovery{
			endpoints: cfg.AddressList(),
			dial:      memcachedDialer(cfg.Timeout, tls),
			timeout:   cfg.Timeout,
			logger:    logger.With("cache", name),
		}
	}
	c := &Memcached{
		name:    name,
		cfg:     cfg,
		client:  newMemcachedClient(selector, cfg.Timeout, cfg.MaxIdleConnections, tls),
		logger:  logger.With("cache", name),
		asyncCh: make(chan struct{}, max(cfg.MaxAsyncConcurrency, 1)),
		m:       newMemcachedMetrics(name, reg),
	}
	c.setBreaker = newCircuitBreaker(name, cfg.SetAsyncCircuitBreaker)
	if cfg.MaxGetMultiConcurrency > 0 {
		c.getCh = make(chan struct{}, cfg.MaxGetMultiConcurrency)
	}
	return c
}

func (c *Memcached) Name() string { return c.name }

// HashKey fits any key into memcached's 250-byte keys without spaces or
// control characters.
func HashKey(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(sum[:])
}

// Store implements Cache.
func (c *Memcached) Store(items map[string][]byte, ttl time.Duration) {
	for k, v := range items {
		if c.cfg.MaxItemSize > 0 && len(v) > c.cfg.MaxItemSize {
			c.m.skipped.WithLabelValues(opSet, "max-item-size").Inc()
			continue
		}
		if c.pending.Add(1) > int64(c.cfg.MaxAsyncBufferSize) {
			c.pending.Add(-1)
			c.m.skipped.WithLabelValues(opSet, "async-buffer-full").Inc()
			continue
		}
		item := &memcache.Item{Key: HashKey("", k), Value: v, Expiration: int32(ttl / time.Second)}
		go func() {
			defer c.pending.Add(-1)
			c.asyncCh <- struct{}{}
			defer func() { <-c.asyncCh }()
			if err := c.setBreaker.execute(func() error {
				return c.do(opSet, func() error { return c.client.Set(item) })
			}); isOpen(err) {
				c.m.skipped.WithLabelValues(opSet, "circuit-breaker-open").Inc()
			}
		}()
	}
}

func (c *Memcached) do(op string, f func() error) error {
	start := time.Now()
	c.m.ops.WithLabelValues(op).Inc()
	err := f()
	c.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		c.m.failures.WithLabelValues(op, failureReason(err)).Inc()
		c.logger.Debug("memcached operation failed", "op", op, "err", err)
	}
	return err
}

func failureReason(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, memcache.ErrMalformedKey):
		return "malformed-key"
	case errors.Is(err, memcache.ErrServerError):
		return "server-error"
	default:
		return "other"
	}
}

// Fetch implements Cache: keys are read in batches of
// -max-get-multi-batch-size, at most -max-get-multi-concurrency at once.
// A failed batch is a miss of its keys.
func (c *Memcached) Fetch(ctx context.Context, keys []string) map[string][]byte {
	if len(keys) == 0 {
		return map[string][]byte{}
	}
	hashed := make(map[string]string, len(keys)) // memcached key -> key
	mkeys := make([]string, 0, len(keys))
	for _, k := range keys {
		h := HashKey("", k)
		if _, dup := hashed[h]; !dup {
			hashed[h] = k
			mkeys = append(mkeys, h)
		}
	}
	batch := len(mkeys)
	if c.cfg.MaxGetMultiBatchSize > 0 {
		batch = c.cfg.MaxGetMultiBatchSize
	}
	var (
		mu    sync.Mutex
		found = make(map[string][]byte, len(keys))
		wg    sync.WaitGroup
	)
	for start := 0; start < len(mkeys); start += batch {
		part := mkeys[start:min(start+batch, len(mkeys))]
		wg.Go(func() {
			if c.getCh != nil {
				select {
				case c.getCh <- struct{}{}:
					defer func() { <-c.getCh }()
				case <-ctx.Done():
					return
				}
			}
			var items map[string]*memcache.Item
			// A failed batch is a miss of its keys; do counts and logs it.
			_ = c.do(opGetMulti, func() (err error) {
				items, err = c.client.GetMulti(part)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			for h, it := range items {
				found[hashed[h]] = it.Value
			}
		})
	}
	wg.Wait()
	return found
}
