package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func testMetrics() *metrics {
	return &metrics{cacheFetched: prometheus.NewCounter(prometheus.CounterOpts{Name: "a"}), cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "b"}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "c"}), cacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{Name: "d"}), cacheEvicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "e"})}
}

// testFrontend is a frontend whose cache newCache builds from cfg.
func testFrontend(t *testing.T, cfg Config) *Frontend {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return &Frontend{cfg: cfg, logger: slog.New(slog.DiscardHandler), metrics: testMetrics()}
}

// fakeMemcachedAt serves a fake memcached on loopback.
func fakeMemcachedAt(t *testing.T) (*fakeMemcached, string) {
	t.Helper()
	lis := testkit.Listen(t)
	mc := &fakeMemcached{data: map[string][]byte{}}
	go mc.serve(lis)
	return mc, lis.Addr().String()
}

// TestFifoCacheMaxSizeItems: -frontend.fifocache.max-size-items bounds the
// embedded cache's entries, and the deprecated -frontend.fifocache.size
// replaces it when set.
func TestFifoCacheMaxSizeItems(t *testing.T) {
	for _, c := range []struct {
		items, size, want int
	}{{3, 0, 3}, {3, 2, 2}, {0, 0, 10}} {
		cfg := defaultConfig()
		cfg.CacheMaxSizeItems, cfg.CacheSize = c.items, c.size
		ch := testFrontend(t, cfg).newCache(nil, nil)
		for i := range 10 {
			ch.store(strconv.Itoa(i), []byte("v"))
		}
		if n := len(ch.(*resultsCache).entries); n != c.want {
			t.Errorf("max-size-items=%d size=%d: %d entries, want %d", c.items, c.size, n, c.want)
		}
		if got := ch.fetch(context.Background(), []string{"9", "0"}); got["9"] == nil || (c.want < 10) != (got["0"] == nil) {
			t.Errorf("max-size-items=%d size=%d: of 0 and 9 left %q", c.items, c.size, got)
		}
	}
}

// TestDefaultValidity: -frontend.default-validity is the embedded cache's
// TTL when -frontend.fifocache.duration is 0, and memcached's expiration
// when -frontend.memcached.expiration is 0.
func TestDefaultValidity(t *testing.T) {
	cfg := defaultConfig()
	cfg.CacheTTL, cfg.DefaultValidity = 0, 20*time.Millisecond
	ch := testFrontend(t, cfg).newCache(nil, nil)
	if ttl := ch.(*resultsCache).ttl; ttl != 20*time.Millisecond {
		t.Fatalf("embedded cache TTL %s, want -frontend.default-validity's 20ms", ttl)
	}
	ch.store("k", []byte("v"))
	testkit.Eventually(t, 5*time.Second, "the entry to expire", func() bool { return len(ch.fetch(context.Background(), []string{"k"})) == 0 })

	cfg.CacheTTL = time.Hour
	if ttl := testFrontend(t, cfg).newCache(nil, nil).(*resultsCache).ttl; ttl != time.Hour {
		t.Fatalf("with -frontend.fifocache.duration=1h, TTL %s", ttl)
	}

	_, addr := fakeMemcachedAt(t)
	cfg.Memcached.Addresses = []string{addr}
	cfg.DefaultValidity = 2 * time.Hour
	mc := testFrontend(t, cfg).newCache(nil, nil)
	defer mc.stop()
	if exp := mc.(*backgroundCache).next.(*memcachedCache).expiration; exp != 2*time.Hour {
		t.Fatalf("memcached expiration %s, want -frontend.default-validity's 2h", exp)
	}
	cfg.Memcached.Expiration = time.Minute
	mc2 := testFrontend(t, cfg).newCache(nil, nil)
	defer mc2.stop()
	if exp := mc2.(*backgroundCache).next.(*memcachedCache).expiration; exp != time.Minute {
		t.Fatalf("memcached expiration %s, want -frontend.memcached.expiration's 1m", exp)
	}
}

