package compactor

import (
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
)

func TestPlan(t *testing.T) {
	ranges := []int64{2 * hour, 12 * hour, 24 * hour}
	var n uint64
	blk := func(minH, maxH int64) *bucketindex.Block {
		n++
		return &bucketindex.Block{ID: ulid.MustNew(n, strings.NewReader(strings.Repeat("x", 16))), MinTime: minH * hour, MaxTime: maxH * hour}
	}
	span := func(bs bucketindex.Blocks) [2]int64 {
		if len(bs) == 0 {
			return [2]int64{}
		}
		lo, hi := bs[0].MinTime, bs[0].MaxTime
		for _, b := range bs {
			lo, hi = min(lo, b.MinTime), max(hi, b.MaxTime)
		}
		return [2]int64{lo / hour, hi / hour}
	}

	// Replicas of one range are merged first, even with other work due.
	r1, r2, r3 := blk(0, 2), blk(0, 2), blk(0, 2)
	blocks := bucketindex.Blocks{blk(2, 4), r1, blk(4, 6), r2, blk(6, 8), blk(8, 10), blk(10, 12), r3, blk(12, 14)}
	if got := plan(ranges, blocks); len(got) != 3 || span(got) != [2]int64{0, 2} {
		t.Fatalf("with replicas: planned %d blocks over %v, want the 3 replicas of 0h-2h", len(got), span(got))
	}

	// Six 2h blocks fill 0h-12h: one 12h compaction.
	full := bucketindex.Blocks{blk(0, 2), blk(2, 4), blk(4, 6), blk(6, 8), blk(8, 10), blk(10, 12), blk(12, 14)}
	if got := plan(ranges, full); len(got) != 6 || span(got) != [2]int64{0, 12} {
		t.Fatalf("full range: planned %d blocks over %v, want 6 over 0h-12h", len(got), span(got))
	}

	// A range not yet full, with nothing newer past it, waits.
	if got := plan(ranges, bucketindex.Blocks{blk(0, 2), blk(2, 4), blk(4, 6)}); got != nil {
		t.Fatalf("partial range with no newer block: planned %v", span(got))
	}
	// The newest block is not compacted even when its range is full.
	if got := plan(ranges, bucketindex.Blocks{blk(0, 12), blk(12, 14)}); got != nil {
		t.Fatalf("12h block and the newest: planned %v", span(got))
	}

	// A range with a gap is compacted once a newer block is past it.
	gappy := bucketindex.Blocks{blk(0, 2), blk(4, 6), blk(24, 26), blk(26, 28)}
	if got := plan(ranges, gappy); len(got) != 2 || span(got) != [2]int64{0, 6} {
		t.Fatalf("gap then newer blocks: planned %d over %v, want 0h-2h and 4h-6h", len(got), span(got))
	}

	// One block, or none, is nothing to do.
	if got := plan(ranges, bucketindex.Blocks{blk(0, 2)}); got != nil {
		t.Fatalf("one block: planned %v", span(got))
	}
}
