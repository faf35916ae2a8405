package frontend

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// resultsCache is the embedded results cache: an LRU bounded by the bytes
// it holds and, with -frontend.fifocache.max-size-items, by its entries,
// whose entries also expire after a TTL.
type resultsCache struct {
	mu       sync.Mutex
	max      int
	maxItems int // 0: no bound on entries
	ttl      time.Duration
	size     int
	lru      *list.List // front: most recently used
	entries  map[string]*list.Element
	metrics  *metrics
}

type cacheEntry struct {
	key     string
	value   []byte
	expires time.Time
}

func newResultsCache(maxBytes, maxItems int, ttl time.Duration, m *metrics) *resultsCache {
	return &resultsCache{max: maxBytes, maxItems: maxItems, ttl: ttl, lru: list.New(), entries: map[string]*list.Element{}, metrics: m}
}

func (c *resultsCache) fetch(_ context.Context, keys []string) map[string][]byte {
	found := make(map[string][]byte, len(keys))
	for _, k := range keys {
		if v, ok := c.get(k); ok {
			found[k] = v
		}
	}
	return found
}

func (c *resultsCache) store(key string, value []byte) { c.set(key, value) }

func (c *resultsCache) stop() {}

func entrySize(key string, value []byte) int { return len(key) + len(value) + 64 }

func (c *resultsCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	ent := e.Value.(*cacheEntry)
	if !ent.expires.IsZero() && time.Now().After(ent.expires) {
		c.remove(e)
		return nil, false
	}
	c.lru.MoveToFront(e)
	return ent.value, true
}

func (c *resultsCache) set(key string, value []byte) {
	size := entrySize(key, value)
	if size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.remove(e)
	}
	ent := &cacheEntry{key: key, value: value}
	if c.ttl > 0 {
		ent.expires = time.Now().Add(c.ttl)
	}
	c.entries[key] = c.lru.PushFront(ent)
	c.size += size
	for c.size > c.max || (c.maxItems > 0 && len(c.entries) > c.maxItems) {
		c.remove(c.lru.Back())
		c.metrics.cacheEvicted.Inc()
	}
	c.metrics.cacheBytes.Set(float64(c.size))
	c.metrics.cacheEntries.Set(float64(len(c.entries)))
}

func (c *resultsCache) remove(e *list.Element) {
	ent := e.Value.(*cacheEntry)
	c.lru.Remove(e)
	delete(c.entries, ent.key)
	c.size -= entrySize(ent.key, ent.value)
	c.metrics.cacheBytes.Set(float64(c.size))
	c.metrics.cacheEntries.Set(float64(len(c.entries)))
}