// TestCompressionSnappy: with -frontend.compression=snappy the entries
// reach memcached snappy-compressed and read back as they were; an entry
// that is not snappy is a miss. Other values are refused.
func TestCompressionSnappy(t *testing.T) {
	mc, addr := fakeMemcachedAt(t)
	cfg := defaultConfig()
	cfg.Memcached.Addresses = []string{addr}
	cfg.Compression = "snappy"
	ch := testFrontend(t, cfg).newCache(nil, nil)
	defer ch.stop()
	value := []byte(fmt.Sprintf("%0500d", 7))
	ch.store("k", value)
	testkit.Eventually(t, 5*time.Second, "the entry stored", func() bool { return mc.sets.Load() == 1 })
	mc.mu.Lock()
	stored := mc.data[memcachedKey("k")]
	mc.data[memcachedKey("plain")] = value
	mc.mu.Unlock()
	if want := snappy.Encode(nil, value); string(stored) != string(want) || len(stored) >= len(value) {
		t.Fatalf("memcached holds %d bytes, want the %d bytes of snappy's encoding of %d", len(stored), len(want), len(value))
	}
	got := ch.fetch(context.Background(), []string{"k", "plain"})
	if string(got["k"]) != string(value) {
		t.Fatalf("read back %q", got["k"])
	}
	if _, ok := got["plain"]; ok {
		t.Fatal("an entry that is not snappy was read as a hit")
	}

	cfg.Compression = "gzip"
	if err := cfg.Validate(); err == nil || err.Error() != "-frontend.compression: unsupported compression type: gzip (supported: snappy, or empty for none)" {
		t.Fatalf("-frontend.compression=gzip: %v", err)
	}
}

// blockingCache is a cache whose stores wait for release.
type blockingCache struct {
	entered chan string
	release chan struct{}
	mu      sync.Mutex
	stored  []string
}

func (b *blockingCache) fetch(context.Context, []string) map[string][]byte { return nil }
func (b *blockingCache) store(key string, _ []byte) {
	b.entered <- key
	<-b.release
	b.mu.Lock()
	b.stored = append(b.stored, key)
	b.mu.Unlock()
}
func (b *blockingCache) stop() {}

// TestBackgroundWriteBack: writes to memcached run on
// -frontend.background.write-back-concurrency goroutines; while
// -frontend.background.write-back-buffer writes wait, further ones are
// dropped and counted.
func TestBackgroundWriteBack(t *testing.T) {
	next := &blockingCache{entered: make(chan string, 10), release: make(chan struct{})}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	queued := prometheus.NewGauge(prometheus.GaugeOpts{Name: "queued"})
	b := newBackgroundCache(next, 1, 2, dropped, queued)
	defer b.stop()
	b.store("k1", nil) // taken by the one writer, which blocks
	if k := <-next.entered; k != "k1" {
		t.Fatalf("first write %s", k)
	}
	b.store("k2", nil)
	b.store("k3", nil)
	b.store("k4", nil) // the buffer of 2 is full
	if d, q := testutil.ToFloat64(dropped), testutil.ToFloat64(queued); d != 1 || q != 2 {
		t.Fatalf("cortex_cache_dropped_background_writes_total %v, cortex_cache_background_queue_length %v; want 1 and 2", d, q)
	}
	close(next.release)
	testkit.Eventually(t, 5*time.Second, "the queued writes done", func() bool {
		next.mu.Lock()
		defer next.mu.Unlock()
		return len(next.stored) == 3
	})
	next.mu.Lock()
	if fmt.Sprint(next.stored) != "[k1 k2 k3]" {
		t.Fatalf("written %v, want [k1 k2 k3]", next.stored)
	}
	next.mu.Unlock()
	if q := testutil.ToFloat64(queued); q != 0 {
		t.Fatalf("queue length %v after the writes", q)
	}

	// The configured concurrency is the number of writers.
	par := &blockingCache{entered: make(chan string, 10), release: make(chan struct{})}
	b2 := newBackgroundCache(par, 3, 10, dropped, queued)
	for i := range 5 {
		b2.store(strconv.Itoa(i), nil)
	}
	for range 3 {
		<-par.entered
	}
	select {
	case k := <-par.entered:
		t.Fatalf("a fourth write (%s) runs with -frontend.background.write-back-concurrency=3", k)
	case <-time.After(50 * time.Millisecond):
	}
	close(par.release)
	b2.stop()
}

