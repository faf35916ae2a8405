package compactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

// Compaction strategies (-compactor.compaction-strategy).
const (
	CompactionStrategyDefault      = "default"
	CompactionStrategyPartitioning = "partitioning"
)

// PartitionInfo is Cortex's partition_info in a block's meta.json
// (thanos.extensions): the partition of a partitioned group the block is.
type PartitionInfo struct {
	PartitionedGroupID           uint32 `json:"partitioned_group_id"`
	PartitionCount               int    `json:"partition_count"`
	PartitionID                  int    `json:"partition_id"`
	PartitionedGroupCreationTime int64  `json:"partitioned_group_creation_time"`
}

// CortexMetaExtensions is what Cortex writes in meta.json's
// thanos.extensions: the block's partition and the time range (in
// milliseconds) of the compaction that wrote it.
type CortexMetaExtensions struct {
	PartitionInfo *PartitionInfo `json:"partition_info,omitempty"`
	TimeRange     int64          `json:"time_range,omitempty"`
}

// defaultPartitionInfo is the partition of a block written without one:
// the only partition of one, holding every series.
var defaultPartitionInfo = PartitionInfo{PartitionCount: 1}

// metaExtensions reads a block's Cortex extensions; nil when it has none.
// As in Cortex, extensions without partition_info mean the default one.
func metaExtensions(m *block.Meta) (*CortexMetaExtensions, error) {
	if len(m.Thanos.Extensions) == 0 || string(m.Thanos.Extensions) == "null" {
		return nil, nil
	}
	pi := defaultPartitionInfo
	ext := &CortexMetaExtensions{PartitionInfo: &pi}
	if err := json.Unmarshal(m.Thanos.Extensions, ext); err != nil {
		return nil, fmt.Errorf("block %s: parsing meta.json thanos.extensions: %w", m.ULID, err)
	}
	return ext, nil
}

// blockGroup is blocks within one aligned time range [rangeStart, rangeEnd).
type blockGroup struct {
	rangeStart, rangeEnd int64
	blocks               []*block.Meta
}

func (g blockGroup) rangeLength() int64 { return g.rangeEnd - g.rangeStart }

// hashGroup is Cortex's partitioned group ID of a tenant's time range.
func hashGroup(tenant string, rangeStart, rangeEnd int64) uint32 {
	h := fnv.New32a()
	_, _ = fmt.Fprintf(h, "%v%v%v", tenant, rangeStart, rangeEnd)
	return h.Sum32()
}

func rangeStartOf(minTime, tr int64) int64 {
	if minTime >= 0 {
		return tr * (minTime / tr)
	}
	return tr * ((minTime - tr + 1) / tr)
}

// partitionPlanner plans a tenant's partitioned compactions as Cortex's
// PartitionCompactionGrouper does.
type partitionPlanner struct {
	tenant string
	ranges []int64
	// notAfter: only groups whose range ended before this time (unix ms)
	// are compacted, two cleanup intervals back as in Cortex, so that
	// late uploads of a range land before it is planned.
	notAfter int64
	// indexSizeLimit and seriesLimit are the tenant's partition limits,
	// already multiplied by the ingestion replication factor for groups
	// of the first range (whose blocks hold each series that many times).
	indexSizeLimit, seriesLimit func(levelOne bool) int64
}

// groups returns every range's groups of more than one block, smallest
// range first, oldest first.
func (p partitionPlanner) groups(metas []*block.Meta) []blockGroup {
	sorted := slices.Clone(metas)
	slices.SortStableFunc(sorted, func(a, b *block.Meta) int { return cmpInt(a.MinTime, b.MinTime) })
	var out []blockGroup
	for _, tr := range p.ranges {
		out = append(out, p.groupsByRange(sorted, tr)...)
	}
	slices.SortStableFunc(out, func(a, b blockGroup) int {
		if a.rangeLength() != b.rangeLength() {
			return cmpInt(a.rangeLength(), b.rangeLength())
		}
		if a.rangeStart != b.rangeStart {
			return cmpInt(a.rangeStart, b.rangeStart)
		}
		return cmpInt(int64(hashGroup(p.tenant, a.rangeStart, a.rangeEnd)), int64(hashGroup(p.tenant, b.rangeStart, b.rangeEnd)))
	})
	return out
}

