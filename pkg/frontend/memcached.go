package frontend

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

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

// memcachedCache speaks memcached's text protocol, over TLS when the
// -frontend.memcached.tls-* flags are set.
type memcachedCache struct {
	cfg     MemcachedConfig
	tls     *tlsconfig.Client
	pools   []chan net.Conn
	metrics *metrics
	logger  *slog.Logger
}

func newMemcachedCache(cfg MemcachedConfig, tls *tlsconfig.Client, m *metrics, logger *slog.Logger) *memcachedCache {
	c := &memcachedCache{cfg: cfg, tls: tls, metrics: m, logger: logger}
	for range cfg.Addresses {
		c.pools = append(c.pools, make(chan net.Conn, max(cfg.MaxIdleConns, 1)))
	}
	return c
}

// memcachedKey fits any cache key into memcached's 250-byte, no-space keys.
func memcachedKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "qfe:" + hex.EncodeToString(sum[:])
}

func (c *memcachedCache) server(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(c.cfg.Addresses)))
}

func (c *memcachedCache) conn(i int) (net.Conn, error) {
	select {
	case conn := <-c.pools[i]:
		return conn, nil
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout+time.Second)
	defer cancel()
	addr := c.cfg.Addresses[i]
	if c.tls != nil {
		return c.tls.DialContext(ctx, "tcp", addr, nil)
	}
	return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
}

func (c *memcachedCache) release(i int, conn net.Conn, ok bool) {
	if ok {
		select {
		case c.pools[i] <- conn:
			return
		default:
		}
	}
	_ = conn.Close()
}

// do runs one operation on the server owning key.
func (c *memcachedCache) do(key string, op func(rw *bufio.ReadWriter) error) error {
	i := c.server(key)
	conn, err := c.conn(i)
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Now().Add(c.cfg.Timeout))
	err = op(bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn)))
	c.release(i, conn, err == nil)
	return err
}

func (c *memcachedCache) get(key string) ([]byte, bool) {
	c.metrics.cacheFetched.Inc()
	k := memcachedKey(key)
	var value []byte
	err := c.do(k, func(rw *bufio.ReadWriter) error {
		if _, err := fmt.Fprintf(rw, "get %s\r\n", k); err != nil {
			return err
		}
		if err := rw.Flush(); err != nil {
			return err
		}
		line, err := rw.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "END\r\n" {
			return nil
		}
		// VALUE <key> <flags> <bytes>
		fields := strings.Fields(line)
		if len(fields) != 4 || fields[0] != "VALUE" {
			return fmt.Errorf("unexpected memcached answer %q", strings.TrimSpace(line))
		}
		n, err := strconv.Atoi(fields[3])
		if err != nil || n < 0 || n > c.cfg.MaxItemSize+1<<10 {
			return fmt.Errorf("bad memcached value size %q", fields[3])
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rw, buf); err != nil {
			return err
		}
		if end, err := rw.ReadString('\n'); err != nil || end != "END\r\n" {
			return fmt.Errorf("memcached value not followed by END: %q %v", end, err)
		}
		value = buf[:n]
		return nil
	})
	if err != nil {
		c.logger.Debug("memcached get failed, counted as a miss", "err", err)
		return nil, false
	}
	if value == nil {
		return nil, false
	}
	c.metrics.cacheHits.Inc()
	return value, true
}

func (c *memcachedCache) set(key string, value []byte) {
	if len(value) > c.cfg.MaxItemSize {
		return
	}
	k := memcachedKey(key)
	err := c.do(k, func(rw *bufio.ReadWriter) error {
		exp := int64(c.cfg.Expiration / time.Second)
		if _, err := fmt.Fprintf(rw, "set %s 0 %d %d\r\n", k, exp, len(value)); err != nil {
			return err
		}
		if _, err := rw.Write(value); err != nil {
			return err
		}
		if _, err := rw.WriteString("\r\n"); err != nil {
			return err
		}
		if err := rw.Flush(); err != nil {
			return err
		}
		line, err := rw.ReadString('\n')
		if err != nil {
			return err
		}
		if line != "STORED\r\n" {
			return fmt.Errorf("memcached refused the value: %q", strings.TrimSpace(line))
		}
		return nil
	})
	if err != nil {
		c.logger.Debug("memcached set failed", "err", err)
	}
}
