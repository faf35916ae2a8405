package storegateway

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cortex-tls/cortex/pkg/cache"
)

// Cache backends, as Cortex names them.
const (
	CacheBackendInMemory  = "inmemory"
	CacheBackendMemcached = "memcached"
	CacheBackendRedis     = "redis"
)

const (
	indexCachePrefix    = "blocks-storage.bucket-store.index-cache"
	chunksCachePrefix   = "blocks-storage.bucket-store.chunks-cache"
	metadataCachePrefix = "blocks-storage.bucket-store.metadata-cache"
)

// Index cache item types, as Cortex's -*.enabled-items name them.
const (
	itemPostings         = "Postings"
	itemExpandedPostings = "ExpandedPostings"
	itemSeries           = "Series"
)

var indexCacheItems = []string{itemPostings, itemExpandedPostings, itemSeries}

// IndexCacheConfig is Cortex's -blocks-storage.bucket-store.index-cache.*
// block.
type IndexCacheConfig struct {
	Backend    string                    `yaml:"backend"`
	InMemory   InMemoryIndexCacheConfig  `yaml:"inmemory"`
	Memcached  MemcachedIndexCacheConfig `yaml:"memcached"`
	Redis      RedisIndexCacheConfig     `yaml:"redis"`
	MultiLevel cache.MultiLevelConfig    `yaml:"multilevel"`
}

// InMemoryIndexCacheConfig is the index-cache.inmemory.* block.
type InMemoryIndexCacheConfig struct {
	MaxSizeBytes uint64   `yaml:"max_size_bytes"`
	EnabledItems []string `yaml:"enabled_items"`
}

// MemcachedIndexCacheConfig is the index-cache.memcached.* block.
type MemcachedIndexCacheConfig struct {
	cache.MemcachedConfig `yaml:",inline"`
	EnabledItems          []string `yaml:"enabled_items"`
}

// RedisIndexCacheConfig is the index-cache.redis.* block.
type RedisIndexCacheConfig struct {
	cache.RedisConfig `yaml:",inline"`
	EnabledItems      []string `yaml:"enabled_items"`
}

// stringSlice is a repeatable (or comma-separated) string flag.
type stringSlice []string

func (s *stringSlice) String() string { return fmt.Sprint([]string(*s)) }
func (s *stringSlice) Set(v string) error {
	for _, p := range splitComma(v) {
		*s = append(*s, p)
	}
	return nil
}

// RegisterFlags registers the -blocks-storage.bucket-store.index-cache.* flags.
func (c *IndexCacheConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Backend, indexCachePrefix+".backend", CacheBackendInMemory, "The index cache backend type. Multiple cache backend can be provided as a comma-separated ordered list to enable the implementation of a cache hierarchy. Supported values: inmemory, memcached, redis. Empty: no index cache.")
	f.Uint64Var(&c.InMemory.MaxSizeBytes, indexCachePrefix+".inmemory.max-size-bytes", 1<<30, "Maximum size in bytes of in-memory index cache used to speed up blocks index lookups (shared between all tenants).")
	f.Var((*stringSlice)(&c.InMemory.EnabledItems), indexCachePrefix+".inmemory.enabled-items", "Selectively cache index item types. Supported values are Postings, ExpandedPostings and Series. Empty: all of them. Postings has no effect here: a block's index is local, and one label's postings are read from its mapped file.")
	c.Memcached.RegisterFlagsWithPrefix(indexCachePrefix+".memcached", f)
	f.Var((*stringSlice)(&c.Memcached.EnabledItems), indexCachePrefix+".memcached.enabled-items", "Selectively cache index item types. Supported values are Postings, ExpandedPostings and Series. Empty: all of them. Postings has no effect here.")
	c.Redis.RegisterFlagsWithPrefix(indexCachePrefix+".redis", f)
	f.Var((*stringSlice)(&c.Redis.EnabledItems), indexCachePrefix+".redis.enabled-items", "Selectively cache index item types. Supported values are Postings, ExpandedPostings and Series. Empty: all of them. Postings has no effect here.")
	c.MultiLevel.RegisterFlagsWithPrefix(indexCachePrefix+".multilevel.", f)
}

