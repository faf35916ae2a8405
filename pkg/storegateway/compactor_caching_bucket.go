package storegateway

import (
	"log/slog"
	"path"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	tsdbblock "github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// NewCompactorCachingBucket wraps bkt with the metadata cache of cfg
// (-blocks-storage.bucket-store.metadata-cache.*) for the compactor, as
// Cortex's -compactor.caching-bucket-enabled (cleaner false) and
// -compactor.cleaner-caching-bucket-enabled (cleaner true) do. It returns
// bkt itself when cfg has no backend. Writes go to bkt.
//
// What is cached is what cannot mislead the compactor, the TTLs of the
// rest being zero:
//   - never a block's deletion mark (in its folder or in markers/), nor the
//     listing of markers/: a compaction must not merge a block already
//     marked, and the cleanup must see each mark to delete its block;
//   - never a tenant's list of blocks, nor the list of tenants: a cached
//     listing still names the blocks deleted since, whose deletion marks
//     went with them, and the compaction would plan them again (Cortex
//     caches both lists for the compaction);
//   - the compaction caches the existence, content and attributes of
//     meta.json (written once) and of the tenant deletion mark, which it
//     only checks to skip a tenant, and the bucket index's content;
//   - the cleanup, which decides what is deleted, caches only the content
//     and attributes of meta.json: not the tenant deletion mark, whose
//     finish time it writes, nor whether a meta.json exists; and, with
//     -blocks-storage.bucket-store.metadata-cache.partitioned-groups-list-ttl,
//     the listing of a tenant's partitioned-groups/ folder, as Cortex's
//     cleaner: a plan written since is seen a TTL later, and one deleted
//     since is skipped when it cannot be read.
//
// component ("compactor", "cleaner") labels the cache's metrics, as Cortex
// does; tls may be nil (memcached TLS files are then read once).
func NewCompactorCachingBucket(cfg MetadataCacheConfig, cleaner bool, bkt objstore.Bucket, component string, tls *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (objstore.Bucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = compactorMetadataCacheConfig(cfg, cleaner)
	cb, err := newCachingBucket(bkt, ChunksCacheConfig{}, cfg, options{tls: tls}, logger, withComponent(reg, component))
	if err != nil || cb == nil {
		return bkt, err
	}
	cb.metafiles = isBlockMetaFile
	if !cleaner {
		cb.metafiles = func(name string) bool { return isBlockMetaFile(name) || isTenantDeletionMark(name) }
	}
	return cb, nil
}

// compactorMetadataCacheConfig is cfg with the TTLs of what the compactor
// (or its cleanup) must not cache set to zero.
func compactorMetadataCacheConfig(cfg MetadataCacheConfig, cleaner bool) MetadataCacheConfig {
	cfg.TenantsListTTL = 0
	cfg.TenantBlocksListTTL = 0
	cfg.ChunksListTTL = 0
	cfg.BlockIndexAttributesTTL = 0
	if !cleaner {
		// As Cortex: only the cleanup lists the partitioned groups
		// through the cache.
		cfg.PartitionedGroupsListTTL = 0
	}
	if cleaner {
		cfg.MetafileExistsTTL = 0
		cfg.MetafileDoesntExistTTL = 0
		cfg.BucketIndexContentTTL = 0
	}
	return cfg
}

// isBlockMetaFile matches <tenant>/<block>/meta.json.
func isBlockMetaFile(name string) bool {
	if path.Base(name) != tsdbblock.MetaFilename {
		return false
	}
	_, ok := tsdbblock.IsBlockDir(path.Base(path.Dir(name)))
	return ok
}

// isTenantDeletionMark matches the tenant deletion mark, in either of the
// places Cortex writes it.
func isTenantDeletionMark(name string) bool {
	return path.Base(name) == bucketindex.TenantDeletionMarkFilename &&
		(strings.HasSuffix(path.Dir(name), "/"+tsdbblock.MarkersDirname) || strings.HasPrefix(name, bucketindex.GlobalMarkersDir+"/"))
}
