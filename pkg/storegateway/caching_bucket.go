package storegateway

// The caching bucket is written here rather than taken from Thanos'
// pkg/store/cache (which Cortex uses): that module brings its own
// Prometheus version, go-kit logging and a memcached client that builds
// its TLS setup from file paths once, which would bypass pkg/tlsconfig and
// its certificate reload. What Cortex configures of it (subrange caching of
// chunk reads, cached listings, existence and content of small objects)
// is small enough to keep here, under Cortex's flags and Thanos' metric
// names.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/cache"
)

// Operation label values, objstore's.
const (
	opIter       = "iter"
	opGet        = "get"
	opGetRange   = "get_range"
	opExists     = "exists"
	opAttributes = "attributes"
)

// partitionedGroupsDirname is the tenant folder of the partitioning
// compactor's plans, whose listing the compactor's cleanup may cache.
const partitionedGroupsDirname = "partitioned-groups"

var (
	chunkSegmentRe = regexp.MustCompile(`^.*/chunks/\d+$`)
	tenantDirRe    = regexp.MustCompile(`^[^/]+/?$`)
	bucketIndexRe  = regexp.MustCompile(`^[^/]+/bucket-index\.json\.gz$`)
)

func isChunkSegment(name string) bool { return chunkSegmentRe.MatchString(name) }

func isMetafile(name string) bool {
	return strings.HasSuffix(name, "/"+metaFilename) || strings.HasSuffix(name, "/"+deletionMarkFilename)
}

func isBlockIndex(name string) bool { return strings.HasSuffix(name, "/"+indexFilename) }

// errCachedNotFound is a Get of an object the metadata cache knows to be
// absent; IsObjNotFoundErr recognises it.
var errCachedNotFound = errors.New("object not found (cached)")

// cachingBucket caches reads of a bucket: chunk segment ranges in the
// chunks cache, listings and block metadata files in the metadata cache.
// Either cache may be nil.
type cachingBucket struct {
	objstore.Bucket
	chunks   cache.Cache
	chunkCfg ChunksCacheConfig
	meta     cache.Cache
	metaCfg  MetadataCacheConfig
	// metafiles says which objects are the metadata files whose
	// existence, content and attributes are cached; nil: isMetafile.
	metafiles func(name string) bool
	m         *bucketCacheMetrics
}

func (cb *cachingBucket) isMetafile(name string) bool {
	if cb.metafiles != nil {
		return cb.metafiles(name)
	}
	return isMetafile(name)
}

type bucketCacheMetrics struct {
	requests, hits *prometheus.CounterVec
	requestedBytes *prometheus.CounterVec
	fetchedBytes   *prometheus.CounterVec
}

func newBucketCacheMetrics(reg prometheus.Registerer) *bucketCacheMetrics {
	f := promauto.With(reg)
	return &bucketCacheMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_store_bucket_cache_operation_requests_total",
			Help: "Number of requested operations matching given config.",
		}, []string{"operation", "config"}),
		hits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_store_bucket_cache_operation_hits_total",
			Help: "Number of operations served from cache for given config.",
		}, []string{"operation", "config"}),
		requestedBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_store_bucket_cache_getrange_requested_bytes_total",
			Help: "Total number of bytes requested via GetRange.",
		}, []string{"config"}),
		fetchedBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_store_bucket_cache_getrange_fetched_bytes_total",
			Help: "Total number of bytes fetched because of GetRange operation. Data from bucket is then stored to cache.",
		}, []string{"origin", "config"}),
	}
}

func (cb *cachingBucket) request(op, cfg string) { cb.m.requests.WithLabelValues(op, cfg).Inc() }
func (cb *cachingBucket) hit(op, cfg string)     { cb.m.hits.WithLabelValues(op, cfg).Inc() }

// IsObjNotFoundErr implements objstore.BucketReader.
func (cb *cachingBucket) IsObjNotFoundErr(err error) bool {
	return errors.Is(err, errCachedNotFound) || cb.Bucket.IsObjNotFoundErr(err)
}

