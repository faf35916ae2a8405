package cache

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// RedisLink is how a Redis client connects: the settings of one of
// Cortex's redis blocks, whatever its flags are called.
type RedisLink struct {
	// Prefix is the flag prefix without dashes or trailing dot, for errors.
	Prefix string
	// Addresses are host:port: one server, Redis Cluster seeds, or with
	// MasterName the Sentinels.
	Addresses  []string
	Username   string
	Password   string
	DB         int
	MasterName string
	// DialTimeout bounds a connection's TCP and TLS handshake;
	// WriteTimeout bounds a wait for the server's answers on a connection.
	DialTimeout  time.Duration
	WriteTimeout time.Duration
	// CacheSize is the client-side cache of each connection, in bytes
	// (Redis' server-assisted client-side caching); 0 disables it.
	CacheSize int
	// PoolSize, when positive, serves each request on a connection of
	// its own from a pool of at most this many (go-redis' model, Cortex's
	// -frontend.redis.* client) instead of pipelining all requests over a
	// few connections. IdleTimeout closes pooled connections idle that
	// long and MaxConnAge those older (0: never).
	PoolSize    int
	IdleTimeout time.Duration
	MaxConnAge  time.Duration
	// TLS dials each connection through the link's tlsconfig client, so
	// that rotated certificates apply to the next connection; nil: plaintext.
	TLS *tlsconfig.Client
}

