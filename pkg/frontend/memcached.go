package frontend

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/cespare/xxhash/v2"
	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	sharedcache "github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// MemcachedTLSPrefix is the flag prefix of the frontend's memcached link.
const MemcachedTLSPrefix = "frontend.memcached"

// MemcachedConfig configures memcached as the results cache instead of the
// embedded one: Cortex's -frontend.memcached.* (its memcached and
// memcached_client blocks), with the TLS flags of every client link.
type MemcachedConfig struct {
	Addresses    flagext.StringSliceCSV `yaml:"addresses"`
	Host         string                 `yaml:"host"`
	Service      string                 `yaml:"service"`
	Timeout      time.Duration          `yaml:"timeout"`
	Expiration   time.Duration          `yaml:"expiration"`
	MaxIdleConns int                    `yaml:"max_idle_conns"`
	MaxItemSize  int                    `yaml:"max_item_size"`
	// UpdateInterval is how often Host's SRV records are looked up again.
	UpdateInterval time.Duration `yaml:"update_interval"`
	// ConsistentHash spreads keys by jump hash, so that a server added or
	// gone moves only its share of the keys.
	ConsistentHash bool `yaml:"consistent_hash"`
	// A server's dials are refused for CBTimeout once more than CBFailures
	// in a row failed; CBInterval resets the count of a closed breaker.
	CBFailures uint          `yaml:"circuit_breaker_consecutive_failures"`
	CBTimeout  time.Duration `yaml:"circuit_breaker_timeout"`
	CBInterval time.Duration `yaml:"circuit_breaker_interval"`
	// A fetch of many keys is cut into GetMulti calls of BatchSize keys,
	// Parallelism of them at once.
	BatchSize   int                    `yaml:"batch_size"`
	Parallelism int                    `yaml:"parallelism"`
	TLS         tlsconfig.ClientConfig `yaml:",inline"`
}

// RegisterFlags registers the -frontend.memcached.* flags.
func (c *MemcachedConfig) RegisterFlags(f *flag.FlagSet) {
	p := MemcachedTLSPrefix
	f.Var(&c.Addresses, p+".addresses", "Comma-separated host:port of memcached servers holding the results cache (keys are spread over them by hash). Empty, and no -frontend.memcached.hostname: the embedded in-memory cache. Given both, the addresses are used, as in Cortex.")
	f.StringVar(&c.Host, p+".hostname", "", "Hostname for memcached service to use: its servers are discovered from the SRV records _<-frontend.memcached.service>._tcp.<hostname>, looked up again every -frontend.memcached.update-interval. If empty and if addresses is unset, no memcached will be used.")
	f.StringVar(&c.Service, p+".service", "memcached", "SRV service used to discover memcache servers.")
	f.DurationVar(&c.Timeout, p+".timeout", 100*time.Millisecond, "Timeout of one memcached operation; a slow or failed one counts as a miss.")
	f.DurationVar(&c.Expiration, p+".expiration", 0, "How long memcached keeps a result. 0: -frontend.default-validity, and with that 0 too, until evicted.")
	f.IntVar(&c.MaxIdleConns, p+".max-idle-conns", 16, "Idle connections kept open to each memcached server.")
	f.IntVar(&c.MaxItemSize, p+".max-item-size", 1<<20, "Results larger than this are not stored (memcached's own item limit is 1 MiB by default).")
	f.DurationVar(&c.UpdateInterval, p+".update-interval", time.Minute, "Period with which to poll DNS for memcache servers (-frontend.memcached.hostname).")
	f.BoolVar(&c.ConsistentHash, p+".consistent-hash", true, "Use consistent hashing (jump hash) to distribute keys to memcache servers: a server added or removed moves only its share of the keys. False: the key's hash modulo the number of servers.")
	f.UintVar(&c.CBFailures, p+".circuit-breaker-consecutive-failures", 10, "Trip a server's circuit-breaker after this number of consecutive dial failures: its dials fail at once for -frontend.memcached.circuit-breaker-timeout (if zero then circuit-breaker is disabled).")
	f.DurationVar(&c.CBTimeout, p+".circuit-breaker-timeout", 10*time.Second, "Duration circuit-breaker remains open after tripping (if zero then 60 seconds is used).")
	f.DurationVar(&c.CBInterval, p+".circuit-breaker-interval", 10*time.Second, "Reset circuit-breaker counts after this long (if zero then never reset).")
	f.IntVar(&c.BatchSize, p+".batchsize", 1024, "How many keys to fetch in each batch (one GetMulti call) when a query reads many cached parts. 0: all in one call.")
	f.IntVar(&c.Parallelism, p+".parallelism", 100, "Maximum active requests to memcache: the batches of one fetch run this many at once.")
	c.TLS.RegisterFlagsWithPrefix(MemcachedTLSPrefix, f)
}

