// Package postingscache keeps, per tenant, the expanded postings (the
// series references) of the matchers ingester queries select by, as
// Cortex's -blocks-storage.expanded_postings_cache.* does: dashboards repeat
// the same selectors, and resolving one in the TSDB index (a regular
// expression over every value of a label, intersections of long lists)
// costs more than reading a cached list of references.
//
// The head and the compacted blocks have a cache each, bounded in bytes and
// expiring entries after a TTL. Blocks are immutable; the head is not, so
// its entries are cached only for queries naming their metric (__name__=),
// and the key carries a seed per tenant and metric name that every new or
// deleted series of that name bumps: the next query misses and sees the
// series. Concurrent identical lookups share one fetch.
//
// Ported from Cortex v1.21.1's pkg/storage/tsdb/expanded_postings_cache.go
// and cached_chunks_querier.go, Copyright The Cortex Authors, Apache
// License 2.0.
package postingscache

import (
	"flag"
	"fmt"
	"time"
)

// Config is blocks_storage.tsdb.expanded_postings_cache.
type Config struct {
	Head   CacheConfig `yaml:"head"`
	Blocks CacheConfig `yaml:"blocks"`
}

// CacheConfig configures the head's or the blocks' cache.
type CacheConfig struct {
	Enabled      bool          `yaml:"enabled"`
	MaxBytes     int64         `yaml:"max_bytes"`
	TTL          time.Duration `yaml:"ttl"`
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
}

const flagPrefix = "blocks-storage.expanded_postings_cache."

// RegisterFlagsWithPrefix registers Cortex's
// <prefix>expanded_postings_cache.{head,block}.* flags (prefix
// "blocks-storage.").
func (c *Config) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	c.Head.register(prefix+"expanded_postings_cache.head.", "head", f)
	c.Blocks.register(prefix+"expanded_postings_cache.block.", "compacted blocks", f)
}

func (c *CacheConfig) register(prefix, what string, f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, prefix+"enabled", false, "Cache the expanded postings of queries' matchers on the "+what+", per tenant."+headOnly(what))
	f.Int64Var(&c.MaxBytes, prefix+"max-bytes", 10*1024*1024, "Maximum bytes of each tenant's "+what+" postings cache, counting 8 bytes per cached series reference, the key and 290 bytes of bookkeeping per entry; the oldest entries are evicted first.")
	f.DurationVar(&c.TTL, prefix+"ttl", 10*time.Minute, "How long an entry of the "+what+" postings cache is used before its postings are looked up again. 0 caches nothing, concurrent identical lookups still share one.")
	f.DurationVar(&c.FetchTimeout, prefix+"fetch-timeout", 0, "Timeout of a postings lookup on a "+what+" cache miss. The lookup is shared by every query waiting for it, so no single query's deadline stops it: this bounds lookups all callers have given up on. 0 for none.")
}

func headOnly(what string) string {
	if what == "head" {
		return " Only queries with an equality matcher on __name__ are cached: a new series of that metric invalidates them."
	}
	return " The cache is shared by all of a tenant's blocks."
}

// Validate refuses negative sizes and durations.
func (c *Config) Validate() error {
	if err := c.Head.validate(flagPrefix + "head."); err != nil {
		return err
	}
	return c.Blocks.validate(flagPrefix + "block.")
}

func (c *CacheConfig) validate(p string) error {
	switch {
	case c.MaxBytes < 0:
		return fmt.Errorf("-%smax-bytes %d must not be negative", p, c.MaxBytes)
	case c.TTL < 0:
		return fmt.Errorf("-%sttl %s must not be negative", p, c.TTL)
	case c.FetchTimeout < 0:
		return fmt.Errorf("-%sfetch-timeout %s must not be negative (0 for none)", p, c.FetchTimeout)
	}
	return nil
}