// RedisClient is a connection to Redis that never blocks its caller for
// longer than its timeouts: while Redis cannot be reached it reconnects in
// the background and its operations fail at once.
type RedisClient struct {
	link   RedisLink
	logger *slog.Logger
	warn   *failureLog

	client atomic.Pointer[rueidisClient]
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// rueidisClient boxes the interface for atomic.Pointer.
type rueidisClient struct{ rueidis.Client }

// errNotConnected is an operation tried while Redis is unreachable.
var errNotConnected = errors.New("not connected to redis")

// errConnMaxAge is a pooled connection refusing a new request once it is
// older than MaxConnAge; the request is tried again on a new connection.
var errConnMaxAge = errors.New("redis connection reached its maximum age")

// NewRedisClient connects to link's Redis. Credentials, a database or
// certificates that Redis refuses are configuration errors, returned
// naming the flags; a Redis that cannot be reached yet is not: the client
// keeps connecting in the background, and its operations fail (caches
// miss) until it is reached.
func NewRedisClient(link RedisLink, logger *slog.Logger) (*RedisClient, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &RedisClient{
		link:   link,
		logger: logger,
		warn:   newFailureLog(logger, time.Minute),
		stop:   make(chan struct{}),
	}
	rc, err := rueidis.NewClient(c.options())
	if err == nil {
		c.client.Store(&rueidisClient{rc})
		return c, nil
	}
	if cfgErr := c.configError(err); cfgErr != nil {
		return nil, cfgErr
	}
	logger.Warn("redis cannot be reached yet: connecting in the background; the cache misses meanwhile",
		"flag", "-"+link.Prefix+".addresses", "addresses", strings.Join(link.Addresses, ","), "err", err)
	c.wg.Go(c.reconnect)
	return c, nil
}

// options are rueidis' client options for the link.
func (c *RedisClient) options() rueidis.ClientOption {
	l := c.link
	opt := rueidis.ClientOption{
		InitAddress:      append([]string(nil), l.Addresses...),
		ShuffleInit:      true,
		Username:         l.Username,
		Password:         l.Password,
		SelectDB:         l.DB,
		Dialer:           net.Dialer{Timeout: l.DialTimeout},
		ConnWriteTimeout: l.WriteTimeout,
		DialCtxFn:        c.dial,
		// A cache fails fast: rueidis would retry a read on a broken
		// connection until its deadline, holding the query that long.
		DisableRetry: true,
	}
	if l.CacheSize > 0 {
		opt.CacheSizeEachConn = l.CacheSize
	} else {
		opt.DisableCache = true
	}
	if l.MasterName != "" {
		// Reads go to the master: rueidis' Sentinel client sending reads
		// to replicas does not connect while none is ready.
		opt.Sentinel = rueidis.SentinelOption{MasterSet: l.MasterName, Dialer: net.Dialer{Timeout: l.DialTimeout}}
	} else {
		// A Redis Cluster's replicas serve reads, as Cortex's client has them.
		opt.SendToReplicas = func(cmd rueidis.Completed) bool { return cmd.IsReadOnly() }
	}
	if l.PoolSize > 0 {
		opt.DisableAutoPipelining = true
		opt.BlockingPoolSize = l.PoolSize
		// rueidis restarts a pooled connection's lifetime each time it
		// goes back to the pool: on pooled connections its lifetime is an
		// idle timeout.
		opt.ConnLifetime = l.IdleTimeout
	}
	return opt
}

// DefaultRedisPoolSize is go-redis' pool size, which Cortex's
// -frontend.redis.pool-size=0 stands for: 10 connections per CPU.
func DefaultRedisPoolSize() int { return 10 * runtime.GOMAXPROCS(0) }

// dial connects to addr, the Redis servers and Sentinels alike, through
// the link's TLS (the tls.Config rueidis offers is not used: ours reloads).
func (c *RedisClient) dial(ctx context.Context, addr string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	var (
		conn net.Conn
		err  error
	)
	if c.link.TLS != nil {
		conn, err = c.link.TLS.DialContext(ctx, "tcp", addr, nil)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil || c.link.MaxConnAge <= 0 || c.link.PoolSize <= 0 {
		return conn, err
	}
	return &agedConn{Conn: conn, expires: time.Now().Add(c.link.MaxConnAge)}, nil
}

// agedConn refuses to start a request once past its maximum age, before
// writing a byte of it, so rueidis drops the connection from its pool and
// the request is tried again on a new one. A pooled connection serves one
// request at a time: a write after its age can only start a new request.
type agedConn struct {
	net.Conn
	expires time.Time
}

func (a *agedConn) Write(b []byte) (int, error) {
	if time.Now().After(a.expires) {
		return 0, errConnMaxAge
	}
	return a.Conn.Write(b)
}

// configError words err as a configuration error naming the flags to fix
// when Redis or the TLS layer refused the client; nil when err is one of
// reaching Redis (refused, timed out), which may pass.
func (c *RedisClient) configError(err error) error {
	p := "-" + c.link.Prefix
	var tlsErr *tlsconfig.ClientError
	if errors.As(err, &tlsErr) {
		return fmt.Errorf("%s.addresses=%s: %w", p, strings.Join(c.link.Addresses, ","), err)
	}
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return nil
	}
	msg := re.Error()
	creds := p + ".password"
	if c.link.Username != "" {
		creds = p + ".username and " + creds
	}
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"), strings.Contains(msg, "AUTH"):
		return fmt.Errorf("%s: redis at %s refused the credentials: %s", creds, strings.Join(c.link.Addresses, ","), msg)
	case strings.Contains(msg, "DB index"), strings.Contains(msg, "SELECT"):
		return fmt.Errorf("%s.db=%d: redis at %s refused the database: %s", p, c.link.DB, strings.Join(c.link.Addresses, ","), msg)
	case strings.HasPrefix(msg, "NOPERM"):
		return fmt.Errorf("%s.username=%q: redis at %s refused a command to that user: %s", p, c.link.Username, strings.Join(c.link.Addresses, ","), msg)
	default:
		return fmt.Errorf("%s.addresses=%s: redis refused the connection: %s", p, strings.Join(c.link.Addresses, ","), msg)
	}
}

// reconnect connects until it succeeds or the client is closed, waiting
// 1s, then up to 30s, between attempts.
func (c *RedisClient) reconnect() {
	backoff := time.Second
	for {
		select {
		case <-c.stop:
			return
		case <-time.After(backoff):
		}
		rc, err := rueidis.NewClient(c.options())
		if err == nil {
			c.client.Store(&rueidisClient{rc})
			c.logger.Info("connected to redis", "flag", "-"+c.link.Prefix+".addresses", "addresses", strings.Join(c.link.Addresses, ","))
			select {
			case <-c.stop: // closed meanwhile
				rc.Close()
			default:
			}
			return
		}
		if cfgErr := c.configError(err); cfgErr != nil {
			err = cfgErr
		}
		c.warn.log("redis cannot be reached: the cache misses", "err", err)
		backoff = min(2*backoff, 30*time.Second)
	}
}

