package storegateway

import (
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/tenantfilter"
)

// Option configures a BucketStore beyond its Config.
type Option func(*options)

type options struct {
	tls       *tlsconfig.Loader
	metaCache cache.Cache
	tenants   *tenantfilter.Allowed
	users     users.Scanner
}

// WithUsersScanner lists the tenants to sync with s
// (-blocks-storage.users-scanner.*: the bucket listing or the compactor's
// user index) rather than by listing the bucket: its active and deleting
// tenants.
func WithUsersScanner(s users.Scanner) Option { return func(o *options) { o.users = s } }

// WithAllowedTenants restricts the tenants whose blocks the store syncs
// (Cortex's -store-gateway.enabled-tenants and -disabled-tenants): the
// others are neither listed nor loaded, and dropped if they were.
func WithAllowedTenants(a *tenantfilter.Allowed) Option { return func(o *options) { o.tenants = a } }

// WithTLS gives the loader of the memcached links' certificates
// (-blocks-storage.bucket-store.*-cache.memcached.tls-*) and redis links
// (*-cache.redis.tls-*), so that they reload with every other link's.
// Without it, a memcached or redis TLS link reads its files once.
func WithTLS(l *tlsconfig.Loader) Option { return func(o *options) { o.tls = l } }

// WithMetadataCache makes the store (or NewMetadataCachingBucket) read
// through c as its metadata cache instead of one of its own: a querier and
// a store-gateway of one process then see the same bucket index and block
// lists. With separate in-memory caches, one could see blocks the other
// does not for as long as a cached bucket index lives
// (-blocks-storage.bucket-store.metadata-cache.bucket-index-content-ttl),
// and the querier's consistency check would refuse queries meanwhile.
func WithMetadataCache(c cache.Cache) Option { return func(o *options) { o.metaCache = c } }

// NewInMemoryMetadataCache is the in-memory metadata cache cfg describes,
// to be shared with WithMetadataCache; nil when cfg's backend is not
// inmemory.
func NewInMemoryMetadataCache(cfg MetadataCacheConfig) cache.Cache {
	if cfg.Backend != CacheBackendInMemory {
		return nil
	}
	c, _ := newBucketCache("metadata-cache", metadataCachePrefix, cfg.BucketCacheBackend, 0, nil, nil, nil)
	return c
}

// storeBucket is the bucket a BucketStore reads through: the caching
// bucket of the chunks and metadata caches, carrying the index cache to
// the blocks the store loads.
type storeBucket struct {
	objstore.BucketReader
	indexCache *indexCache // nil: none
	opts       options
	// owned are the caches built for this store, stopped with it.
	owned []cache.Cache
}

// stopCaches stops the caches that work in the background (Redis).
func (sb *storeBucket) stopCaches() {
	for _, c := range sb.owned {
		if s, ok := c.(interface{ Stop() }); ok {
			s.Stop()
		}
	}
}

// newStoreBucket builds the caches cfg configures around bkt.
func newStoreBucket(cfg Config, bkt objstore.BucketReader, opts []Option, logger *slog.Logger, reg prometheus.Registerer) (*storeBucket, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	reg = withComponent(reg, "store-gateway")
	ic, err := newIndexCache(cfg.IndexCache, o.tls, logger, reg)
	if err != nil {
		return nil, err
	}
	cb, err := newCachingBucket(readerBucket{bkt}, cfg.ChunksCache, cfg.MetadataCache, o, logger, reg)
	if err != nil {
		return nil, err
	}
	sb := &storeBucket{BucketReader: bkt, indexCache: ic, opts: o}
	if ic != nil {
		sb.owned = append(sb.owned, ic.c)
	}
	if cb != nil {
		sb.BucketReader = cb
		sb.owned = append(sb.owned, cb.chunks)
		if o.metaCache == nil { // not one shared with the querier
			sb.owned = append(sb.owned, cb.meta)
		}
	}
	return sb, nil
}