// backends splits a comma-separated list of cache backends, Cortex's
// ordered levels of a multi-level cache, checking each is supported and
// named once; "" is no cache.
func backends(flagName, list string) ([]string, error) {
	if list == "" {
		return nil, nil
	}
	var out []string
	for b := range strings.SplitSeq(list, ",") {
		if b != CacheBackendInMemory && b != CacheBackendMemcached && b != CacheBackendRedis {
			return nil, fmt.Errorf("-%s: unsupported cache backend %q (supported: inmemory, memcached, redis, or a comma-separated list of them)", flagName, b)
		}
		if slices.Contains(out, b) {
			return nil, fmt.Errorf("-%s: duplicated cache backend %q", flagName, b)
		}
		out = append(out, b)
	}
	return out, nil
}

// Validate checks the backends and their blocks.
func (c *IndexCacheConfig) Validate() error {
	bs, err := backends(indexCachePrefix+".backend", c.Backend)
	if err != nil {
		return err
	}
	if len(bs) > 1 {
		if err := c.MultiLevel.Validate(indexCachePrefix + ".multilevel."); err != nil {
			return err
		}
	}
	for _, b := range bs {
		switch b {
		case CacheBackendInMemory:
			if c.InMemory.MaxSizeBytes == 0 {
				return fmt.Errorf("-%s.inmemory.max-size-bytes must be positive", indexCachePrefix)
			}
			if err := validateItems(indexCachePrefix+".inmemory.enabled-items", c.InMemory.EnabledItems); err != nil {
				return err
			}
		case CacheBackendMemcached:
			if err := c.Memcached.Validate(indexCachePrefix + ".memcached"); err != nil {
				return err
			}
			if err := validateItems(indexCachePrefix+".memcached.enabled-items", c.Memcached.EnabledItems); err != nil {
				return err
			}
		case CacheBackendRedis:
			if err := c.Redis.Validate(indexCachePrefix + ".redis"); err != nil {
				return err
			}
			if err := validateItems(indexCachePrefix+".redis.enabled-items", c.Redis.EnabledItems); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateItems(flagName string, items []string) error {
	for _, it := range items {
		if !slices.Contains(indexCacheItems, it) {
			return fmt.Errorf("-%s: unsupported item type %q (supported: Postings, ExpandedPostings, Series)", flagName, it)
		}
	}
	return nil
}

// BucketCacheBackend is the backend block shared by the chunks and
// metadata caches.
type BucketCacheBackend struct {
	Backend    string                    `yaml:"backend"`
	InMemory   InMemoryBucketCacheConfig `yaml:"inmemory"`
	Memcached  cache.MemcachedConfig     `yaml:"memcached"`
	Redis      cache.RedisConfig         `yaml:"redis"`
	MultiLevel cache.MultiLevelConfig    `yaml:"multilevel"`
}

// InMemoryBucketCacheConfig is a bucket cache's inmemory.* block.
type InMemoryBucketCacheConfig struct {
	MaxSizeBytes uint64 `yaml:"max_size_bytes"`
}

func (c *BucketCacheBackend) registerFlags(prefix, what string, f *flag.FlagSet) {
	f.StringVar(&c.Backend, prefix+".backend", "", "The "+what+" cache backend type. Supported values: inmemory, memcached, redis, and '' (disable). Supported values in multi level cache: a comma-separated ordered list of them.")
	f.Uint64Var(&c.InMemory.MaxSizeBytes, prefix+".inmemory.max-size-bytes", 1<<30, "Maximum size in bytes of in-memory "+what+" cache used (shared between all tenants).")
	c.Memcached.RegisterFlagsWithPrefix(prefix+".memcached", f)
	c.Redis.RegisterFlagsWithPrefix(prefix+".redis", f)
	c.MultiLevel.RegisterFlagsWithPrefix(prefix+".multilevel.", f)
}

func (c *BucketCacheBackend) validate(prefix string) error {
	bs, err := backends(prefix+".backend", c.Backend)
	if err != nil {
		return err
	}
	if len(bs) > 1 {
		if err := c.MultiLevel.Validate(prefix + ".multilevel."); err != nil {
			return err
		}
	}
	for _, b := range bs {
		switch b {
		case CacheBackendInMemory:
			if c.InMemory.MaxSizeBytes == 0 {
				return fmt.Errorf("-%s.inmemory.max-size-bytes must be positive", prefix)
			}
		case CacheBackendMemcached:
			if err := c.Memcached.Validate(prefix + ".memcached"); err != nil {
				return err
			}
		case CacheBackendRedis:
			if err := c.Redis.Validate(prefix + ".redis"); err != nil {
				return err
			}
		}
	}
	return nil
}

// ChunksCacheConfig is Cortex's -blocks-storage.bucket-store.chunks-cache.*
// block: chunk segment ranges, cached by subrange.
type ChunksCacheConfig struct {
	BucketCacheBackend  `yaml:",inline"`
	SubrangeSize        int64         `yaml:"subrange_size"`
	MaxGetRangeRequests int           `yaml:"max_get_range_requests"`
	AttributesTTL       time.Duration `yaml:"attributes_ttl"`
	SubrangeTTL         time.Duration `yaml:"subrange_ttl"`
}

// RegisterFlags registers the -blocks-storage.bucket-store.chunks-cache.* flags.
func (c *ChunksCacheConfig) RegisterFlags(f *flag.FlagSet) {
	c.registerFlags(chunksCachePrefix, "chunks", f)
	f.Int64Var(&c.SubrangeSize, chunksCachePrefix+".subrange-size", 16000, "Size of each subrange that bucket object is split into for better caching.")
	f.IntVar(&c.MaxGetRangeRequests, chunksCachePrefix+".max-get-range-requests", 3, "Maximum number of sub-GetRange requests that a single GetRange request can be split into when fetching chunks. Zero or negative value = unlimited number of sub-requests.")
	f.DurationVar(&c.AttributesTTL, chunksCachePrefix+".attributes-ttl", 168*time.Hour, "TTL for caching object attributes for chunks.")
	f.DurationVar(&c.SubrangeTTL, chunksCachePrefix+".subrange-ttl", 24*time.Hour, "TTL for caching individual chunks subranges.")
}

// Validate checks the chunks cache block.
func (c *ChunksCacheConfig) Validate() error {
	if err := c.validate(chunksCachePrefix); err != nil {
		return err
	}
	if c.Backend == "" {
		return nil
	}
	switch {
	case c.SubrangeSize <= 0:
		return fmt.Errorf("-%s.subrange-size must be positive", chunksCachePrefix)
	case c.AttributesTTL <= 0:
		return fmt.Errorf("-%s.attributes-ttl must be positive", chunksCachePrefix)
	case c.SubrangeTTL <= 0:
		return fmt.Errorf("-%s.subrange-ttl must be positive", chunksCachePrefix)
	}
	return nil
}

// MetadataCacheConfig is Cortex's -blocks-storage.bucket-store.metadata-cache.*
// block: bucket listings, and the existence, content and attributes of
// small objects.
type MetadataCacheConfig struct {
	BucketCacheBackend      `yaml:",inline"`
	TenantsListTTL          time.Duration `yaml:"tenants_list_ttl"`
	TenantBlocksListTTL     time.Duration `yaml:"tenant_blocks_list_ttl"`
	ChunksListTTL           time.Duration `yaml:"chunks_list_ttl"`
	MetafileExistsTTL       time.Duration `yaml:"metafile_exists_ttl"`
	MetafileDoesntExistTTL  time.Duration `yaml:"metafile_doesnt_exist_ttl"`
	MetafileContentTTL      time.Duration `yaml:"metafile_content_ttl"`
	MetafileMaxSize         int           `yaml:"metafile_max_size_bytes"`
	MetafileAttributesTTL   time.Duration `yaml:"metafile_attributes_ttl"`
	BlockIndexAttributesTTL time.Duration `yaml:"block_index_attributes_ttl"`
	BucketIndexContentTTL   time.Duration `yaml:"bucket_index_content_ttl"`
	BucketIndexMaxSize      int           `yaml:"bucket_index_max_size_bytes"`
	// PartitionedGroupsListTTL caches the listing of a tenant's
	// partitioned-groups/ folder for the compactor's cleanup
	// (-compactor.cleaner-caching-bucket-enabled); 0 does not.
	PartitionedGroupsListTTL time.Duration `yaml:"partitioned_groups_list_ttl"`
}

// RegisterFlags registers the -blocks-storage.bucket-store.metadata-cache.* flags.
func (c *MetadataCacheConfig) RegisterFlags(f *flag.FlagSet) {
	p := metadataCachePrefix + "."
	c.registerFlags(metadataCachePrefix, "metadata", f)
	f.DurationVar(&c.TenantsListTTL, p+"tenants-list-ttl", 15*time.Minute, "How long to cache list of tenants in the bucket.")
	f.DurationVar(&c.TenantBlocksListTTL, p+"tenant-blocks-list-ttl", 5*time.Minute, "How long to cache list of blocks for each tenant.")
	f.DurationVar(&c.ChunksListTTL, p+"chunks-list-ttl", 24*time.Hour, "How long to cache list of chunks for a block.")
	f.DurationVar(&c.MetafileExistsTTL, p+"metafile-exists-ttl", 2*time.Hour, "How long to cache information that block metafile exists. Also used for user deletion mark file.")
	f.DurationVar(&c.MetafileDoesntExistTTL, p+"metafile-doesnt-exist-ttl", 5*time.Minute, "How long to cache information that block metafile doesn't exist. Also used for user deletion mark file.")
	f.DurationVar(&c.MetafileContentTTL, p+"metafile-content-ttl", 24*time.Hour, "How long to cache content of the metafile.")
	f.IntVar(&c.MetafileMaxSize, p+"metafile-max-size-bytes", 1<<20, "Maximum size of metafile content to cache in bytes. Caching will be skipped if the content exceeds this size.")
	f.DurationVar(&c.MetafileAttributesTTL, p+"metafile-attributes-ttl", 168*time.Hour, "How long to cache attributes of the block metafile.")
	f.DurationVar(&c.BlockIndexAttributesTTL, p+"block-index-attributes-ttl", 168*time.Hour, "How long to cache attributes of the block index.")
	f.DurationVar(&c.BucketIndexContentTTL, p+"bucket-index-content-ttl", 5*time.Minute, "How long to cache content of the bucket index.")
	f.IntVar(&c.BucketIndexMaxSize, p+"bucket-index-max-size-bytes", 1<<20, "Maximum size of bucket index content to cache in bytes. Caching will be skipped if the content exceeds this size.")
	f.DurationVar(&c.PartitionedGroupsListTTL, p+"partitioned-groups-list-ttl", 0, "How long to cache list of partitioned groups for an user. 0 disables caching")
}

// Validate checks the metadata cache block.
func (c *MetadataCacheConfig) Validate() error {
	if err := c.validate(metadataCachePrefix); err != nil {
		return err
	}
	if c.Backend == "" {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"tenants-list-ttl", c.TenantsListTTL},
		{"tenant-blocks-list-ttl", c.TenantBlocksListTTL},
		{"chunks-list-ttl", c.ChunksListTTL},
		{"metafile-exists-ttl", c.MetafileExistsTTL},
		{"metafile-doesnt-exist-ttl", c.MetafileDoesntExistTTL},
		{"metafile-content-ttl", c.MetafileContentTTL},
		{"metafile-attributes-ttl", c.MetafileAttributesTTL},
		{"block-index-attributes-ttl", c.BlockIndexAttributesTTL},
		{"bucket-index-content-ttl", c.BucketIndexContentTTL},
		{"partitioned-groups-list-ttl", c.PartitionedGroupsListTTL},
	} {
		if d.v < 0 {
			return fmt.Errorf("-%s.%s must not be negative", metadataCachePrefix, d.name)
		}
	}
	if c.MetafileMaxSize < 0 {
		return fmt.Errorf("-%s.metafile-max-size-bytes must not be negative", metadataCachePrefix)
	}
	if c.BucketIndexMaxSize < 0 {
		return fmt.Errorf("-%s.bucket-index-max-size-bytes must not be negative", metadataCachePrefix)
	}
	return nil
}

// shortestTTL is the shortest positive metadata TTL.
func (c *MetadataCacheConfig) shortestTTL() time.Duration {
	var ttl time.Duration
	for _, d := range []time.Duration{c.TenantsListTTL, c.TenantBlocksListTTL, c.ChunksListTTL, c.MetafileExistsTTL,
		c.MetafileDoesntExistTTL, c.MetafileContentTTL, c.MetafileAttributesTTL, c.BlockIndexAttributesTTL, c.BucketIndexContentTTL, c.PartitionedGroupsListTTL} {
		if d > 0 && (ttl == 0 || d < ttl) {
			ttl = d
		}
	}
	return ttl
}

// validateCaches checks the three cache blocks.
func (c *Config) validateCaches() error {
	return errors.Join(c.IndexCache.Validate(), c.ChunksCache.Validate(), c.MetadataCache.Validate())
}

func splitComma(v string) []string {
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