// iterConfig names the listing config of dir, with its TTL; "" if the
// listing is not cached.
func (cb *cachingBucket) iterConfig(dir string) (string, time.Duration) {
	switch {
	case dir == "":
		return "tenants-iter", cb.metaCfg.TenantsListTTL
	case tenantDirRe.MatchString(dir):
		return "tenant-blocks-iter", cb.metaCfg.TenantBlocksListTTL
	case strings.HasSuffix(strings.TrimSuffix(dir, objstore.DirDelim), "/"+chunksDirname):
		return "chunks-iter", cb.metaCfg.ChunksListTTL
	case strings.HasSuffix(strings.TrimSuffix(dir, objstore.DirDelim), "/"+partitionedGroupsDirname):
		return "partitioned-groups-iter", cb.metaCfg.PartitionedGroupsListTTL
	}
	return "", 0
}

// Iter implements objstore.BucketReader: listings of tenants, of a
// tenant's blocks and of a block's chunks are cached. A listing is stored
// only once complete.
func (cb *cachingBucket) Iter(ctx context.Context, dir string, f func(string) error, options ...objstore.IterOption) error {
	cfg, ttl := cb.iterConfig(dir)
	if cb.meta == nil || cfg == "" || ttl <= 0 || len(options) > 0 {
		return cb.Bucket.Iter(ctx, dir, f, options...)
	}
	cb.request(opIter, cfg)
	key := "iter:" + dir
	if v, ok := cb.meta.Fetch(ctx, []string{key})[key]; ok {
		var names []string
		if err := json.Unmarshal(v, &names); err == nil {
			cb.hit(opIter, cfg)
			for _, n := range names {
				if err := f(n); err != nil {
					return err
				}
			}
			return nil
		}
	}
	names := []string{}
	err := cb.Bucket.Iter(ctx, dir, func(n string) error {
		names = append(names, n)
		return f(n)
	})
	if err == nil {
		if v, jerr := json.Marshal(names); jerr == nil {
			cb.meta.Store(map[string][]byte{key: v}, ttl)
		}
	}
	return err
}

// Exists implements objstore.BucketReader: the existence of metadata
// files is cached, with TTLs for either answer.
func (cb *cachingBucket) Exists(ctx context.Context, name string) (bool, error) {
	if cb.meta == nil || !cb.isMetafile(name) || (cb.metaCfg.MetafileExistsTTL <= 0 && cb.metaCfg.MetafileDoesntExistTTL <= 0) {
		return cb.Bucket.Exists(ctx, name)
	}
	const cfg = "metafile"
	cb.request(opExists, cfg)
	key := "exists:" + name
	if v, ok := cb.meta.Fetch(ctx, []string{key})[key]; ok {
		if b, err := strconv.ParseBool(string(v)); err == nil {
			cb.hit(opExists, cfg)
			return b, nil
		}
	}
	ok, err := cb.Bucket.Exists(ctx, name)
	if err == nil {
		cb.storeExists(name, ok, cb.metaCfg.MetafileExistsTTL, cb.metaCfg.MetafileDoesntExistTTL)
	}
	return ok, err
}

func (cb *cachingBucket) storeExists(name string, exists bool, existsTTL, doesntExistTTL time.Duration) {
	ttl := existsTTL
	if !exists {
		ttl = doesntExistTTL
	}
	if ttl > 0 {
		cb.meta.Store(map[string][]byte{"exists:" + name: []byte(strconv.FormatBool(exists))}, ttl)
	}
}

