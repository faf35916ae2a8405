package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestCompactorsPartitionTenant: two compactors of a tenant's shuffle
// shard, with -compactor.compaction-strategy=partitioning, compact the
// tenant's replicas together into the partitions its series limit needs,
// each partition once, and the cleanup retires the sources and the plan.
func TestCompactorsPartitionTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	t.Parallel()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	bucketDir := filepath.Join(c.dir, "bucket")
	var compactors []*testkit.Cortex
	for i := range 2 {
		compactors = append(compactors, c.start("-target=compactor",
			"-ring.store=inmemory",
			"-distributor.replication-factor=1",
			"-blocks-storage.filesystem.dir="+bucketDir,
			"-compactor.data-dir="+t.TempDir(),
			"-compactor.compaction-interval=1s",
			"-compactor.cleanup-interval=1s",
			"-compactor.deletion-delay=0s",
			// One level: with Cortex's 12h and 24h levels too, the
			// partitions compact again whenever the 12h range of the
			// blocks (five to seven hours old) has ended, as it has in
			// the first hours of each half day, UTC.
			"-compactor.block-ranges=2h",
			"-compactor.sharding-enabled",
			"-compactor.sharding-strategy=shuffle-sharding",
			"-compactor.tenant-shard-size=2",
			"-compactor.compaction-strategy=partitioning",
			"-compactor.partition-series-count=8",
			"-compactor.sharding-planner-delay=500ms",
			"-compactor.ring.store=memberlist",
			"-compactor.ring.instance-id=compactor-"+itoa(i),
			"-compactor.ring.instance-addr=127.0.0.1",
			"-compactor.ring.heartbeat-period=1s",
			"-compactor.ring.wait-stability-min-duration=0s",
		))
	}
	for _, p := range compactors {
		waitReady(p, c.client)
	}
	for _, p := range compactors {
		p.EventuallyNil(30*time.Second, "both compactors ACTIVE on the ring page", func() error {
			code, page := tryGet(c.client, "https://"+p.HTTPAddr+"/compactor/ring")
			if code != http.StatusOK || strings.Count(page, "ACTIVE") < 2 {
				return fmt.Errorf("GET /compactor/ring: %d %s", code, page)
			}
			return nil
		})
	}

	// Two replicas of 32 series: 64 series over a limit of 8, 8 partitions.
	bkt, err := filesystem.NewBucket(bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	const tenant = "team-partitioned"
	for range 2 {
		uploadSeriesBlock(t, bkt, tenant, 32)
	}
	// A partition no series hashes to compacts to nothing, and writes no
	// block.
	want := map[int]bool{}
	for s := range 32 {
		want[int(labels.StableHash(seriesLabels(s))%8)] = true
	}
	compactors[0].EventuallyNil(90*time.Second, "the partitions with series, each compacted once, and the sources gone", func() error {
		metas, err := filepath.Glob(filepath.Join(bucketDir, tenant, "*", block.MetaFilename))
		if err != nil {
			return err
		}
		seen := map[int]bool{}
		for _, name := range metas {
			m, err := block.ReadMetaFile(filepath.Dir(name))
			if err != nil {
				return err
			}
			var ext struct {
				PartitionInfo *struct {
					PartitionCount int `json:"partition_count"`
					PartitionID    int `json:"partition_id"`
				} `json:"partition_info"`
			}
			if len(m.Thanos.Extensions) == 0 {
				return fmt.Errorf("block %s has no partition yet (sources still there)", m.ULID)
			}
			if err := json.Unmarshal(m.Thanos.Extensions, &ext); err != nil || ext.PartitionInfo == nil || ext.PartitionInfo.PartitionCount != 8 {
				return fmt.Errorf("block %s: extensions %s", m.ULID, m.Thanos.Extensions)
			}
			if seen[ext.PartitionInfo.PartitionID] {
				t.Fatalf("partition %d compacted twice", ext.PartitionInfo.PartitionID)
			}
			seen[ext.PartitionInfo.PartitionID] = true
		}
		if !maps.Equal(seen, want) {
			return fmt.Errorf("partitions %v, want %v", seen, want)
		}
		if _, err := os.Stat(filepath.Join(bucketDir, tenant, "partitioned-groups")); !os.IsNotExist(err) {
			return fmt.Errorf("partitioned-groups still there: %v", err)
		}
		return nil
	})
	a := metricOf(t, c.client, compactors[0], "cortex_compactor_group_compactions_total")
	b := metricOf(t, c.client, compactors[1], "cortex_compactor_group_compactions_total")
	t.Logf("partition compactions by compactor: %v and %v", a, b)
	if a+b != 8 {
		t.Fatalf("compactions %v and %v, want 8 in all", a, b)
	}
}

// uploadSeriesBlock writes a two-hour block of series series, three to
// five hours old, to the tenant's directory as an ingester would ship it.
func uploadSeriesBlock(t *testing.T, bkt objstore.Bucket, tenant string, series int) {
	t.Helper()
	all := make([]labels.Labels, series)
	for s := range all {
		all[s] = seriesLabels(s)
	}
	uploadBlockOf(t, bkt, tenant, all...)
}

func seriesLabels(s int) labels.Labels {
	return labels.FromStrings("__name__", "partitioned", "series", itoa(s))
}