// TestEnableFifoCache: with -frontend.cache.enable-fifocache, the embedded
// cache is read before memcached, and what memcached had fills it.
func TestEnableFifoCache(t *testing.T) {
	mc, addr := fakeMemcachedAt(t)
	cfg := defaultConfig()
	cfg.Memcached.Addresses = []string{addr}
	cfg.EnableFifoCache = true
	ch := testFrontend(t, cfg).newCache(nil, nil)
	defer ch.stop()
	tiers, ok := ch.(tieredCache)
	if !ok || len(tiers) != 2 {
		t.Fatalf("cache %T, want the embedded cache in front of memcached", ch)
	}
	mc.mu.Lock()
	mc.data[memcachedKey("k")] = []byte("from memcached")
	mc.mu.Unlock()
	if got := ch.fetch(context.Background(), []string{"k"}); string(got["k"]) != "from memcached" {
		t.Fatalf("first fetch %q", got)
	}
	gets := mc.gets.Load()
	if got := ch.fetch(context.Background(), []string{"k"}); string(got["k"]) != "from memcached" || mc.gets.Load() != gets {
		t.Fatalf("second fetch %q, %d more memcached gets: not served by the embedded cache", got, mc.gets.Load()-gets)
	}
	// Without the flag, memcached alone.
	cfg.EnableFifoCache = false
	only := testFrontend(t, cfg).newCache(nil, nil)
	defer only.stop()
	if _, ok := only.(*backgroundCache); !ok {
		t.Fatalf("cache %T without -frontend.cache.enable-fifocache, want memcached alone", only)
	}
}

// TestMemcachedBatches: a fetch of many keys is cut into GetMulti calls of
// -frontend.memcached.batchsize keys.
func TestMemcachedBatches(t *testing.T) {
	mc, addr := fakeMemcachedAt(t)
	cfg := defaultConfig()
	cfg.Memcached.Addresses = []string{addr}
	ctx := context.Background()
	var keys []string
	for i := range 5 {
		keys = append(keys, "key-"+strconv.Itoa(i))
		mc.data[memcachedKey(keys[i])] = []byte(strconv.Itoa(i))
	}
	for _, c := range []struct{ batch, gets int }{{2, 3}, {5, 1}, {0, 1}, {1024, 1}} {
		cfg.Memcached.BatchSize = c.batch
		m := newMemcachedCache(cfg.Memcached, 0, nil, slog.New(slog.DiscardHandler), prometheus.NewGauge(prometheus.GaugeOpts{Name: "s"}), nil)
		before := mc.gets.Load()
		got := m.fetch(ctx, keys)
		m.stop()
		if len(got) != 5 || string(got["key-3"]) != "3" {
			t.Fatalf("batchsize %d: fetched %q", c.batch, got)
		}
		if n := mc.gets.Load() - before; n != int64(c.gets) {
			t.Errorf("batchsize %d: %d get commands for 5 keys, want %d", c.batch, n, c.gets)
		}
	}
}

// TestMemcachedConsistentHash: with -frontend.memcached.consistent-hash, a
// server added moves about its share of the keys; without, most keys move.
func TestMemcachedConsistentHash(t *testing.T) {
	moved := func(consistent bool) int {
		before, after := &memcachedServers{consistent: consistent}, &memcachedServers{consistent: consistent}
		before.set([]string{"a:11211", "b:11211", "c:11211"})
		after.set([]string{"a:11211", "b:11211", "c:11211", "d:11211"})
		n := 0
		for i := range 1000 {
			k := "key-" + strconv.Itoa(i)
			x, _ := before.PickServer(k)
			y, _ := after.PickServer(k)
			if x.String() != y.String() {
				n++
			}
		}
		return n
	}
	if n := moved(true); n < 150 || n > 350 {
		t.Errorf("consistent hashing moved %d of 1000 keys to a fourth server, want about 250", n)
	}
	if n := moved(false); n < 600 {
		t.Errorf("modulo hashing moved %d of 1000 keys to a fourth server, want most", n)
	}
}

