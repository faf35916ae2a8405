package compactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
)

// WithPartitionLimits gives each tenant's partition limits
// (-compactor.partition-index-size-bytes and
// -compactor.partition-series-count, 0 for no limit) to the partitioning
// compaction strategy.
func WithPartitionLimits(limits func(tenant string) (indexSizeBytes, seriesCount int64)) Option {
	return func(c *Compactor) { c.partitionLimits = limits }
}

// WithIngestionReplicationFactor is the ingesters' replication factor: a
// first-level group of blocks holds each series that many times, so the
// partitioning strategy multiplies the partition limits by it there.
func WithIngestionReplicationFactor(rf int) Option {
	return func(c *Compactor) { c.ingestionRF = rf }
}

// instanceID names this compactor in visit markers: its ring instance
// ID, as in Cortex.
func (c *Compactor) instanceID() string {
	if c.ring != nil {
		return c.ring.ID()
	}
	return "default-cleaner"
}

// errPartitionSkipped is a claimed partition this compactor is not to
// compact after all (another took it over, or its plan changed).
var errPartitionSkipped = errors.New("partition skipped")

// compactTenantPartitioned runs the partitioning strategy on a tenant:
// until no partition is left for it, it claims one partition of the
// tenant's plans and compacts it. Source blocks stay: the cleaner marks
// them for deletion once every partition of their plan is completed.
func (c *Compactor) compactTenantPartitioned(ctx context.Context, tenant string) error {
	logger := c.logger.With("user", tenant)
	updater := bucketindex.NewUpdater(c.compactionBkt, tenant, c.logger).WithConcurrency(c.cfg.BlockSyncConcurrency)
	tbkt := objstore.NewPrefixedBucket(c.compactionBkt, tenant)
	noCompact, err := noCompactMarked(ctx, tbkt)
	if err != nil {
		return fmt.Errorf("tenant %q: %w", tenant, err)
	}
	for ctx.Err() == nil {
		candidates, err := c.candidates(ctx, tenant, updater, noCompact)
		if err != nil {
			return err
		}
		metas, err := c.blockMetas(ctx, tenant, tbkt, candidates)
		if err != nil {
			return fmt.Errorf("tenant %q: %w", tenant, err)
		}
		jobs, err := c.partitionJobs(ctx, tenant, tbkt, metas, logger)
		if err != nil {
			return fmt.Errorf("tenant %q: %w", tenant, err)
		}
		var job *partitionJob
		for i := range jobs {
			ok, err := c.claimPartition(ctx, tbkt, jobs[i])
			if err != nil {
				return fmt.Errorf("tenant %q: claiming partition %d of partitioned group %d: %w", tenant, jobs[i].partition.PartitionID, jobs[i].group.PartitionedGroupID, err)
			}
			if ok {
				job = &jobs[i]
				break
			}
		}
		if job == nil {
			return nil
		}
		err = c.compactPartition(ctx, tenant, tbkt, *job, logger)
		switch {
		case errors.Is(err, errPartitionSkipped):
		case err != nil:
			var ooo outOfOrderChunksError
			if errors.As(err, &ooo) && c.cfg.SkipBlocksWithOutOfOrderChunksEnabled {
				if merr := c.markNoCompact(ctx, tbkt, ooo.id, noCompactReasonOutOfOrderChunks, "OutofOrderChunk: marking block with out-of-order series/chunks to as no compact to unblock compaction"); merr != nil {
					return errors.Join(err, merr)
				}
				logger.Warn("marked a block with out-of-order chunks no-compact", "block", ooo.id, "err", err)
				noCompact[ooo.id] = struct{}{}
				continue
			}
			c.m.compactionFailures.Inc()
			return err
		}
	}
	return ctx.Err()
}

