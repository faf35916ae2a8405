package compactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const partitionTenant = "tenant-p"

// newRingStore is an in-memory KV store for compactor rings.
func newRingStore(t *testing.T) kv.Client {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	return store
}

// newPartitioningCompactor is a compactor with the partitioning strategy
// in a shuffle-sharded ring of store, every tenant's shard two compactors,
// partitions limited to seriesLimit series with replication factor rf.
func newPartitioningCompactor(t *testing.T, bkt objstore.Bucket, store kv.Client, id string, port int, seriesLimit int64, rf int, mutate func(*Config)) *Compactor {
	t.Helper()
	cfg := testConfig(t)
	cfg.ShardingEnabled = true
	cfg.ShardingStrategy = shardring.StrategyShuffle
	cfg.CompactionStrategy = CompactionStrategyPartitioning
	cfg.ShardingPlannerDelay = 0
	cfg.ShardingRing.InstanceID = id
	cfg.ShardingRing.HeartbeatPeriod = 100 * time.Millisecond
	cfg.ShardingRing.WaitStabilityMinDuration = 0
	cfg.DeletionDelay = time.Hour
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := shardring.NewMember(cfg.ShardingRing.MemberConfig(), RingName, RingKey, store, "127.0.0.1", port, ring.ACTIVE, discard, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry(), WithRing(m),
		WithTenantShardSize(func(string) float64 { return 2 }),
		WithPartitionLimits(func(string) (int64, int64) { return 0, seriesLimit }),
		WithIngestionReplicationFactor(rf))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.joinRing(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.stopping(nil) })
	return c
}

