package frontend

import (
	"context"
	"log/slog"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
)

// tieredCache reads each tier in turn for the keys the earlier ones lack,
// and writes what a later tier had into the earlier ones, as Cortex's
// tiered cache: the in-memory cache (-frontend.cache.enable-fifocache) in
// front of memcached.
type tieredCache []cache

func (t tieredCache) fetch(ctx context.Context, keys []string) map[string][]byte {
	found := map[string][]byte{}
	missing := keys
	for i, c := range t {
		got := c.fetch(ctx, missing)
		for k, v := range got {
			found[k] = v
			for _, earlier := range t[:i] {
				earlier.store(k, v)
			}
		}
		if len(got) == 0 {
			continue
		}
		rest := missing[:0:0]
		for _, k := range missing {
			if _, ok := got[k]; !ok {
				rest = append(rest, k)
			}
		}
		if missing = rest; len(missing) == 0 {
			break
		}
	}
	return found
}

func (t tieredCache) store(key string, value []byte) {
	for _, c := range t {
		c.store(key, value)
	}
}

func (t tieredCache) stop() {
	for _, c := range t {
		c.stop()
	}
}

// snappyCache compresses entries with snappy (-frontend.compression=snappy),
// as Cortex's results cache does; an entry that does not decode is a miss.
type snappyCache struct {
	next   cache
	logger *slog.Logger
}

func (s snappyCache) fetch(ctx context.Context, keys []string) map[string][]byte {
	found := s.next.fetch(ctx, keys)
	for k, v := range found {
		d, err := snappy.Decode(nil, v)
		if err != nil {
			s.logger.Debug("a results cache entry does not decode as snappy: counted as a miss", "err", err)
			delete(found, k)
			continue
		}
		found[k] = d
	}
	return found
}

func (s snappyCache) store(key string, value []byte) { s.next.store(key, snappy.Encode(nil, value)) }

func (s snappyCache) stop() { s.next.stop() }

// backgroundCache writes to its cache from -frontend.background.write-back-concurrency
// goroutines, so that a query does not wait for memcached: at most
// -frontend.background.write-back-buffer writes wait, and further ones are
// dropped (cortex_cache_dropped_background_writes_total), as in Cortex.
type backgroundCache struct {
	next    cache
	writes  chan backgroundWrite
	quit    chan struct{}
	wg      sync.WaitGroup
	dropped prometheus.Counter
	queued  prometheus.Gauge
}

type backgroundWrite struct {
	key   string
	value []byte
}

func newBackgroundCache(next cache, goroutines, buffer int, dropped prometheus.Counter, queued prometheus.Gauge) *backgroundCache {
	b := &backgroundCache{next: next, writes: make(chan backgroundWrite, buffer), quit: make(chan struct{}), dropped: dropped, queued: queued}
	for range goroutines {
		b.wg.Go(b.writeBack)
	}
	return b
}

func (b *backgroundCache) writeBack() {
	for {
		select {
		case w := <-b.writes:
			b.queued.Dec()
			b.next.store(w.key, w.value)
		case <-b.quit:
			return
		}
	}
}

func (b *backgroundCache) fetch(ctx context.Context, keys []string) map[string][]byte {
	return b.next.fetch(ctx, keys)
}

func (b *backgroundCache) store(key string, value []byte) {
	b.queued.Inc()
	select {
	case b.writes <- backgroundWrite{key: key, value: value}:
	default:
		b.queued.Dec()
		b.dropped.Inc()
	}
}

// stop ends the writers; the writes still queued are dropped.
func (b *backgroundCache) stop() {
	close(b.quit)
	b.wg.Wait()
	b.next.stop()
}