// TestMemcachedSRVDiscovery: -frontend.memcached.hostname's servers come
// from its SRV records (-frontend.memcached.service), looked up again every
// -frontend.memcached.update-interval.
func TestMemcachedSRVDiscovery(t *testing.T) {
	_, addr1 := fakeMemcachedAt(t)
	_, addr2 := fakeMemcachedAt(t)
	srv := func(addr string) *net.SRV {
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		return &net.SRV{Target: "127.0.0.1.", Port: uint16(p)}
	}
	var mu sync.Mutex
	answer := []*net.SRV{srv(addr1)}
	var asked atomic.Value
	lookup := func(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
		asked.Store(fmt.Sprintf("_%s._%s.%s", service, proto, name))
		mu.Lock()
		defer mu.Unlock()
		return "", answer, nil
	}
	cfg := defaultConfig()
	cfg.Memcached.Host = "memcached.example"
	cfg.Memcached.Service = "memcache-port"
	cfg.Memcached.UpdateInterval = 10 * time.Millisecond
	servers := prometheus.NewGauge(prometheus.GaugeOpts{Name: "servers"})
	m := newMemcachedCache(cfg.Memcached, 0, nil, slog.New(slog.DiscardHandler), servers, lookup)
	defer m.stop()
	if a := asked.Load(); a != "_memcache-port._tcp.memcached.example" {
		t.Fatalf("looked up %v", a)
	}
	if got, _ := m.servers.PickServer("k"); got.String() != addr1 || testutil.ToFloat64(servers) != 1 {
		t.Fatalf("server %v, cortex_memcache_client_servers %v; want %s and 1", got, testutil.ToFloat64(servers), addr1)
	}
	mu.Lock()
	answer = []*net.SRV{srv(addr1), srv(addr2)}
	mu.Unlock()
	testkit.Eventually(t, 5*time.Second, "the second server discovered", func() bool { return testutil.ToFloat64(servers) == 2 })
	m.store("k", []byte("v"))
	if got := m.fetch(context.Background(), []string{"k"}); string(got["k"]) != "v" {
		t.Fatalf("through discovered servers: %q", got)
	}
	// A failed lookup keeps the servers found last.
	mu.Lock()
	answer = nil
	mu.Unlock()
	if err := m.discover(); err == nil || testutil.ToFloat64(servers) != 2 {
		t.Fatalf("lookup without records: %v, %v servers", err, testutil.ToFloat64(servers))
	}
}

// TestMemcachedCircuitBreaker: after more than
// -frontend.memcached.circuit-breaker-consecutive-failures dial failures in
// a row, a server's dials fail at once, for the breaker's timeout.
func TestMemcachedCircuitBreaker(t *testing.T) {
	lis := testkit.Listen(t)
	addr := lis.Addr().String()
	lis.Close() // dials are refused
	cfg := defaultConfig()
	cfg.Memcached.Addresses = []string{addr}
	cfg.Memcached.CBFailures = 2
	cfg.Memcached.CBTimeout = time.Hour
	m := newMemcachedCache(cfg.Memcached, 0, nil, slog.New(slog.DiscardHandler), prometheus.NewGauge(prometheus.GaugeOpts{Name: "s"}), nil)
	defer m.stop()
	for i := range 3 {
		_ = m.fetch(context.Background(), []string{"k"})
		if st := m.breaker(addr).State(); st != gobreaker.StateClosed && i < 2 {
			t.Fatalf("breaker %s after %d failures", st, i+1)
		}
	}
	if st := m.breaker(addr).State(); st != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 3 failures, want open", st)
	}
	_, err := m.client.Get(memcachedKey("k"))
	if !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("get with the breaker open: %v, want %v", err, gobreaker.ErrOpenState)
	}
	// 0 disables the breaker.
	cfg.Memcached.CBFailures = 0
	m2 := newMemcachedCache(cfg.Memcached, 0, nil, slog.New(slog.DiscardHandler), prometheus.NewGauge(prometheus.GaugeOpts{Name: "s"}), nil)
	defer m2.stop()
	for range 5 {
		_ = m2.fetch(context.Background(), []string{"k"})
	}
	if _, err := m2.client.Get(memcachedKey("k")); err == nil || errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("get without a breaker: %v, want the dial's error", err)
	}
}