func (p partitionPlanner) groupsByRange(sorted []*block.Meta, tr int64) []blockGroup {
	var out []blockGroup
	for i := 0; i < len(sorted); {
		g := blockGroup{rangeStart: rangeStartOf(sorted[i].MinTime, tr)}
		g.rangeEnd = g.rangeStart + tr
		if sorted[i].MaxTime > g.rangeEnd {
			i++
			continue
		}
		for ; i < len(sorted); i++ {
			if sorted[i].MinTime >= g.rangeEnd {
				break
			}
			if sorted[i].MaxTime > g.rangeEnd {
				continue
			}
			g.blocks = append(g.blocks, sorted[i])
		}
		if len(g.blocks) > 1 && g.rangeEnd < p.notAfter {
			out = append(out, g)
		}
	}
	return out
}

// timeRangeStatus tells whether one aligned range of one size can be
// compacted yet: not while a smaller range within it still can be.
type timeRangeStatus struct {
	numActiveBlocks   int
	canTakeCompaction bool
}

// completeness is Cortex's TimeRangeChecker: statuses by range size, then
// range start. Blocks of the first level count under size 0.
func (p partitionPlanner) completeness(metas []*block.Meta, groups []blockGroup) map[int64]map[int64]*timeRangeStatus {
	status := map[int64]map[int64]*timeRangeStatus{}
	get := func(tr, start int64) *timeRangeStatus {
		if status[tr] == nil {
			status[tr] = map[int64]*timeRangeStatus{}
		}
		if status[tr][start] == nil {
			status[tr][start] = &timeRangeStatus{}
		}
		return status[tr][start]
	}
	for _, g := range groups {
		get(g.rangeLength(), g.rangeStart)
	}
	for _, m := range metas {
		tr := int64(0)
		if m.Compaction.Level > 1 {
			if ext, err := metaExtensions(m); err == nil && ext != nil && ext.TimeRange > 0 {
				tr = ext.TimeRange
			} else {
				// Written without a time range: the smallest range
				// holding the block.
				for _, r := range p.ranges {
					if r >= m.MaxTime-m.MinTime && rangeStartOf(m.MinTime, r)+r >= m.MaxTime {
						tr = r
						break
					}
				}
			}
		}
		actual := tr
		if tr == 0 {
			actual = p.ranges[0]
		}
		get(tr, rangeStartOf(m.MinTime, actual)).numActiveBlocks++
	}
	previous := []int64{0}
	for _, tr := range p.ranges {
	ranges:
		for start, st := range status[tr] {
			previousBlocks := 0
			for _, ptr := range previous {
				step := ptr
				if step == 0 {
					step = p.ranges[0]
				}
				for ps := start; ps+step <= start+tr; ps += step {
					if pst, ok := status[ptr][ps]; ok {
						if pst.canTakeCompaction {
							st.canTakeCompaction = false
							continue ranges
						}
						previousBlocks += pst.numActiveBlocks
					}
				}
			}
			st.canTakeCompaction = previousBlocks != 0 && (previousBlocks != 1 || st.numActiveBlocks != 0)
		}
		previous = append(previous, tr)
	}
	return status
}

// partitionCount is the number of partitions a group's compaction is
// split into: the smallest power of two that brings the group's total
// index size and series count under the tenant's limits.
func (p partitionPlanner) partitionCount(g blockGroup) int {
	levelOne := p.ranges[0] >= g.rangeLength()
	indexLimit, seriesLimit := p.indexSizeLimit(levelOne), p.seriesLimit(levelOne)
	var indexBytes, series int64
	for _, m := range g.blocks {
		series += int64(m.Stats.NumSeries)
		var found bool
		for _, f := range m.Thanos.Files {
			if f.RelPath == block.IndexFilename {
				indexBytes += f.SizeBytes
				found = true
			}
		}
		if !found {
			// As Cortex: without the index's size in meta.json, the
			// sizes counted so far are all there is.
			break
		}
	}
	byIndex, bySeries := 1, 1
	if indexLimit > 0 && indexBytes > indexLimit {
		byIndex = nearestPowerOfTwo(float64(indexBytes) / float64(indexLimit))
	}
	if seriesLimit > 0 && series > seriesLimit {
		bySeries = nearestPowerOfTwo(float64(series) / float64(seriesLimit))
	}
	return max(byIndex, bySeries)
}

func nearestPowerOfTwo(ratio float64) int {
	return int(math.Pow(2, math.Ceil(math.Log2(ratio))))
}