// enabled reports whether memcached holds the results cache.
func (c *MemcachedConfig) enabled() bool { return len(c.Addresses) > 0 || c.Host != "" }

// Validate checks the flags.
func (c *MemcachedConfig) Validate() error {
	p := "-" + MemcachedTLSPrefix
	for _, a := range c.Addresses {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s.addresses: %q: %w", p, a, err)
		}
	}
	switch {
	case c.Host != "" && c.Service == "":
		return fmt.Errorf("%s.service must name the SRV service of %s.hostname %q", p, p, c.Host)
	case c.Host != "" && c.UpdateInterval <= 0:
		return fmt.Errorf("%s.update-interval must be positive, got %s", p, c.UpdateInterval)
	case c.BatchSize < 0:
		return fmt.Errorf("%s.batchsize must not be negative, got %d", p, c.BatchSize)
	case c.BatchSize > 0 && c.Parallelism <= 0:
		return fmt.Errorf("%s.parallelism must be positive with %s.batchsize, got %d", p, p, c.Parallelism)
	case c.CBTimeout < 0 || c.CBInterval < 0:
		return fmt.Errorf("%s.circuit-breaker-timeout and -interval must not be negative", p)
	}
	return nil
}

// memcachedCache stores results in memcached through gomemcache, over TLS
// when the -frontend.memcached.tls-* flags are set.
type memcachedCache struct {
	cfg        MemcachedConfig
	expiration time.Duration
	client     *memcache.Client
	servers    *memcachedServers
	logger     *slog.Logger
	numServers prometheus.Gauge
	lookupSRV  srvLookup

	mu       sync.Mutex
	breakers map[string]*gobreaker.CircuitBreaker[net.Conn]

	quit chan struct{}
	wg   sync.WaitGroup
}

// srvLookup is net.Resolver.LookupSRV.
type srvLookup func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)

// newMemcachedCache returns the memcached cache of cfg; lookup finds the
// servers of -frontend.memcached.hostname.
func newMemcachedCache(cfg MemcachedConfig, expiration time.Duration, tls *tlsconfig.Client, logger *slog.Logger, numServers prometheus.Gauge, lookup srvLookup) *memcachedCache {
	c := &memcachedCache{cfg: cfg, expiration: expiration, logger: logger, numServers: numServers, lookupSRV: lookup,
		servers: &memcachedServers{consistent: cfg.ConsistentHash}, breakers: map[string]*gobreaker.CircuitBreaker[net.Conn]{}, quit: make(chan struct{})}
	c.client = memcache.NewFromSelector(c.servers)
	c.client.Timeout = cfg.Timeout
	c.client.MaxIdleConns = max(cfg.MaxIdleConns, 1)
	c.client.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// gomemcache bounds the dial by the operation timeout; a new
		// connection also pays for a TCP and TLS handshake, so it gets a
		// second more than one operation.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout+time.Second)
		defer cancel()
		dial := func() (net.Conn, error) {
			if tls != nil {
				// Per connection, so reloaded certificates apply to the next one.
				return tls.DialContext(ctx, network, addr, nil)
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		if cfg.CBFailures == 0 {
			return dial()
		}
		return c.breaker(addr).Execute(dial)
	}
	if len(cfg.Addresses) > 0 {
		c.setServers(cfg.Addresses)
	} else {
		if err := c.discover(); err != nil {
			logger.Error("looking up the memcached servers", "hostname", cfg.Host, "service", cfg.Service, "err", err)
		}
		c.wg.Add(1)
		go c.discoverEvery(cfg.UpdateInterval)
	}
	return c
}

// breaker is addr's circuit breaker, as Cortex's memcached client has one
// per server: a server that refuses dials is skipped at once.
func (c *memcachedCache) breaker(addr string) *gobreaker.CircuitBreaker[net.Conn] {
	c.mu.Lock()
	defer c.mu.Unlock()
	cb := c.breakers[addr]
	if cb == nil {
		cb = gobreaker.NewCircuitBreaker[net.Conn](gobreaker.Settings{
			Name:     "frontend.memcached:" + addr,
			Interval: c.cfg.CBInterval,
			Timeout:  c.cfg.CBTimeout,
			OnStateChange: func(name string, from, to gobreaker.State) {
				c.logger.Info("memcached circuit-breaker state change", "name", name, "from", from.String(), "to", to.String())
			},
			ReadyToTrip: func(counts gobreaker.Counts) bool { return uint(counts.ConsecutiveFailures) > c.cfg.CBFailures },
		})
		c.breakers[addr] = cb
	}
	return cb
}

func (c *memcachedCache) discoverEvery(interval time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			if err := c.discover(); err != nil {
				c.logger.Warn("looking up the memcached servers again; the last ones found stay in use", "hostname", c.cfg.Host, "service", c.cfg.Service, "err", err)
			}
		}
	}
}

