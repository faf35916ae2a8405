package compactor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// craftedSeries is a series of a hand-written block: its chunks' time
// ranges, in the index's order, each chunk holding a sample at each end.
type craftedSeries struct {
	lset   labels.Labels
	ranges [][2]int64
}

// shipCraftedBlock writes a block index entry by index entry, so that it
// can hold what Prometheus' writers refuse (out-of-order chunks, unsorted
// label names), and uploads it to the tenant's folder.
func shipCraftedBlock(t *testing.T, bkt objstore.Bucket, tenant string, minT, maxT int64, series []craftedSeries) ulid.ULID {
	t.Helper()
	ctx := context.Background()
	id := ulid.MustNew(ulid.Now(), nil)
	dir := filepath.Join(t.TempDir(), id.String())
	cw, err := chunks.NewWriter(filepath.Join(dir, block.ChunksDirname))
	if err != nil {
		t.Fatal(err)
	}
	metas := make([][]chunks.Meta, len(series))
	symbols := map[string]struct{}{}
	samples := uint64(0)
	for i, s := range series {
		s.lset.Range(func(l labels.Label) { symbols[l.Name], symbols[l.Value] = struct{}{}, struct{}{} })
		for _, r := range s.ranges {
			c := chunkenc.NewXORChunk()
			app, err := c.Appender()
			if err != nil {
				t.Fatal(err)
			}
			app.Append(0, r[0], 1)
			app.Append(0, r[1], 2)
			samples += 2
			metas[i] = append(metas[i], chunks.Meta{MinTime: r[0], MaxTime: r[1], Chunk: c})
		}
		if err := cw.WriteChunks(metas[i]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	iw, err := index.NewWriter(ctx, filepath.Join(dir, block.IndexFilename))
	if err != nil {
		t.Fatal(err)
	}
	var syms []string
	for s := range symbols {
		syms = append(syms, s)
	}
	slices.Sort(syms)
	for _, s := range syms {
		if err := iw.AddSymbol(s); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range series {
		if err := iw.AddSeries(storageRef(i), s.lset, metas[i]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := iw.Close(); err != nil {
		t.Fatal(err)
	}
	meta := tsdb.BlockMeta{ULID: id, MinTime: minT, MaxTime: maxT, Version: 1,
		Stats:      tsdb.BlockStats{NumSeries: uint64(len(series)), NumSamples: samples},
		Compaction: tsdb.BlockMetaCompaction{Level: 1, Sources: []ulid.ULID{id}}}
	b, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, block.MetaFilename), b, 0o600); err != nil {
		t.Fatal(err)
	}
	thanos := block.ThanosMeta{Labels: map[string]string{block.TenantIDExternalLabel: tenant}, Source: block.SourceReceive}
	if err := block.Upload(ctx, objstore.NewPrefixedBucket(bkt, tenant), dir, thanos); err != nil {
		t.Fatal(err)
	}
	return id
}

// unsortedLabels builds a label set in the order given, as Prometheus
// 2.8.0 and older could write one.
func unsortedLabels(kv ...string) labels.Labels {
	var b labels.ScratchBuilder
	for i := 0; i < len(kv); i += 2 {
		b.Add(kv[i], kv[i+1])
	}
	return b.Labels()
}

// A source block whose index has out-of-order chunks fails its tenant's
// compaction, naming the block and the flag; with
// -compactor.skip-blocks-with-out-of-order-chunks-enabled it is marked
// no-compact instead, and the others are compacted.
func TestOutOfOrderChunks(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(map[bool]string{false: "halt", true: "skip"}[skip], func(t *testing.T) {
			ctx := context.Background()
			bkt := newFSBucket(t)
			const tenant = "team-a"
			a := shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
			b := shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
			bad := shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
			cfg := testConfig(t)
			cfg.SkipBlocksWithOutOfOrderChunksEnabled = skip
			cfg.CompactionRetries = 0 // one attempt: the block fails each one the same
			reg := prometheus.NewPedanticRegistry()
			c, err := New(cfg, bkt, discard, reg)
			if err != nil {
				t.Fatal(err)
			}
			// Prometheus' index writer refuses a chunk that starts before
			// the previous one ends, so the block's index is read as an
			// older writer could have left it.
			c.verify = func(ctx context.Context, dir string, minT, maxT int64) (indexHealth, error) {
				h, err := verifyIndex(ctx, dir, minT, maxT)
				if filepath.Base(dir) == bad.String() {
					h.outOfOrderSeries, h.outOfOrderChunks = 1, 1
				}
				return h, err
			}
			if err := c.starting(ctx); err != nil {
				t.Fatal(err)
			}
			err = c.Compact(ctx)
			if !skip {
				if err == nil || !strings.Contains(err.Error(), "block "+bad.String()+": 1/2 series have out-of-order chunks") || !strings.Contains(err.Error(), "-compactor.skip-blocks-with-out-of-order-chunks-enabled") {
					t.Fatalf("compaction: %v, want the out-of-order chunks of block %s named", err, bad)
				}
				if got := len(liveBlocks(t, bkt, tenant)); got != 3 {
					t.Fatalf("%d live blocks after the failed compaction, want the 3 sources", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			noCompact, err := noCompactMarked(ctx, objstore.NewPrefixedBucket(bkt, tenant))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := noCompact[bad]; !ok || len(noCompact) != 1 {
				t.Fatalf("no-compact marks %v, want %s only", noCompact, bad)
			}
			var live []ulid.ULID
			for _, bl := range liveBlocks(t, bkt, tenant) {
				live = append(live, bl.ID)
			}
			if len(live) != 2 || !slices.Contains(live, bad) || slices.Contains(live, a) || slices.Contains(live, b) {
				t.Fatalf("live blocks %v: want %s and the merge of %s and %s", live, bad, a, b)
			}
			if got := testkit.MetricSum(t, reg, "cortex_compactor_blocks_marked_for_no_compaction_total"); got != 1 {
				t.Fatalf("cortex_compactor_blocks_marked_for_no_compaction_total %v, want 1", got)
			}
		})
	}
}

// A source block with unsorted label names fails the compaction unless
// -compactor.accept-malformed-index.
func TestMalformedIndex(t *testing.T) {
	for _, accept := range []bool{false, true} {
		t.Run(map[bool]string{false: "refuse", true: "accept"}[accept], func(t *testing.T) {
			ctx := context.Background()
			bkt := newFSBucket(t)
			const tenant = "team-a"
			shipBlock(t, bkt, tenant, 2, 0, 2*hour, testStep)
			bad := shipCraftedBlock(t, bkt, tenant, 0, 2*hour, []craftedSeries{
				{lset: unsortedLabels("series", "9", "__name__", "test_metric"), ranges: [][2]int64{{0, 1000}}},
			})
			cfg := testConfig(t)
			cfg.AcceptMalformedIndex = accept
			cfg.CompactionRetries = 0 // one attempt: the block fails each one the same
			c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry())
			if err != nil {
				t.Fatal(err)
			}
			if err := c.starting(ctx); err != nil {
				t.Fatal(err)
			}
			err = c.Compact(ctx)
			refused := err != nil && strings.Contains(err.Error(), "block "+bad.String()+": index contains 1 series with out of order labels; try running with -compactor.accept-malformed-index")
			if refused == accept {
				t.Fatalf("compaction with -compactor.accept-malformed-index=%v: %v", accept, err)
			}
			if accept && err != nil {
				t.Fatalf("compaction accepting the malformed index: %v", err)
			}
		})
	}
}

func storageRef(i int) storage.SeriesRef { return storage.SeriesRef(i + 1) }
