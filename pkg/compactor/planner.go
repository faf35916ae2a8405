package compactor

import (
	"slices"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
)

// plan returns the next blocks of a tenant to compact together, or nil,
// as Thanos' tsdb-based planner does:
//
//  1. Blocks that overlap in time are compacted first, whatever their
//     size: the copies of one range shipped by the replication factor's
//     ingesters, which vertical compaction merges into one.
//  2. Otherwise, for each range after the first (the blocks ingesters
//     ship are already of the first), blocks within one aligned range
//     are compacted once they span all of it, or once a newer block
//     exists past it. The newest block is left out, so that a block just
//     uploaded waits a full block range before it is compacted.
func plan(ranges []int64, blocks bucketindex.Blocks) bucketindex.Blocks {
	if len(blocks) < 2 {
		return nil
	}
	sorted := slices.Clone(blocks)
	slices.SortFunc(sorted, func(a, b *bucketindex.Block) int {
		if a.MinTime != b.MinTime {
			return cmpInt(a.MinTime, b.MinTime)
		}
		return a.ID.Compare(b.ID)
	})
	if o := overlapping(sorted); len(o) > 1 {
		return o
	}
	sorted = sorted[:len(sorted)-1]
	if len(sorted) == 0 {
		return nil
	}
	highTime := sorted[len(sorted)-1].MinTime
	for _, r := range ranges[1:] {
		for _, p := range splitByRange(sorted, r) {
			mint, maxt := p[0].MinTime, p[len(p)-1].MaxTime
			if len(p) > 1 && (maxt-mint == r || maxt <= highTime) {
				return p
			}
		}
	}
	return nil
}

// overlapping returns the first run of blocks (sorted by MinTime) that
// overlap one another.
func overlapping(sorted bucketindex.Blocks) bucketindex.Blocks {
	var group bucketindex.Blocks
	maxt := sorted[0].MaxTime
	group = append(group, sorted[0])
	for _, b := range sorted[1:] {
		if b.MinTime < maxt {
			group = append(group, b)
			maxt = max(maxt, b.MaxTime)
			continue
		}
		if len(group) > 1 {
			return group
		}
		group = bucketindex.Blocks{b}
		maxt = b.MaxTime
	}
	if len(group) > 1 {
		return group
	}
	return nil
}

// splitByRange groups blocks (sorted by MinTime) by the aligned range of
// size r they fall in; blocks that do not fit within one are left out.
func splitByRange(sorted bucketindex.Blocks, r int64) []bucketindex.Blocks {
	var parts []bucketindex.Blocks
	for i := 0; i < len(sorted); {
		b := sorted[i]
		var t0 int64
		if b.MinTime >= 0 {
			t0 = r * (b.MinTime / r)
		} else {
			t0 = r * ((b.MinTime - r + 1) / r)
		}
		if b.MaxTime > t0+r {
			i++
			continue
		}
		var group bucketindex.Blocks
		for ; i < len(sorted); i++ {
			if sorted[i].MaxTime > t0+r {
				break
			}
			group = append(group, sorted[i])
		}
		if len(group) > 0 {
			parts = append(parts, group)
		}
	}
	return parts
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