// current is the connected client, nil while Redis has not been reached.
func (c *RedisClient) current() rueidis.Client {
	if rc := c.client.Load(); rc != nil {
		return rc.Client
	}
	return nil
}

// MGet reads keys, in one MGET per Redis Cluster slot, from the client-side
// cache first when the link has one. A key absent is left out.
func (c *RedisClient) MGet(ctx context.Context, keys []string) (map[string][]byte, error) {
	rc := c.current()
	if rc == nil {
		return nil, errNotConnected
	}
	var (
		resps map[string]rueidis.RedisMessage
		err   error
	)
	for range c.attempts() {
		if c.link.CacheSize > 0 {
			// Entries of the client-side cache live as long as Redis keeps
			// the key, at most this long (Thanos' choice).
			resps, err = rueidis.MGetCache(rc, ctx, 8*time.Hour, keys)
		} else {
			resps, err = rueidis.MGet(rc, ctx, keys)
		}
		if !errors.Is(err, errConnMaxAge) {
			break
		}
	}
	found := make(map[string][]byte, len(resps))
	for k, r := range resps {
		v, rerr := r.AsBytes() // the reply's own memory, not copied
		if rerr != nil {
			continue // absent
		}
		if c.link.CacheSize > 0 {
			// The client-side cache hands every reader the same memory.
			v = bytes.Clone(v)
		}
		found[k] = v
	}
	return found, err
}

// Set writes items in one pipeline, each kept for ttl (0: until Redis
// evicts it), and returns the first error.
func (c *RedisClient) Set(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	rc := c.current()
	if rc == nil {
		return errNotConnected
	}
	var err error
	for range c.attempts() {
		err = nil
		// DoMulti recycles the commands it ran: a retry builds them anew.
		for _, r := range rc.DoMulti(ctx, setCommands(rc, items, ttl)...) {
			if e := r.Error(); e != nil && err == nil {
				err = e
			}
		}
		if !errors.Is(err, errConnMaxAge) {
			break
		}
	}
	return err
}

func setCommands(rc rueidis.Client, items map[string][]byte, ttl time.Duration) rueidis.Commands {
	cmds := make(rueidis.Commands, 0, len(items))
	for k, v := range items {
		set := rc.B().Set().Key(k).Value(rueidis.BinaryString(v))
		if ttl > 0 {
			cmds = append(cmds, set.PxMilliseconds(max(ttl.Milliseconds(), 1)).Build())
		} else {
			cmds = append(cmds, set.Build())
		}
	}
	return cmds
}

// attempts is how often a request is tried: once, and with
// MaxConnAge once more per pooled connection that may have aged, each
// failure dropping one of them.
func (c *RedisClient) attempts() int {
	if c.link.MaxConnAge > 0 && c.link.PoolSize > 0 {
		return c.link.PoolSize + 1
	}
	return 1
}

// LogFailure logs a failed operation, once per minute at most: a dead
// Redis fails every operation, and each is counted in the metrics.
func (c *RedisClient) LogFailure(op string, err error) {
	c.warn.log("redis operation failed: counted as a miss", "op", op, "err", err)
}

// Close ends the client and its background connecting.
func (c *RedisClient) Close() {
	c.once.Do(func() {
		close(c.stop)
		c.wg.Wait()
		if rc := c.current(); rc != nil {
			rc.Close()
		}
	})
}

// failureLog logs the first failure of each period and counts the
// others, which the next line reports.
type failureLog struct {
	logger *slog.Logger
	period time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newFailureLog(logger *slog.Logger, period time.Duration) *failureLog {
	return &failureLog{logger: logger, period: period}
}

func (l *failureLog) log(msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.period {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "similar_failures_not_logged", suppressed)
	}
	l.logger.Warn(msg, args...)
}