// plan splits a group into partitionCount partitions. A source block that
// is itself a partition of c partitions holds only the series of hash
// modulo c equal to its ID, so it goes to the new partitions whose ID
// matches it modulo c (partitions are powers of two); blocks without a
// partition go to every partition.
func (p partitionPlanner) plan(g blockGroup) (*PartitionedGroupInfo, error) {
	count := p.partitionCount(g)
	parts := make([]Partition, count)
	for i := range parts {
		parts[i].PartitionID = i
		parts[i].Blocks = []ulid.ULID{}
	}
	for _, m := range g.blocks {
		ext, err := metaExtensions(m)
		if err != nil {
			return nil, err
		}
		pi := defaultPartitionInfo
		if ext != nil && ext.PartitionInfo != nil && ext.PartitionInfo.PartitionCount >= 1 {
			pi = *ext.PartitionInfo
		}
		switch {
		case pi.PartitionCount < count:
			for id := pi.PartitionID; id < count; id += pi.PartitionCount {
				parts[id].Blocks = append(parts[id].Blocks, m.ULID)
			}
		case pi.PartitionCount == count:
			parts[pi.PartitionID].Blocks = append(parts[pi.PartitionID].Blocks, m.ULID)
		default:
			parts[pi.PartitionID%count].Blocks = append(parts[pi.PartitionID%count].Blocks, m.ULID)
		}
	}
	return &PartitionedGroupInfo{
		PartitionedGroupID: hashGroup(p.tenant, g.rangeStart, g.rangeEnd),
		PartitionCount:     count,
		Partitions:         parts,
		RangeStart:         g.rangeStart,
		RangeEnd:           g.rangeEnd,
		Version:            partitionedGroupInfoVersion1,
	}, nil
}

// skipGroup reports whether a group is not to be planned: it has a plan
// already, a smaller range within it is still to be compacted, or its
// blocks are all the partitions of its own plan, already compacted.
func skipGroup(g blockGroup, id uint32, existing map[uint32]*PartitionedGroupInfo, status map[int64]map[int64]*timeRangeStatus) bool {
	if _, ok := existing[id]; ok {
		return true
	}
	if st, ok := status[g.rangeLength()][g.rangeStart]; !ok || !st.canTakeCompaction {
		return true
	}
	for _, m := range g.blocks {
		ext, err := metaExtensions(m)
		if err != nil || ext == nil || ext.PartitionInfo == nil || ext.PartitionInfo.PartitionedGroupID != id {
			return false
		}
	}
	return true
}

// partitionJob is one partition's compaction.
type partitionJob struct {
	group     *PartitionedGroupInfo
	partition Partition
	blocks    []*block.Meta
}

