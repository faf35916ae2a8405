package frontend

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// fakeMemcached serves get, gets (what gomemcache sends) and set of
// memcached's text protocol.
type fakeMemcached struct {
	mu   sync.Mutex
	data map[string][]byte
	sets atomic.Int64
	gets atomic.Int64 // get commands, of one or more keys
}

func (m *fakeMemcached) serve(lis net.Listener) {
	for {
		conn, err := lis.Accept()
		if err != nil {
			return
		}
		go m.handle(conn)
	}
}

func (m *fakeMemcached) handle(conn net.Conn) {
	defer conn.Close()
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && (f[0] == "get" || f[0] == "gets"):
			m.gets.Add(1)
			for _, k := range f[1:] {
				m.mu.Lock()
				v, ok := m.data[k]
				m.mu.Unlock()
				if ok {
					fmt.Fprintf(w, "VALUE %s 0 %d\r\n%s\r\n", k, len(v), v)
				}
			}
			_, _ = w.WriteString("END\r\n")
		case len(f) == 5 && f[0] == "set":
			n, _ := strconv.Atoi(f[4])
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			m.mu.Lock()
			m.data[f[1]] = buf[:n]
			m.mu.Unlock()
			m.sets.Add(1)
			_, _ = w.WriteString("STORED\r\n")
		default:
			_, _ = w.WriteString("ERROR\r\n")
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// TestMemcachedResultsCacheTLS: with -frontend.memcached.addresses and its
// TLS flags, parts are cached in memcached over TLS, and served from it.
func TestMemcachedResultsCacheTLS(t *testing.T) {
	pki := testkit.NewPKI(t, "root")
	leaf := pki.Server(t, "memcached")
	raw := testkit.Listen(t)
	mc := &fakeMemcached{data: map[string][]byte{}}
	go mc.serve(tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}))

	cfg := defaultConfig()
	cfg.CacheResults = true
	cfg.Memcached.Addresses = []string{raw.Addr().String()}
	cfg.Memcached.TLS.CAPath = pki.CAPath
	tlsClient, err := tlsconfig.NewClient(MemcachedTLSPrefix, cfg.Memcached.TLS, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	api := newPromAPI(t)
	h := newHarness(t, cfg, api, 2)
	h.f.cache = h.f.newCache(tlsClient, nil)

	params := rangeParams(`rate(metric_a[5m])`, 3600, 32*3600, 300)
	code, first := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
	if code != 200 {
		t.Fatalf("first query: %d %s", code, first)
	}
	// Written in the background (-frontend.background.write-back-concurrency).
	testkit.Eventually(t, 5*time.Second, "both parts stored in memcached", func() bool { return mc.sets.Load() == 2 })
	calls := api.calls.Load()
	code, second := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params)
	if code != 200 || second != first || api.calls.Load() != calls {
		t.Fatalf("second query not served from memcached: %d, %d more querier calls", code, api.calls.Load()-calls)
	}
	if hits := testutil.ToFloat64(h.f.metrics.cacheHits); hits != 2 {
		t.Fatalf("cortex_cache_hits = %v, want 2", hits)
	}
	// memcached gone: a miss, not an error.
	raw.Close()
	h.f.cache = h.f.newCache(tlsClient, nil)
	if code, third := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range", params); code != 200 || third != first {
		t.Fatalf("with memcached down: %d", code)
	}
}

// TestMemcachedRealServerTLS runs against a real memcached serving TLS
// (Debian's memcached package), dialled by host name so the server
// certificate is checked against "localhost". Skipped where no memcached
// binary is installed.
func TestMemcachedRealServerTLS(t *testing.T) {
	mc := cachetest.StartMemcachedTLS(t)
	cfg := defaultConfig()
	cfg.Memcached.Addresses = []string{mc.Addr}
	cfg.Memcached.Timeout = time.Second
	cfg.Memcached.TLS.CAPath = mc.CAPath
	tlsClient, err := tlsconfig.NewClient(MemcachedTLSPrefix, cfg.Memcached.TLS, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	c := newMemcachedCache(cfg.Memcached, 0, tlsClient, slog.New(slog.DiscardHandler), prometheus.NewGauge(prometheus.GaugeOpts{Name: "servers"}), net.DefaultResolver.LookupSRV)
	defer c.stop()
	ctx := context.Background()
	if got := c.fetch(ctx, []string{"absent"}); len(got) != 0 {
		t.Fatal("hit on an absent key")
	}
	c.store("some key with spaces", []byte("value"))
	c.store("another key", []byte("value 2"))
	if got := c.fetch(ctx, []string{"some key with spaces", "another key", "absent"}); len(got) != 2 || string(got["some key with spaces"]) != "value" || string(got["another key"]) != "value 2" {
		t.Fatalf("fetch after store: %q", got)
	}
	c.store("too big", make([]byte, cfg.Memcached.MaxItemSize+1))
	if got := c.fetch(ctx, []string{"too big"}); len(got) != 0 {
		t.Fatal("a value over -frontend.memcached.max-item-size was stored")
	}
}
