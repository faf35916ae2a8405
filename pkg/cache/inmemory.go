package cache

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// entryOverhead approximates the bytes an entry costs beyond its key and
// value (list element, map slot, slice and string headers), so that many
// small items cannot exceed the size bound by far.
const entryOverhead = 120

// InMemory is an LRU cache bounded by the bytes of its keys and values.
type InMemory struct {
	name        string
	maxSize     int64
	maxItemSize int64
	now         func() time.Time
	// onEvict, if set, learns of each entry dropped to make room (not of
	// expired or replaced ones); called with the lock held.
	onEvict func(key string, size int64)

	mu    sync.Mutex
	size  int64
	ll    *list.List // front: most recently used
	items map[string]*list.Element
}

type entry struct {
	key     string
	val     []byte
	expires time.Time // zero: never
}

func (e *entry) size() int64 { return int64(len(e.key)+len(e.val)) + entryOverhead }

// NewInMemory returns a cache holding at most maxSize bytes; items larger
// than maxItemSize (or maxSize, if smaller or maxItemSize is 0) are not
// stored.
func NewInMemory(name string, maxSize, maxItemSize int64) *InMemory {
	if maxItemSize <= 0 || maxItemSize > maxSize {
		maxItemSize = maxSize
	}
	return &InMemory{name: name, maxSize: maxSize, maxItemSize: maxItemSize, now: time.Now, ll: list.New(), items: map[string]*list.Element{}}
}

// OnEvict sets a function told of each entry evicted to make room. Call it
// before the cache is used.
func (c *InMemory) OnEvict(f func(key string, size int64)) { c.onEvict = f }

func (c *InMemory) Name() string { return c.name }

// MaxItemSize is the size of the largest item stored.
func (c *InMemory) MaxItemSize() int64 { return c.maxItemSize }

// Store implements Cache.
func (c *InMemory) Store(items map[string][]byte, ttl time.Duration) {
	for k, v := range items {
		c.Set(k, v, ttl)
	}
}

// Set stores one item and reports whether it fits.
func (c *InMemory) Set(key string, val []byte, ttl time.Duration) bool {
	e := &entry{key: key, val: val}
	if e.size() > c.maxItemSize {
		return false
	}
	if ttl > 0 {
		e.expires = c.now().Add(ttl)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	for c.size+e.size() > c.maxSize {
		last := c.ll.Back()
		old := last.Value.(*entry)
		c.remove(last)
		if c.onEvict != nil {
			c.onEvict(old.key, old.size())
		}
	}
	c.items[key] = c.ll.PushFront(e)
	c.size += e.size()
	return true
}

func (c *InMemory) remove(el *list.Element) {
	e := c.ll.Remove(el).(*entry)
	delete(c.items, e.key)
	c.size -= e.size()
}

// Get returns the value of key, if present and not expired.
func (c *InMemory) Get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*entry)
	if !e.expires.IsZero() && !c.now().Before(e.expires) {
		c.remove(el)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e.val, true
}

// Fetch implements Cache.
func (c *InMemory) Fetch(_ context.Context, keys []string) map[string][]byte {
	found := make(map[string][]byte, len(keys))
	for _, k := range keys {
		if v, ok := c.Get(k); ok {
			found[k] = v
		}
	}
	return found
}

// Len and Size are the number of entries and their bytes.
func (c *InMemory) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

func (c *InMemory) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