// compactPartition is Cortex's partition compaction planner and the
// compaction it hands out: after -compactor.sharding-planner-delay (so
// that of two compactors that claimed the partition at once, the later
// claim is the one both read), it compacts the partition only if this
// compactor's claim still stands and the plan is the one claimed. While
// the partition compacts, its visit marker is refreshed every
// -compactor.compaction-visit-marker-file-update-interval, and it ends
// completed, or pending again after a failure.
func (c *Compactor) compactPartition(ctx context.Context, tenant string, tbkt objstore.Bucket, job partitionJob, logger *slog.Logger) error {
	logger = logger.With("partitioned_group_id", job.group.PartitionedGroupID, "partition_id", job.partition.PartitionID, "partition_count", job.group.PartitionCount)
	if c.cfg.ShardingPlannerDelay > 0 {
		t := time.NewTimer(c.cfg.ShardingPlannerDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	var m PartitionVisitMarker
	switch err := readVisitMarker(ctx, tbkt, partitionVisitMarkerPath(job.group.PartitionedGroupID, job.partition.PartitionID), &m); {
	case errors.Is(err, errVisitMarkerNotFound):
	case err != nil:
		return fmt.Errorf("tenant %q: %w", tenant, err)
	case m.Status == Completed:
		logger.Info("partition already completed")
		return errPartitionSkipped
	case m.CompactorID != c.instanceID() || m.PartitionID != job.partition.PartitionID || m.Status != Pending || m.expired(c.cfg.CompactionVisitMarkerTimeout, time.Now()):
		logger.Info("partition visited by another compactor", "compactor_id", m.CompactorID, "status", m.Status)
		return errPartitionSkipped
	}
	current, err := readPartitionedGroupInfo(ctx, tbkt, job.group.PartitionedGroupID)
	if errors.Is(err, errPartitionedGroupInfoNotFound) {
		logger.Info("partitioned group deleted by the cleaner; not compacting")
		return errPartitionSkipped
	}
	if err != nil {
		return fmt.Errorf("tenant %q: %w", tenant, err)
	}
	if current.CreationTime != job.group.CreationTime {
		logger.Info("partitioned group planned again since it was claimed; not compacting")
		return errPartitionSkipped
	}
	largest := c.cfg.BlockRanges.ToMilliseconds()[len(c.cfg.BlockRanges)-1]
	blocks := slices.Clone(job.blocks)
	slices.SortStableFunc(blocks, func(a, b *block.Meta) int { return cmpInt(a.MinTime, b.MinTime) })
	rangeStart := rangeStartOf(blocks[0].MinTime, largest)
	sources := make(bucketindex.Blocks, 0, len(blocks))
	for _, b := range blocks {
		if b.MinTime < rangeStart || b.MaxTime > rangeStart+largest {
			return fmt.Errorf("tenant %q: block %s with time range %d:%d is outside the largest expected range %d:%d", tenant, b.ULID, b.MinTime, b.MaxTime, rangeStart, rangeStart+largest)
		}
		sources = append(sources, &bucketindex.Block{ID: b.ULID, MinTime: b.MinTime, MaxTime: b.MaxTime})
	}

	ext, err := json.Marshal(CortexMetaExtensions{
		PartitionInfo: &PartitionInfo{
			PartitionedGroupID:           job.group.PartitionedGroupID,
			PartitionCount:               job.group.PartitionCount,
			PartitionID:                  job.partition.PartitionID,
			PartitionedGroupCreationTime: job.group.CreationTime,
		},
		TimeRange: job.group.RangeEnd - job.group.RangeStart,
	})
	if err != nil {
		return err
	}
	marker := &PartitionVisitMarker{PartitionedGroupID: job.group.PartitionedGroupID, PartitionedGroupCreationTime: job.group.CreationTime, PartitionID: job.partition.PartitionID}
	hb := startVisitHeartbeat(ctx, tbkt, logger, c.instanceID(), marker, c.cfg.CompactionVisitMarkerFileUpdateInterval, false)
	err = c.compactJob(ctx, tenant, tbkt, sources, jobOptions{
		populator:   shardedPopulator{count: uint64(job.group.PartitionCount), id: uint64(job.partition.PartitionID)},
		extensions:  ext,
		keepSources: true,
		logAttrs:    []any{"partitioned_group_id", job.group.PartitionedGroupID, "partition_id", job.partition.PartitionID, "partition_count", job.group.PartitionCount},
	})
	hb.finish(err)
	return err
}

// blockMetas returns the meta.json of each block, reading only those not
// read before (a block's meta.json never changes), and forgets those of
// the tenant's blocks no longer listed.
func (c *Compactor) blockMetas(ctx context.Context, tenant string, tbkt objstore.Bucket, blocks bucketindex.Blocks) ([]*block.Meta, error) {
	c.mu.Lock()
	cached := c.metas[tenant]
	c.mu.Unlock()
	next := make(map[ulid.ULID]*block.Meta, len(blocks))
	out := make([]*block.Meta, 0, len(blocks))
	for _, b := range blocks {
		m, ok := cached[b.ID]
		if !ok {
			var err error
			if m, err = block.ReadMeta(ctx, tbkt, b.ID); err != nil {
				return nil, err
			}
		}
		next[b.ID] = m
		out = append(out, m)
	}
	c.mu.Lock()
	c.metas[tenant] = next
	c.mu.Unlock()
	return out, nil
}

// shardedPopulator writes, of the series of the blocks it merges, those
// whose label hash modulo count is id: Prometheus' own block populator
// given each source index cut to the partition's series and symbols.
// The hash is labels.StableHash, as Prometheus' ShardedPostings uses; it
// is the labels hash Cortex partitions by (Cortex builds with slicelabels,
// where Labels.Hash is the same function), so partitions written by
// either agree.
type shardedPopulator struct {
	count, id uint64
}

func (s shardedPopulator) PopulateBlock(ctx context.Context, metrics *tsdb.CompactorMetrics, logger *slog.Logger, chunkPool chunkenc.Pool, mergeFunc storage.VerticalChunkSeriesMergeFunc,
	blocks []tsdb.BlockReader, meta *tsdb.BlockMeta, indexw tsdb.IndexWriter, chunkw tsdb.ChunkWriter, _ tsdb.IndexReaderPostingsFunc,
) error {
	sharded := make([]tsdb.BlockReader, len(blocks))
	for i, b := range blocks {
		sharded[i] = shardedBlock{BlockReader: b, count: s.count, id: s.id}
	}
	postings := func(ctx context.Context, r tsdb.IndexReader) index.Postings {
		if sr, ok := r.(*shardedIndex); ok {
			return index.NewListPostings(sr.refs)
		}
		return index.ErrPostings(fmt.Errorf("index reader %T is not a partition's", r))
	}
	return tsdb.DefaultBlockPopulator{}.PopulateBlock(ctx, metrics, logger, chunkPool, mergeFunc, sharded, meta, indexw, chunkw, postings)
}

// shardedBlock is a block whose index shows only one partition's series.
type shardedBlock struct {
	tsdb.BlockReader
	count, id uint64
}

func (b shardedBlock) Index() (tsdb.IndexReader, error) {
	ir, err := b.BlockReader.Index()
	if err != nil {
		return nil, err
	}
	k, v := index.AllPostingsKey()
	all, err := ir.Postings(context.Background(), k, v)
	if err != nil {
		_ = ir.Close()
		return nil, err
	}
	// One pass does what the index's ShardedPostings does (same hash)
	// and gathers the partition's symbols.
	p := ir.SortedPostings(all)
	var (
		refs    []storage.SeriesRef
		builder labels.ScratchBuilder
		symbols = map[string]struct{}{}
	)
	for p.Next() {
		if err := ir.Series(p.At(), &builder, nil); err != nil {
			_ = ir.Close()
			return nil, fmt.Errorf("reading series %d of block %s: %w", p.At(), b.Meta().ULID, err)
		}
		lbls := builder.Labels()
		if labels.StableHash(lbls)%b.count != b.id {
			continue
		}
		lbls.Range(func(l labels.Label) {
			symbols[l.Name] = struct{}{}
			symbols[l.Value] = struct{}{}
		})
		refs = append(refs, p.At())
	}
	if err := p.Err(); err != nil {
		_ = ir.Close()
		return nil, fmt.Errorf("sharding the postings of block %s: %w", b.Meta().ULID, err)
	}
	syms := make([]string, 0, len(symbols))
	for s := range symbols {
		syms = append(syms, s)
	}
	slices.Sort(syms)
	return &shardedIndex{IndexReader: ir, refs: refs, symbols: syms}, nil
}

// shardedIndex is an index reader whose symbol table is that of one
// partition's series, so that the partition's index holds no other
// series' strings.
type shardedIndex struct {
	tsdb.IndexReader
	refs    []storage.SeriesRef
	symbols []string
}

func (r *shardedIndex) Symbols() index.StringIter { return index.NewStringListIter(r.symbols) }