// Get implements objstore.BucketReader: metadata files (with their
// absence) and bucket indexes are cached up to their maximum sizes.
func (cb *cachingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if cb.meta == nil {
		return cb.Bucket.Get(ctx, name)
	}
	var (
		cfg                       string
		maxSize                   int
		contentTTL                time.Duration
		existsTTL, doesntExistTTL time.Duration
	)
	switch {
	case cb.isMetafile(name):
		cfg, maxSize, contentTTL = "metafile", cb.metaCfg.MetafileMaxSize, cb.metaCfg.MetafileContentTTL
		existsTTL, doesntExistTTL = cb.metaCfg.MetafileExistsTTL, cb.metaCfg.MetafileDoesntExistTTL
	case bucketIndexRe.MatchString(name):
		// The index changes in place: its absence is not cached.
		cfg, maxSize, contentTTL = "bucket-index", cb.metaCfg.BucketIndexMaxSize, cb.metaCfg.BucketIndexContentTTL
	default:
		return cb.Bucket.Get(ctx, name)
	}
	if contentTTL <= 0 {
		return cb.Bucket.Get(ctx, name)
	}
	cb.request(opGet, cfg)
	contentKey, existsKey := "content:"+name, "exists:"+name
	keys := []string{contentKey}
	if doesntExistTTL > 0 {
		keys = append(keys, existsKey)
	}
	found := cb.meta.Fetch(ctx, keys)
	if v, ok := found[contentKey]; ok {
		cb.hit(opGet, cfg)
		return io.NopCloser(bytes.NewReader(v)), nil
	}
	if string(found[existsKey]) == "false" {
		cb.hit(opGet, cfg)
		return nil, fmt.Errorf("%s: %w", name, errCachedNotFound)
	}
	rc, err := cb.Bucket.Get(ctx, name)
	if err != nil {
		if cb.Bucket.IsObjNotFoundErr(err) {
			cb.storeExists(name, false, existsTTL, doesntExistTTL)
		}
		return nil, err
	}
	// Read up to one byte past the limit: a larger object is handed on
	// from what was read and the rest of the stream, uncached.
	head, err := io.ReadAll(io.LimitReader(rc, int64(maxSize)+1))
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	if len(head) > maxSize {
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), rc), rc}, nil
	}
	_ = rc.Close()
	cb.meta.Store(map[string][]byte{contentKey: head}, contentTTL)
	cb.storeExists(name, true, existsTTL, doesntExistTTL)
	return io.NopCloser(bytes.NewReader(head)), nil
}

// attributesConfig names the attributes config of name, its cache and TTL.
func (cb *cachingBucket) attributesConfig(name string) (string, cache.Cache, time.Duration) {
	switch {
	case cb.chunks != nil && isChunkSegment(name):
		return "chunks", cb.chunks, cb.chunkCfg.AttributesTTL
	case cb.meta != nil && cb.isMetafile(name):
		return "metafile", cb.meta, cb.metaCfg.MetafileAttributesTTL
	case cb.meta != nil && isBlockIndex(name):
		return "block-index", cb.meta, cb.metaCfg.BlockIndexAttributesTTL
	}
	return "", nil, 0
}

// Attributes implements objstore.BucketReader.
func (cb *cachingBucket) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	cfg, c, ttl := cb.attributesConfig(name)
	if c == nil || ttl <= 0 {
		return cb.Bucket.Attributes(ctx, name)
	}
	return cb.cachedAttributes(ctx, name, cfg, c, ttl)
}

func (cb *cachingBucket) cachedAttributes(ctx context.Context, name, cfg string, c cache.Cache, ttl time.Duration) (objstore.ObjectAttributes, error) {
	cb.request(opAttributes, cfg)
	key := "attrs:" + name
	if v, ok := c.Fetch(ctx, []string{key})[key]; ok {
		var attrs objstore.ObjectAttributes
		if err := json.Unmarshal(v, &attrs); err == nil {
			cb.hit(opAttributes, cfg)
			return attrs, nil
		}
	}
	attrs, err := cb.Bucket.Attributes(ctx, name)
	if err != nil {
		return attrs, err
	}
	if v, err := json.Marshal(attrs); err == nil {
		c.Store(map[string][]byte{key: v}, ttl)
	}
	return attrs, nil
}