// partitionJobs returns the partitions of the tenant's unfinished plans,
// writing the plans of newly compactable groups first. Each plan's
// partitions come in random order, so that compactors working on one
// tenant tend to start on different ones.
func (c *Compactor) partitionJobs(ctx context.Context, tenant string, tbkt objstore.Bucket, metas []*block.Meta, logger *slog.Logger) ([]partitionJob, error) {
	p := c.partitionPlanner(tenant)
	groups := p.groups(metas)
	files, err := listPartitionedGroups(ctx, tbkt, logger, false)
	if err != nil {
		return nil, err
	}
	existing := map[uint32]*PartitionedGroupInfo{}
	var plans []*PartitionedGroupInfo
	for _, info := range files {
		existing[info.PartitionedGroupID] = info
		if !info.status(ctx, tbkt, c.cfg.CompactionVisitMarkerTimeout, logger).isCompleted {
			plans = append(plans, info)
		}
	}
	status := p.completeness(metas, groups)
	for _, g := range groups {
		id := hashGroup(tenant, g.rangeStart, g.rangeEnd)
		if skipGroup(g, id, existing, status) {
			continue
		}
		info, err := p.plan(g)
		if err != nil {
			return nil, fmt.Errorf("planning partitioned group %d: %w", id, err)
		}
		info, err = writePartitionedGroupInfo(ctx, tbkt, *info)
		if err != nil {
			return nil, err
		}
		logger.Info("created partitioned group", "partitioned_group_id", info.PartitionedGroupID, "partition_count", info.PartitionCount,
			"range_start", time.UnixMilli(info.RangeStart).UTC(), "range_end", time.UnixMilli(info.RangeEnd).UTC(), "blocks", idList(info.allBlocks()))
		existing[id] = info
		plans = append(plans, info)
		c.m.partitionCount.WithLabelValues(tenant, strconv.FormatInt(info.RangeEnd-info.RangeStart, 10)).Set(float64(info.PartitionCount))
	}
	slices.SortStableFunc(plans, func(a, b *PartitionedGroupInfo) int {
		if la, lb := a.RangeEnd-a.RangeStart, b.RangeEnd-b.RangeStart; la != lb {
			return cmpInt(la, lb)
		}
		if a.RangeStart != b.RangeStart {
			return cmpInt(a.RangeStart, b.RangeStart)
		}
		return cmpInt(int64(a.PartitionedGroupID), int64(b.PartitionedGroupID))
	})

	byID := make(map[ulid.ULID]*block.Meta, len(metas))
	for _, m := range metas {
		byID[m.ULID] = m
	}
	var jobs []partitionJob
	for _, info := range plans {
	partitions:
		for _, i := range rand.Perm(len(info.Partitions)) {
			part := info.Partitions[i]
			if len(part.Blocks) == 0 {
				// Nothing to compact: the partition is done.
				m := &PartitionVisitMarker{PartitionedGroupID: info.PartitionedGroupID, PartitionedGroupCreationTime: info.CreationTime, PartitionID: part.PartitionID}
				if err := markVisit(ctx, tbkt, m, c.instanceID(), Completed); err != nil {
					logger.Warn("marking an empty partition completed", "partitioned_group_id", info.PartitionedGroupID, "partition_id", part.PartitionID, "err", err)
				}
				continue
			}
			job := partitionJob{group: info, partition: part}
			for _, id := range part.Blocks {
				m, ok := byID[id]
				if !ok {
					// A source block is gone or excluded: the cleaner
					// drops the plan.
					continue partitions
				}
				job.blocks = append(job.blocks, m)
			}
			jobs = append(jobs, job)
		}
	}
	return jobs, nil
}

func (c *Compactor) partitionPlanner(tenant string) partitionPlanner {
	limits := func(tenant string) (int64, int64) { return 0, 0 }
	if c.partitionLimits != nil {
		limits = c.partitionLimits
	}
	rf := int64(max(1, c.ingestionRF))
	indexLimit, seriesLimit := limits(tenant)
	return partitionPlanner{
		tenant:   tenant,
		ranges:   c.cfg.BlockRanges.ToMilliseconds(),
		notAfter: time.Now().Add(-2 * c.cfg.CleanupInterval).UnixMilli(),
		indexSizeLimit: func(levelOne bool) int64 {
			if levelOne {
				return indexLimit * rf
			}
			return indexLimit
		},
		seriesLimit: func(levelOne bool) int64 {
			if levelOne {
				return seriesLimit * rf
			}
			return seriesLimit
		},
	}
}

// claimPartition marks a job's partition pending for this compactor,
// unless another compactor is on it (its marker neither completed nor
// stale) or it is done, as Cortex's grouper does; it reports whether the
// partition was claimed.
func (c *Compactor) claimPartition(ctx context.Context, tbkt objstore.Bucket, job partitionJob) (bool, error) {
	var m PartitionVisitMarker
	err := readVisitMarker(ctx, tbkt, partitionVisitMarkerPath(job.group.PartitionedGroupID, job.partition.PartitionID), &m)
	switch {
	case errors.Is(err, errVisitMarkerNotFound):
	case err != nil:
		return false, err
	case m.Status == Completed:
		return false, nil
	case m.PartitionID == job.partition.PartitionID && !m.expired(c.cfg.CompactionVisitMarkerTimeout, time.Now()):
		return false, nil
	}
	// The cleaner may have dropped the plan since it was read.
	if _, err := readPartitionedGroupInfo(ctx, tbkt, job.group.PartitionedGroupID); err != nil {
		if errors.Is(err, errPartitionedGroupInfoNotFound) {
			return false, nil
		}
		return false, err
	}
	claim := &PartitionVisitMarker{PartitionedGroupID: job.group.PartitionedGroupID, PartitionedGroupCreationTime: job.group.CreationTime, PartitionID: job.partition.PartitionID}
	if err := markVisit(ctx, tbkt, claim, c.instanceID(), Pending); err != nil {
		return false, err
	}
	return true, nil
}