// NewMetadataCachingBucket wraps bkt with the metadata cache of cfg (the
// -blocks-storage.bucket-store.metadata-cache.* flags), as the store-gateway
// does, for other readers of the bucket such as the querier. It returns bkt
// itself when no backend is set. component ("querier") labels the cache's
// metrics, as Cortex does, apart from the store-gateway's in one process;
// tls may be nil (memcached TLS files are then read once).
func NewMetadataCachingBucket(cfg MetadataCacheConfig, bkt objstore.Bucket, component string, tls *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (objstore.Bucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{tls: tls}
	for _, opt := range opts {
		opt(&o)
	}
	cb, err := newCachingBucket(bkt, ChunksCacheConfig{}, cfg, o, logger, withComponent(reg, component))
	if err != nil || cb == nil {
		return bkt, err
	}
	return cb, nil
}

// newCachingBucket returns nil when neither cache has a backend.
func newCachingBucket(bkt objstore.Bucket, chunks ChunksCacheConfig, meta MetadataCacheConfig, o options, logger *slog.Logger, reg prometheus.Registerer) (*cachingBucket, error) {
	// A multi-level cache keeps what it backfills as long as its items
	// live: a chunk subrange's TTL, and for metadata the shortest
	// metadata TTL, so that no backfilled item outlives what it was
	// stored for.
	chunksCache, err := newBucketCache("chunks-cache", chunksCachePrefix, chunks.BucketCacheBackend, chunks.SubrangeTTL, o.tls, logger, reg)
	if err != nil {
		return nil, err
	}
	metaCache := o.metaCache
	if metaCache == nil {
		if metaCache, err = newBucketCache("metadata-cache", metadataCachePrefix, meta.BucketCacheBackend, meta.shortestTTL(), o.tls, logger, reg); err != nil {
			return nil, err
		}
	}
	if chunksCache == nil && metaCache == nil {
		return nil, nil
	}
	return &cachingBucket{
		Bucket:   bkt,
		chunks:   chunksCache,
		chunkCfg: chunks,
		meta:     metaCache,
		metaCfg:  meta,
		m:        newBucketCacheMetrics(reg),
	}, nil
}

// newBucketCache returns the cache of a backend block, nil for none: a
// multi-level cache when it names several backends, whose backfilled
// items live backfillTTL.
func newBucketCache(name, prefix string, b BucketCacheBackend, backfillTTL time.Duration, tls *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (cache.Cache, error) {
	bs, err := backends(prefix+".backend", b.Backend)
	if err != nil || len(bs) == 0 {
		return nil, err
	}
	levels := make([]cache.Cache, 0, len(bs))
	for _, backend := range bs {
		switch backend {
		case CacheBackendInMemory:
			levels = append(levels, cache.NewInMemory(name, int64(min(b.InMemory.MaxSizeBytes, 1<<62)), defaultMaxItemSize))
		case CacheBackendMemcached:
			c, err := newMemcached(name, prefix+".memcached", b.Memcached, tls, logger, reg)
			if err != nil {
				return nil, err
			}
			levels = append(levels, c)
		case CacheBackendRedis:
			c, err := newRedis(name, prefix+".redis", b.Redis, tls, logger, reg)
			if err != nil {
				return nil, err
			}
			levels = append(levels, c)
		}
	}
	return cache.NewMultiLevel(name, strings.ReplaceAll(name, "-", "_"), b.MultiLevel, backfillTTL, reg, levels...), nil
}

// defaultMaxItemSize is Cortex's bound on one in-memory item.
const defaultMaxItemSize = 128 << 20

func newMemcached(name, prefix string, cfg cache.MemcachedConfig, l *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (*cache.Memcached, error) {
	logger, tls, err := cacheTLSClient(prefix, cfg.TLS, l, logger)
	if err != nil {
		return nil, err
	}
	return cache.NewMemcached(name, cfg, tls, logger, reg), nil
}

func newRedis(name, prefix string, cfg cache.RedisConfig, l *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (*cache.Redis, error) {
	logger, tls, err := cacheTLSClient(prefix, cfg.TLS, l, logger)
	if err != nil {
		return nil, err
	}
	return cache.NewRedis(name, prefix, cfg, tls, logger, reg)
}

// cacheTLSClient is the TLS of a cache client's link (nil: plaintext),
// reloaded by l, or by a loader of its own when the process gave none.
func cacheTLSClient(prefix string, cfg tlsconfig.ClientConfig, l *tlsconfig.Loader, logger *slog.Logger) (*slog.Logger, *tlsconfig.Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if l == nil && cfg.TLSOn() {
		l = tlsconfig.NewLoader(logger, nil)
	}
	tls, err := tlsconfig.NewClient(prefix, cfg, l)
	return logger, tls, err
}

// withComponent labels the cache metrics with the component reading
// through them, as Cortex does.
func withComponent(reg prometheus.Registerer, component string) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"component": component}, reg)
}