// GetRange implements objstore.BucketReader: chunk segment ranges are
// read as aligned subranges of -chunks-cache.subrange-size, each cached on
// its own, so that overlapping reads of different queries share entries.
// Missing subranges are read from the bucket in at most
// -chunks-cache.max-get-range-requests requests.
func (cb *cachingBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if cb.chunks == nil || !isChunkSegment(name) || off < 0 || length <= 0 {
		return cb.Bucket.GetRange(ctx, name, off, length)
	}
	const cfg = "chunks"
	cb.request(opGetRange, cfg)
	cb.m.requestedBytes.WithLabelValues(cfg).Add(float64(length))
	attrs, err := cb.cachedAttributes(ctx, name, cfg, cb.chunks, cb.chunkCfg.AttributesTTL)
	if err != nil {
		return nil, err
	}
	size := attrs.Size
	if off >= size {
		return cb.Bucket.GetRange(ctx, name, off, length)
	}
	end := min(off+length, size)
	ss := cb.chunkCfg.SubrangeSize
	first := off / ss * ss
	n := int((end - first + ss - 1) / ss)
	keys := make([]string, n)
	for i := range n {
		start := first + int64(i)*ss
		keys[i] = subrangeKey(name, start, min(start+ss, size))
	}
	parts := cb.chunks.Fetch(ctx, keys)
	var cached int64
	var missing []int
	for i, k := range keys {
		start := first + int64(i)*ss
		if v, ok := parts[k]; ok && int64(len(v)) == min(start+ss, size)-start {
			cached += int64(len(v))
			continue
		}
		delete(parts, k)
		missing = append(missing, i)
	}
	cb.m.fetchedBytes.WithLabelValues("cache", cfg).Add(float64(cached))
	if len(missing) == 0 {
		cb.hit(opGetRange, cfg)
	}
	for _, r := range mergeRuns(missing, cb.chunkCfg.MaxGetRangeRequests) {
		start := first + int64(r[0])*ss
		stop := min(first+int64(r[1]+1)*ss, size)
		buf, err := cb.readRange(ctx, name, start, stop-start)
		if err != nil {
			return nil, err
		}
		cb.m.fetchedBytes.WithLabelValues("bucket", cfg).Add(float64(len(buf)))
		store := map[string][]byte{}
		for i := r[0]; i <= r[1]; i++ {
			s := int64(i)*ss - (start - first)
			e := min(s+ss, int64(len(buf)))
			if s >= e {
				break
			}
			parts[keys[i]] = buf[s:e]
			if e-s == min(first+int64(i+1)*ss, size)-(first+int64(i)*ss) {
				store[keys[i]] = buf[s:e]
			}
		}
		cb.chunks.Store(store, cb.chunkCfg.SubrangeTTL)
	}
	out := make([]byte, 0, end-off)
	for i, k := range keys {
		p := parts[k]
		start := first + int64(i)*ss
		lo := max(off-start, 0)
		hi := min(end-start, int64(len(p)))
		if lo >= hi {
			// The object is shorter than its attributes said: hand on what
			// there is, as a short read.
			break
		}
		out = append(out, p[lo:hi]...)
		if hi < int64(len(p)) || int64(len(p)) < min(start+ss, size)-start {
			break
		}
	}
	return io.NopCloser(bytes.NewReader(out)), nil
}

func subrangeKey(name string, start, end int64) string {
	return fmt.Sprintf("subrange:%s:%d:%d", name, start, end)
}

func (cb *cachingBucket) readRange(ctx context.Context, name string, off, length int64) ([]byte, error) {
	rc, err := cb.Bucket.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close() //nolint:errcheck // read-only: the read's error is the one that matters
	return io.ReadAll(rc)
}

// mergeRuns groups sorted indexes into runs of consecutive ones, [first,
// last], merging the runs closest together while there are more than
// maxRuns (maxRuns <= 0: no limit).
func mergeRuns(idx []int, maxRuns int) [][2]int {
	var runs [][2]int
	for _, i := range idx {
		if n := len(runs); n > 0 && runs[n-1][1] == i-1 {
			runs[n-1][1] = i
			continue
		}
		runs = append(runs, [2]int{i, i})
	}
	for maxRuns > 0 && len(runs) > maxRuns {
		best := 0
		for i := 1; i < len(runs)-1; i++ {
			if runs[i+1][0]-runs[i][1] < runs[best+1][0]-runs[best][1] {
				best = i
			}
		}
		runs[best][1] = runs[best+1][1]
		runs = append(runs[:best+1], runs[best+2:]...)
	}
	return runs
}

// readerBucket presents a BucketReader as a Bucket whose writes fail, so
// that one caching wrapper serves both.
type readerBucket struct{ objstore.BucketReader }

var errReadOnly = errors.New("read-only bucket")

func (readerBucket) Close() error                   { return nil }
func (readerBucket) Provider() objstore.ObjProvider { return "" }
func (readerBucket) Name() string                   { return "" }
func (readerBucket) Upload(context.Context, string, io.Reader, ...objstore.ObjectUploadOption) error {
	return errReadOnly
}
func (readerBucket) Delete(context.Context, string) error { return errReadOnly }
