package cortex

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/compactor"
	"github.com/cortex-tls/cortex/pkg/kv"
	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/storegateway"
)

// initCompactor merges each tenant's blocks in the bucket into
// -compactor.block-ranges, applies each tenant's retention (the
// -compactor.blocks-retention-period limit, overridable per tenant in the
// runtime configuration) and deletion delays, deletes the tenants marked
// for deletion, and keeps the bucket index current: for every tenant, or
// with -compactor.sharding-enabled for those it owns on the compactor ring.
func (t *Cortex) initCompactor() (services.Service, error) {
	bkt, err := t.blocksBucketFor(Compactor)
	if err != nil {
		return nil, err
	}
	retention := func(tenant string) time.Duration {
		return time.Duration(t.Overrides.For(tenant).CompactorBlocksRetentionPeriod)
	}
	logger := t.Logger.With("component", Compactor)
	shardSize := func(tenant string) float64 { return t.Overrides.For(tenant).CompactorTenantShardSize }
	partitionLimits := func(tenant string) (int64, int64) {
		l := t.Overrides.For(tenant)
		return l.CompactorPartitionIndexSizeBytes, l.CompactorPartitionSeriesCount
	}
	opts := []compactor.Option{compactor.WithRetention(retention), compactor.WithTenantShardSize(shardSize),
		compactor.WithPartitionLimits(partitionLimits), compactor.WithIngestionReplicationFactor(t.Cfg.Ingester.LifecyclerConfig.RingConfig.ReplicationFactor)}
	if t.Cfg.BlocksStorage.UsersScanner.Strategy == users.StrategyUserIndex {
		opts = append(opts, compactor.WithUserIndex(users.NewIndexUpdater(bkt, t.Registry), t.Cfg.BlocksStorage.UsersScanner.UpdateInterval))
	}
	if t.Cfg.Compactor.ShardingEnabled {
		m, err := t.compactorRingMember(logger)
		if err != nil {
			return nil, err
		}
		opts = append(opts, compactor.WithRing(m))
	}
	cachingOpt, err := t.compactorCachingBuckets(bkt)
	if err != nil {
		return nil, err
	}
	opts = append(opts, cachingOpt)
	c, err := compactor.New(t.Cfg.Compactor, bkt, logger, t.Registry, opts...)
	if err != nil {
		return nil, err
	}
	t.API.RegisterCompactor(c.RingHandler())
	return c, nil
}

// compactorCachingBuckets wraps the compactor's bucket in the metadata
// cache of -blocks-storage.bucket-store.metadata-cache.* for the
// compaction (-compactor.caching-bucket-enabled) and the cleanup
// (-compactor.cleaner-caching-bucket-enabled), each a cache of its own
// with its metrics labelled component="compactor" or "cleaner", as
// Cortex's.
func (t *Cortex) compactorCachingBuckets(bkt objstore.Bucket) (compactor.Option, error) {
	var compaction, cleanup objstore.Bucket
	var err error
	mcfg := t.Cfg.BlocksStorage.BucketStore.MetadataCache
	if t.Cfg.Compactor.CleanerCachingBucketEnabled {
		if cleanup, err = storegateway.NewCompactorCachingBucket(mcfg, true, bkt, "cleaner", t.TLS, t.Logger, t.Registry); err != nil {
			return nil, fmt.Errorf("-compactor.cleaner-caching-bucket-enabled: %w", err)
		}
	}
	if t.Cfg.Compactor.CachingBucketEnabled {
		if compaction, err = storegateway.NewCompactorCachingBucket(mcfg, false, bkt, Compactor, t.TLS, t.Logger, t.Registry); err != nil {
			return nil, fmt.Errorf("-compactor.caching-bucket-enabled: %w", err)
		}
	}
	return compactor.WithCachingBuckets(compaction, cleanup), nil
}

// compactorRingMember is this compactor's membership in the compactor
// ring, advertising the gRPC server as the ingester does (advertisedGRPC)
// unless -compactor.ring.instance-addr and -instance-port say otherwise.
func (t *Cortex) compactorRingMember(logger *slog.Logger) (*shardring.Member, error) {
	cfg := t.Cfg.Compactor.ShardingRing.MemberConfig()
	reg := prometheus.WrapRegistererWithPrefix("cortex_", t.Registry)
	if cfg.KVStore.Store == "memberlist" && t.gossip == nil {
		return nil, fmt.Errorf("compactor ring: -%s.store=memberlist but the gossip KV is not running", compactor.RingFlagPrefix)
	}
	store, err := kv.NewClient(cfg.KVStore, ring.GetCodec(), t.gossip, compactor.RingName+"-ring", reg, t.Logger)
	if err != nil {
		return nil, fmt.Errorf("compactor ring: -%s.store=%s: %w", compactor.RingFlagPrefix, cfg.KVStore.Store, err)
	}
	host, port := t.advertisedGRPC()
	// Registered ACTIVE, as Cortex's compactors: a compactor has nothing
	// to load before it can take its tenants.
	return shardring.NewMember(cfg, compactor.RingName, compactor.RingKey, store, host, port, ring.ACTIVE, logger, reg)
}