// discover looks up -frontend.memcached.hostname's SRV records. The servers
// are dialled by the targets' names, so that a TLS link checks the
// certificate against them.
func (c *memcachedCache) discover() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, srvs, err := c.lookupSRV(ctx, c.cfg.Service, "tcp", c.cfg.Host)
	if err != nil {
		return err
	}
	var addrs []string
	for _, s := range srvs {
		addrs = append(addrs, net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
	}
	if len(addrs) == 0 {
		return fmt.Errorf("no SRV records for _%s._tcp.%s", c.cfg.Service, c.cfg.Host)
	}
	c.setServers(addrs)
	return nil
}

func (c *memcachedCache) setServers(addrs []string) {
	c.servers.set(addrs)
	c.numServers.Set(float64(len(addrs)))
	c.mu.Lock()
	defer c.mu.Unlock()
	for a := range c.breakers {
		if !slices.Contains(addrs, a) {
			delete(c.breakers, a)
		}
	}
}

// memcachedKey fits any cache key into memcached's 250-byte, no-space keys.
func memcachedKey(key string) string { return sharedcache.HashKey("qfe:", key) }

// fetch reads keys in GetMulti calls of -frontend.memcached.batchsize keys,
// -frontend.memcached.parallelism of them at once, as Cortex's memcached
// cache does. A failed call counts as misses.
func (c *memcachedCache) fetch(_ context.Context, keys []string) map[string][]byte {
	hashed := make(map[string]string, len(keys))
	mkeys := make([]string, 0, len(keys))
	for _, k := range keys {
		mk := memcachedKey(k)
		hashed[mk] = k
		mkeys = append(mkeys, mk)
	}
	batches := [][]string{mkeys}
	if n := c.cfg.BatchSize; n > 0 && len(mkeys) > n {
		batches = nil
		for b := range slices.Chunk(mkeys, n) {
			batches = append(batches, b)
		}
	}
	found := make(map[string][]byte, len(keys))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(c.cfg.Parallelism, 1))
	for _, b := range batches {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			items, err := c.client.GetMulti(b)
			if err != nil {
				c.logger.Debug("memcached get failed, counted as misses", "keys", len(b), "err", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for mk, it := range items {
				found[hashed[mk]] = it.Value
			}
		})
	}
	wg.Wait()
	return found
}

func (c *memcachedCache) store(key string, value []byte) {
	if c.cfg.MaxItemSize > 0 && len(value) > c.cfg.MaxItemSize {
		return
	}
	err := c.client.Set(&memcache.Item{Key: memcachedKey(key), Value: value, Expiration: int32(c.expiration / time.Second)})
	if err != nil && !errors.Is(err, memcache.ErrNoServers) {
		c.logger.Debug("memcached set failed", "err", err)
	}
}

func (c *memcachedCache) stop() {
	close(c.quit)
	c.wg.Wait()
}

// memcachedServers picks a key's server among those configured or
// discovered. The addresses stay unresolved: gomemcache's own ServerList
// resolves host names once and dials the IP, which would check a TLS
// certificate against the IP instead of the name.
type memcachedServers struct {
	consistent bool
	mu         sync.RWMutex
	addrs      []net.Addr
}

// hostAddr is a host:port left unresolved.
type hostAddr string

func (a hostAddr) Network() string { return "tcp" }
func (a hostAddr) String() string  { return string(a) }

// set replaces the servers, sorted so that every frontend orders them alike.
func (s *memcachedServers) set(addrs []string) {
	sorted := slices.Clone(addrs)
	slices.Sort(sorted)
	out := make([]net.Addr, len(sorted))
	for i, a := range sorted {
		out[i] = hostAddr(a)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = out
}

func (s *memcachedServers) PickServer(key string) (net.Addr, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case len(s.addrs) == 0:
		return nil, memcache.ErrNoServers
	case len(s.addrs) == 1:
		return s.addrs[0], nil
	case s.consistent:
		return s.addrs[jumpHash(xxhash.Sum64String(key), len(s.addrs))], nil
	default:
		return s.addrs[xxhash.Sum64String(key)%uint64(len(s.addrs))], nil
	}
}

func (s *memcachedServers) Each(f func(net.Addr) error) error {
	s.mu.RLock()
	addrs := s.addrs
	s.mu.RUnlock()
	for _, a := range addrs {
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}

// jumpHash is Lamping and Veach's jump consistent hash, as Cortex's
// MemcachedJumpHashSelector uses: a bucket in [0, buckets).
func jumpHash(key uint64, buckets int) int {
	var b, j int64 = -1, 0
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}
