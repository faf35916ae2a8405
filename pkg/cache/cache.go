package cache

import (
	"context"
	"time"
)

// Cache stores values by key. Failures are not errors: a value that cannot
// be read is a miss, one that cannot be written is simply not cached.
type Cache interface {
	// Store writes items; a ttl of 0 keeps them until evicted. It may return
	// before the items are readable.
	Store(items map[string][]byte, ttl time.Duration)
	// Fetch returns the values found, by key.
	Fetch(ctx context.Context, keys []string) map[string][]byte
	// Name names the cache in logs and metrics.
	Name() string
}
