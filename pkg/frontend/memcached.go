package frontend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"hash/fnv"
	"log/slog"
	"net"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/grafana/dskit/flagext"

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

// memcachedCache stores results in memcached through gomemcache, over TLS
// when the -frontend.memcached.tls-* flags are set.
type memcachedCache struct {
	cfg     MemcachedConfig
	client  *memcache.Client
	metrics *metrics
	logger  *slog.Logger
}

func newMemcachedCache(cfg MemcachedConfig, tls *tlsconfig.Client, m *metrics, logger *slog.Logger) *memcachedCache {
	client := memcache.NewFromSelector(newServerSelector(cfg.Addresses))
	client.Timeout = cfg.Timeout
	client.MaxIdleConns = max(cfg.MaxIdleConns, 1)
	client.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// gomemcache bounds the dial by -frontend.memcached.timeout; a new
		// connection also pays for a TCP and TLS handshake, so it gets a
		// second more than one operation (as the hand-written client did).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout+time.Second)
		defer cancel()
		if tls != nil {
			// Dialled per connection with the tlsconfig client, so reloaded
			// certificates and CA bundles apply to the next connection.
			return tls.DialContext(ctx, network, addr, nil)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return &memcachedCache{cfg: cfg, client: client, metrics: m, logger: logger}
}

// memcachedKey fits any cache key into memcached's 250-byte, no-space keys.
func memcachedKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "qfe:" + hex.EncodeToString(sum[:])
}

// serverSelector spreads keys over -frontend.memcached.addresses by FNV
// hash. gomemcache's own ServerList resolves host names once at start and
// dials the resulting IP, which would check a TLS server certificate
// against the IP instead of the host name given, and never follow a DNS
// change; this selector hands the address to the dialer as written.
type serverSelector struct {
	addrs []net.Addr
}

// hostAddr is a host:port left unresolved.
type hostAddr string

func (a hostAddr) Network() string { return "tcp" }
func (a hostAddr) String() string  { return string(a) }

func newServerSelector(addresses []string) *serverSelector {
	s := &serverSelector{}
	for _, a := range addresses {
		s.addrs = append(s.addrs, hostAddr(a))
	}
	return s
}

func (s *serverSelector) PickServer(key string) (net.Addr, error) {
	if len(s.addrs) == 0 {
		return nil, memcache.ErrNoServers
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return s.addrs[h.Sum32()%uint32(len(s.addrs))], nil
}

func (s *serverSelector) Each(f func(net.Addr) error) error {
	for _, a := range s.addrs {
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}

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