// partitionBlocks returns the tenant's blocks that have partition_info,
// by partition ID, failing on two blocks of one partition.
func partitionBlocks(t *testing.T, bkt objstore.Bucket, tenant string) map[int]*block.Meta {
	t.Helper()
	ctx := context.Background()
	tbkt := objstore.NewPrefixedBucket(bkt, tenant)
	out := map[int]*block.Meta{}
	err := tbkt.Iter(ctx, "", func(name string) error {
		id, ok := block.IsBlockDir(name)
		if !ok {
			return nil
		}
		m, err := block.ReadMeta(ctx, tbkt, id)
		if err != nil {
			return err
		}
		ext, err := metaExtensions(m)
		if err != nil || ext == nil {
			return err
		}
		pid := ext.PartitionInfo.PartitionID
		if prev, ok := out[pid]; ok {
			return fmt.Errorf("partition %d compacted twice: blocks %s and %s", pid, prev.ULID, m.ULID)
		}
		out[pid] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// querySeries opens a block and returns its series' labels and samples.
func querySeries(t *testing.T, bkt objstore.Bucket, tenant string, id ulid.ULID) map[string]int {
	t.Helper()
	dir := path.Join(t.TempDir(), id.String())
	if err := block.Download(context.Background(), objstore.NewPrefixedBucket(bkt, tenant), id, dir); err != nil {
		t.Fatal(err)
	}
	b, err := tsdb.OpenBlock(discard, dir, chunkenc.NewPool(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, b.MinTime(), b.MaxTime())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]int{}
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		n := 0
		it := ss.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			n++
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[ss.At().Labels().String()] = n
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func readMarker(t *testing.T, bkt objstore.Bucket, tenant string, group uint32, partition int) PartitionVisitMarker {
	t.Helper()
	var m PartitionVisitMarker
	if err := readVisitMarker(context.Background(), objstore.NewPrefixedBucket(bkt, tenant), partitionVisitMarkerPath(group, partition), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// A tenant's blocks over the partition limits are compacted into as many
// blocks as the limits need, whose series are disjoint and together are
// the input's; the cleaner then retires the sources and the plan.
func TestPartitioningCompactsIntoDisjointPartitions(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	// Two replicas of one 2h block of 40 series: 80 series in the group,
	// a limit of 10 per partition times the replication factor 2 is 20,
	// so 4 partitions.
	var sources []ulid.ULID
	for range 2 {
		sources = append(sources, shipBlock(t, bkt, partitionTenant, 40, 0, 2*hour, testStep))
	}
	c := newPartitioningCompactor(t, bkt, newRingStore(t), "compactor-a", 9100, 10, 2, nil)
	testkit.Eventually(t, 10*time.Second, "the compactor is in the ring", func() bool { return c.ring.Ring().InstancesCount() == 1 })

	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	groupID := hashGroup(partitionTenant, 0, 2*hour)
	tbkt := objstore.NewPrefixedBucket(bkt, partitionTenant)
	info, err := readPartitionedGroupInfo(ctx, tbkt, groupID)
	if err != nil {
		t.Fatal(err)
	}
	if info.PartitionCount != 4 || len(info.Partitions) != 4 || info.RangeStart != 0 || info.RangeEnd != 2*hour || info.Version != 1 || info.CreationTime <= 0 {
		t.Fatalf("partitioned group info %+v, want 4 partitions of [0, 2h) version 1", info)
	}
	for _, p := range info.Partitions {
		got := slices.Clone(p.Blocks)
		slices.SortFunc(got, func(a, b ulid.ULID) int { return a.Compare(b) })
		want := slices.Clone(sources)
		slices.SortFunc(want, func(a, b ulid.ULID) int { return a.Compare(b) })
		if !slices.Equal(got, want) {
			t.Fatalf("partition %d reads blocks %v, want both sources %v", p.PartitionID, got, want)
		}
	}

	parts := partitionBlocks(t, bkt, partitionTenant)
	if len(parts) != 4 {
		t.Fatalf("got %d partition blocks, want 4", len(parts))
	}
	union := map[string]int{}
	for pid, m := range parts {
		ext, _ := metaExtensions(m)
		want := PartitionInfo{PartitionedGroupID: groupID, PartitionCount: 4, PartitionID: pid, PartitionedGroupCreationTime: info.CreationTime}
		if *ext.PartitionInfo != want || ext.TimeRange != 2*hour {
			t.Fatalf("block %s extensions %+v time range %d, want %+v and 2h", m.ULID, *ext.PartitionInfo, ext.TimeRange, want)
		}
		if m.Compaction.Level != 2 || m.MinTime != 0 || m.MaxTime != 2*hour || m.Thanos.Source != block.SourceCompactor {
			t.Fatalf("block %s: level %d [%d, %d) source %q", m.ULID, m.Compaction.Level, m.MinTime, m.MaxTime, m.Thanos.Source)
		}
		if got := readMarker(t, bkt, partitionTenant, groupID, pid); got.Status != Completed || got.CompactorID != "compactor-a" {
			t.Fatalf("partition %d visit marker %+v, want completed by compactor-a", pid, got)
		}
		series := querySeries(t, bkt, partitionTenant, m.ULID)
		if len(series) == 0 {
			t.Fatalf("partition %d holds no series", pid)
		}
		for s, n := range series {
			if _, dup := union[s]; dup {
				t.Fatalf("series %s is in two partitions", s)
			}
			lbls, err := parseSeries(s)
			if err != nil {
				t.Fatal(err)
			}
			if h := labels.StableHash(lbls) % 4; int(h) != pid {
				t.Fatalf("series %s (hash mod 4 = %d) in partition %d", s, h, pid)
			}
			union[s] = n
		}
	}
	if len(union) != 40 {
		t.Fatalf("the partitions hold %d series together, want the input's 40", len(union))
	}
	perSeries := int(2 * hour / testStep)
	for s, n := range union {
		if n != perSeries {
			t.Fatalf("series %s has %d samples, want %d (the replicas' samples once)", s, n, perSeries)
		}
	}

	// Sources stay until the cleaner finds the plan completed.
	for _, id := range sources {
		if ok, _ := tbkt.Exists(ctx, block.DeletionMarkPath(id)); ok {
			t.Fatalf("source %s marked for deletion by the compaction", id)
		}
	}
	// Compacting again finds nothing to do.
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(partitionBlocks(t, bkt, partitionTenant)); n != 4 {
		t.Fatalf("after a second pass: %d partition blocks, want 4", n)
	}

	// First cleanup: the completed plan's sources are marked; second: the
	// plan and its markers go.
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range sources {
		if ok, _ := tbkt.Exists(ctx, block.DeletionMarkPath(id)); !ok {
			t.Fatalf("source %s not marked for deletion after the plan completed", id)
		}
	}
	if _, err := readPartitionedGroupInfo(ctx, tbkt, groupID); err != nil {
		t.Fatalf("plan gone in the cleanup that marked its sources: %v", err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := readPartitionedGroupInfo(ctx, tbkt, groupID); !errors.Is(err, errPartitionedGroupInfoNotFound) {
		t.Fatalf("plan after the second cleanup: %v, want not found", err)
	}
	var left []string
	_ = tbkt.Iter(ctx, PartitionedGroupDirectory, func(name string) error { left = append(left, name); return nil }, objstore.WithRecursiveIter())
	if len(left) != 0 {
		t.Fatalf("left under %s: %v", PartitionedGroupDirectory, left)
	}
	// The partitions, all of the plan's own ID, are not planned again.
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := readPartitionedGroupInfo(ctx, tbkt, groupID); !errors.Is(err, errPartitionedGroupInfoNotFound) {
		t.Fatalf("the partitions were planned again: %v", err)
	}
	idx, err := bucketindex.ReadIndex(ctx, bkt, partitionTenant)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(idx.ActiveBlocks()); n != 4 {
		t.Fatalf("bucket index has %d active blocks, want the 4 partitions", n)
	}
}

// parseSeries parses a labels.String() form back.
func parseSeries(s string) (labels.Labels, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	b := labels.NewScratchBuilder(0)
	for _, kv := range strings.Split(s, ", ") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return labels.EmptyLabels(), fmt.Errorf("bad series %q", s)
		}
		uv, err := strconv.Unquote(v)
		if err != nil {
			return labels.EmptyLabels(), err
		}
		b.Add(k, uv)
	}
	b.Sort()
	return b.Labels(), nil
}

// A partition another compactor visits is skipped while its marker is
// fresh, and taken over once the marker is older than
// -compactor.compaction-visit-marker-timeout.
func TestPartitionVisitMarkerSkipsThenTakesOver(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	for range 2 {
		shipBlock(t, bkt, partitionTenant, 40, 0, 2*hour, testStep)
	}
	c := newPartitioningCompactor(t, bkt, newRingStore(t), "compactor-a", 9110, 10, 2, nil)
	testkit.Eventually(t, 10*time.Second, "the compactor is in the ring", func() bool { return c.ring.Ring().InstancesCount() == 1 })
	tbkt := objstore.NewPrefixedBucket(bkt, partitionTenant)

	// Plan the group, then have another compactor hold partition 2.
	idx, _, err := bucketindex.NewUpdater(bkt, partitionTenant, discard).UpdateIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	metas, err := c.blockMetas(ctx, partitionTenant, tbkt, idx.ActiveBlocks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.partitionJobs(ctx, partitionTenant, tbkt, metas, discard); err != nil {
		t.Fatal(err)
	}
	groupID := hashGroup(partitionTenant, 0, 2*hour)
	info, err := readPartitionedGroupInfo(ctx, tbkt, groupID)
	if err != nil {
		t.Fatal(err)
	}
	other := &PartitionVisitMarker{PartitionedGroupID: groupID, PartitionedGroupCreationTime: info.CreationTime, PartitionID: 2}
	if err := markVisit(ctx, tbkt, other, "compactor-b", InProgress); err != nil {
		t.Fatal(err)
	}

	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	parts := partitionBlocks(t, bkt, partitionTenant)
	if _, ok := parts[2]; ok || len(parts) != 3 {
		t.Fatalf("compacted partitions %v, want 0, 1 and 3 (2 is compactor-b's)", slices.Sorted(mapsKeys(parts)))
	}
	if m := readMarker(t, bkt, partitionTenant, groupID, 2); m.CompactorID != "compactor-b" || m.Status != InProgress {
		t.Fatalf("partition 2 marker %+v, want compactor-b's, in progress", m)
	}
	// The cleaner leaves a plan with a partition in progress alone.
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tbkt.Exists(ctx, block.DeletionMarkPath(info.Partitions[0].Blocks[0])); ok {
		t.Fatal("sources marked for deletion while a partition is in progress")
	}
	if got := testutil.ToFloat64(c.m.inProgressCompactions.WithLabelValues(partitionTenant)); got != 1 {
		t.Fatalf("cortex_compactor_in_progress_compactions %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.m.remainingPlannedCompactions.WithLabelValues(partitionTenant)); got != 0 {
		t.Fatalf("cortex_compactor_remaining_planned_compactions %v, want 0", got)
	}
	if got := testutil.ToFloat64(c.m.partitionCount.WithLabelValues(partitionTenant, "7200000")); got != 4 {
		t.Fatalf("cortex_compactor_group_partition_count %v, want 4", got)
	}

	// compactor-b stops refreshing its marker: once the marker is older
	// than the timeout, the partition is taken over.
	other.VisitTime = time.Now().Add(-c.cfg.CompactionVisitMarkerTimeout - time.Second).Unix()
	b, _ := json.Marshal(other)
	if err := tbkt.Upload(ctx, other.filePath(), strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	parts = partitionBlocks(t, bkt, partitionTenant)
	if _, ok := parts[2]; !ok || len(parts) != 4 {
		t.Fatalf("compacted partitions %v, want all 4 after the takeover", slices.Sorted(mapsKeys(parts)))
	}
	if m := readMarker(t, bkt, partitionTenant, groupID, 2); m.CompactorID != "compactor-a" || m.Status != Completed {
		t.Fatalf("partition 2 marker %+v, want completed by compactor-a", m)
	}
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Two compactors of a tenant's shard compacting it at once compact each
// partition once: the planner delay lets the later of two claims of a
// partition win before either compacts.
func TestPartitioningTwoCompactorsCompactEachPartitionOnce(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	for range 2 {
		shipBlock(t, bkt, partitionTenant, 64, 0, 2*hour, testStep)
	}
	store := newRingStore(t)
	delay := func(cfg *Config) { cfg.ShardingPlannerDelay = 300 * time.Millisecond }
	a := newPartitioningCompactor(t, bkt, store, "compactor-a", 9120, 8, 2, delay)
	b := newPartitioningCompactor(t, bkt, store, "compactor-b", 9121, 8, 2, delay)
	testkit.Eventually(t, 10*time.Second, "both compactors see both in the ring", func() bool {
		return a.ring.Ring().InstancesCount() == 2 && b.ring.Ring().InstancesCount() == 2
	})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*Compactor{a, b} {
		wg.Go(func() { errs[i] = c.Compact(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// 128 series over 8 times 2: 8 partitions.
	parts := partitionBlocks(t, bkt, partitionTenant)
	if len(parts) != 8 {
		t.Fatalf("got partitions %v, want 0 to 7 once each", slices.Sorted(mapsKeys(parts)))
	}
	groupID := hashGroup(partitionTenant, 0, 2*hour)
	by := map[string]int{}
	for pid := range parts {
		m := readMarker(t, bkt, partitionTenant, groupID, pid)
		if m.Status != Completed {
			t.Fatalf("partition %d marker %+v, want completed", pid, m)
		}
		by[m.CompactorID]++
	}
	t.Logf("partitions compacted by compactor: %v", by)
}

// The cleaner skips a tenant whose cleaner visit marker another compactor
// holds, and cleans it once the marker is stale; the marker is removed
// after each cleanup.
func TestCleanerVisitMarker(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	shipBlock(t, bkt, partitionTenant, 2, 0, 2*hour, testStep)
	cfg := testConfig(t)
	c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	tbkt := objstore.NewPrefixedBucket(bkt, partitionTenant)
	other := &CleanerVisitMarker{}
	if err := markVisit(ctx, tbkt, other, "compactor-b", InProgress); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bucketindex.ReadIndex(ctx, bkt, partitionTenant); !errors.Is(err, bucketindex.ErrIndexNotFound) {
		t.Fatalf("bucket index while another compactor cleans the tenant: %v, want none written", err)
	}
	if err := markVisit(ctx, tbkt, other, "compactor-b", Completed); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bucketindex.ReadIndex(ctx, bkt, partitionTenant); err != nil {
		t.Fatalf("bucket index after the other cleanup completed: %v", err)
	}
	if ok, _ := tbkt.Exists(ctx, other.filePath()); ok {
		t.Fatal("cleaner visit marker left after the cleanup")
	}

	// A marker not refreshed within the timeout is taken over.
	if err := bucketindex.DeleteIndex(ctx, bkt, partitionTenant); err != nil {
		t.Fatal(err)
	}
	other.setStatus("compactor-b", InProgress, time.Now().Add(-cfg.CleanerVisitMarkerTimeout-time.Second))
	b, _ := json.Marshal(other)
	if err := tbkt.Upload(ctx, other.filePath(), strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bucketindex.ReadIndex(ctx, bkt, partitionTenant); err != nil {
		t.Fatalf("bucket index after taking over a stale cleaner marker: %v", err)
	}
}

// With the default strategy, nothing of the partitioning strategy is
// written: one compacted block without extensions, no partitioned groups.
func TestDefaultStrategyWritesNoPartitions(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	for range 2 {
		shipBlock(t, bkt, partitionTenant, 40, 0, 2*hour, testStep)
	}
	cfg := testConfig(t)
	cfg.DeletionDelay = time.Hour
	c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry(),
		WithPartitionLimits(func(string) (int64, int64) { return 0, 10 }))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	tbkt := objstore.NewPrefixedBucket(bkt, partitionTenant)
	var all []string
	_ = tbkt.Iter(ctx, "", func(name string) error { all = append(all, name); return nil }, objstore.WithRecursiveIter())
	var metas []*block.Meta
	for _, name := range all {
		if strings.HasPrefix(name, PartitionedGroupDirectory) || strings.HasSuffix(name, CleanerVisitMarkerName) {
			t.Fatalf("default strategy left %s", name)
		}
		if strings.HasSuffix(name, "/"+block.MetaFilename) {
			id, _ := block.IsBlockDir(path.Dir(name))
			m, err := block.ReadMeta(ctx, tbkt, id)
			if err != nil {
				t.Fatal(err)
			}
			if m.Compaction.Level > 1 {
				metas = append(metas, m)
			}
		}
	}
	if len(metas) != 1 || len(metas[0].Thanos.Extensions) != 0 || metas[0].Stats.NumSeries != 40 {
		t.Fatalf("compacted blocks %d, want one of 40 series without extensions", len(metas))
	}
}

func TestPartitioningConfigValidation(t *testing.T) {
	cfg := testConfig(t)
	cfg.CompactionStrategy = CompactionStrategyPartitioning
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "-compactor.compaction-strategy=partitioning needs -compactor.sharding-enabled=true and -compactor.sharding-strategy=shuffle-sharding") {
		t.Fatalf("got %v", err)
	}
	cfg.CompactionStrategy = "sharded"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `-compactor.compaction-strategy: unknown strategy "sharded"`) {
		t.Fatalf("got %v", err)
	}
	cfg = testConfig(t)
	cfg.CompactionVisitMarkerTimeout = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-compactor.compaction-visit-marker-timeout must be positive") {
		t.Fatalf("got %v", err)
	}
}

// Partitions of a group already partitioned into fewer partitions read
// only the source partitions holding their series.
func TestPartitionPlanAssignsPartitionedSources(t *testing.T) {
	p := partitionPlanner{tenant: "t", ranges: []int64{2 * hour, 12 * hour},
		indexSizeLimit: func(bool) int64 { return 0 }, seriesLimit: func(bool) int64 { return 10 }}
	mk := func(count, id int, series uint64) *block.Meta {
		m := &block.Meta{}
		m.ULID = ulid.Make()
		m.MinTime, m.MaxTime = 0, 2*hour
		m.Compaction.Level = 2
		m.Stats.NumSeries = series
		m.Thanos.Files = []block.File{{RelPath: block.IndexFilename, SizeBytes: 1000}}
		m.Thanos.Extensions, _ = json.Marshal(CortexMetaExtensions{PartitionInfo: &PartitionInfo{PartitionCount: count, PartitionID: id}, TimeRange: 2 * hour})
		return m
	}
	a0, a1 := mk(2, 0, 20), mk(2, 1, 20)
	info, err := p.plan(blockGroup{rangeStart: 0, rangeEnd: 12 * hour, blocks: []*block.Meta{a0, a1}})
	if err != nil {
		t.Fatal(err)
	}
	if info.PartitionCount != 4 {
		t.Fatalf("partition count %d, want 4 (40 series, limit 10)", info.PartitionCount)
	}
	want := [][]ulid.ULID{{a0.ULID}, {a1.ULID}, {a0.ULID}, {a1.ULID}}
	for i, part := range info.Partitions {
		if !slices.Equal(part.Blocks, want[i]) {
			t.Fatalf("partition %d reads %v, want %v", i, part.Blocks, want[i])
		}
	}
}

// The next range's compaction reads the previous level's partitions,
// each new partition only the sources holding its series, once the
// previous level's plans are done; the result is the input's series and
// samples.
func TestPartitioningSecondLevel(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	for _, start := range []int64{0, 2 * hour} {
		for range 2 {
			shipBlock(t, bkt, partitionTenant, 20, start, start+2*hour, testStep)
		}
	}
	c := newPartitioningCompactor(t, bkt, newRingStore(t), "compactor-a", 9130, 10, 2, func(cfg *Config) {
		cfg.BlockRanges = DurationList{2 * time.Hour, 4 * time.Hour}
	})
	testkit.Eventually(t, 10*time.Second, "the compactor is in the ring", func() bool { return c.ring.Ring().InstancesCount() == 1 })
	tbkt := objstore.NewPrefixedBucket(bkt, partitionTenant)

	// Level one: each 2h range's 40 series over 10 times 2: 2 partitions.
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	for _, start := range []int64{0, 2 * hour} {
		info, err := readPartitionedGroupInfo(ctx, tbkt, hashGroup(partitionTenant, start, start+2*hour))
		if err != nil {
			t.Fatal(err)
		}
		if info.PartitionCount != 2 {
			t.Fatalf("range at %d: %d partitions, want 2", start, info.PartitionCount)
		}
	}
	// The 4h range waits for the 2h plans' sources to go.
	if _, err := readPartitionedGroupInfo(ctx, tbkt, hashGroup(partitionTenant, 0, 4*hour)); !errors.Is(err, errPartitionedGroupInfoNotFound) {
		t.Fatalf("4h range planned before the 2h plans were done: %v", err)
	}
	for range 2 {
		if err := c.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	info, err := readPartitionedGroupInfo(ctx, tbkt, hashGroup(partitionTenant, 0, 4*hour))
	if err != nil {
		t.Fatal(err)
	}
	// 4 blocks of 10 series, limit 10 (no replicas past level one): 4.
	if info.PartitionCount != 4 {
		t.Fatalf("4h range: %d partitions, want 4", info.PartitionCount)
	}
	for _, p := range info.Partitions {
		if len(p.Blocks) != 2 {
			t.Fatalf("4h partition %d reads %d blocks, want one partition of each 2h range", p.PartitionID, len(p.Blocks))
		}
	}
	for range 2 {
		if err := c.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := bucketindex.ReadIndex(ctx, bkt, partitionTenant)
	if err != nil {
		t.Fatal(err)
	}
	active := idx.ActiveBlocks()
	if len(active) != 4 {
		t.Fatalf("%d active blocks, want the 4h range's 4 partitions", len(active))
	}
	union := map[string]int{}
	for _, b := range active {
		if b.MinTime != 0 || b.MaxTime != 4*hour {
			t.Fatalf("active block %s", b)
		}
		for s, n := range querySeries(t, bkt, partitionTenant, b.ID) {
			if _, dup := union[s]; dup {
				t.Fatalf("series %s in two partitions", s)
			}
			union[s] = n
		}
	}
	if len(union) != 20 {
		t.Fatalf("%d series, want 20", len(union))
	}
	for s, n := range union {
		if n != int(4*hour/testStep) {
			t.Fatalf("series %s: %d samples, want %d", s, n, 4*hour/testStep)
		}
	}
}

// A visit heartbeat keeps its marker in progress and refreshed, and ends
// it completed, failed (halt error), pending (other error or cancelled),
// or removed.
func TestVisitHeartbeat(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	read := func(m visitMarker) PartitionVisitMarker {
		t.Helper()
		var got PartitionVisitMarker
		if err := readVisitMarker(context.Background(), bkt, m.filePath(), &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, tc := range []struct {
		name string
		err  error
		want VisitStatus
	}{
		{"success", nil, Completed},
		{"halt", fmt.Errorf("compacting: %w", outOfOrderChunksError{err: errors.New("out of order")}), Failed},
		{"retryable", errors.New("bucket unavailable"), Pending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &PartitionVisitMarker{PartitionedGroupID: 7, PartitionID: 1}
			h := startVisitHeartbeat(context.Background(), bkt, discard, "compactor-a", m, 100*time.Millisecond, false)
			testkit.Eventually(t, 5*time.Second, "the marker is in progress", func() bool {
				var got PartitionVisitMarker
				return readVisitMarker(context.Background(), bkt, m.filePath(), &got) == nil && got.Status == InProgress
			})
			first := read(m).VisitTime
			testkit.Eventually(t, 5*time.Second, "the marker is refreshed", func() bool { return read(m).VisitTime > first })
			h.finish(tc.err)
			if got := read(m); got.Status != tc.want || got.CompactorID != "compactor-a" || got.Version != 1 {
				t.Fatalf("marker %+v, want %s by compactor-a", got, tc.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &PartitionVisitMarker{PartitionedGroupID: 7, PartitionID: 2}
	h := startVisitHeartbeat(ctx, bkt, discard, "compactor-a", m, time.Hour, false)
	cancel()
	<-h.finished
	if got := read(m); got.Status != Pending {
		t.Fatalf("marker after cancel %+v, want pending", got)
	}
	c := &CleanerVisitMarker{}
	h = startVisitHeartbeat(context.Background(), bkt, discard, "compactor-a", c, time.Hour, true)
	h.finish(nil)
	if ok, _ := bkt.Exists(context.Background(), c.filePath()); ok {
		t.Fatal("cleaner marker left with deleteOnExit")
	}
}

// The cleanup's partition metrics add up every plan of the tenant.
func TestPartitionMetricsSumPlans(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	src := shipBlock(t, bkt, partitionTenant, 2, 0, 2*hour, testStep)
	c := newPartitioningCompactor(t, bkt, newRingStore(t), "compactor-a", 9140, 10, 1, nil)
	tbkt := objstore.NewPrefixedBucket(bkt, partitionTenant)
	created := time.Now().Add(-time.Minute).Unix()
	for _, id := range []uint32{1, 2} {
		info := PartitionedGroupInfo{PartitionedGroupID: id, PartitionCount: 2, CreationTime: created - int64(id), Version: 1,
			Partitions: []Partition{{PartitionID: 0, Blocks: []ulid.ULID{src}}, {PartitionID: 1, Blocks: []ulid.ULID{src}}}}
		if _, err := writePartitionedGroupInfo(ctx, tbkt, info); err != nil {
			t.Fatal(err)
		}
	}
	if err := markVisit(ctx, tbkt, &PartitionVisitMarker{PartitionedGroupID: 1, PartitionedGroupCreationTime: created - 1, PartitionID: 0}, "compactor-b", InProgress); err != nil {
		t.Fatal(err)
	}
	c.cleanPartitionedGroups(ctx, partitionTenant, tbkt)
	if got := testutil.ToFloat64(c.m.remainingPlannedCompactions.WithLabelValues(partitionTenant)); got != 3 {
		t.Fatalf("cortex_compactor_remaining_planned_compactions %v, want 3", got)
	}
	if got := testutil.ToFloat64(c.m.inProgressCompactions.WithLabelValues(partitionTenant)); got != 1 {
		t.Fatalf("cortex_compactor_in_progress_compactions %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.m.oldestPartitionOffset.WithLabelValues(partitionTenant)); got < 61 || got > 120 {
		t.Fatalf("cortex_compactor_oldest_partition_offset %v, want the older plan's age, about 62s", got)
	}
}
