package storegateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
)

// BenchmarkStoreGatewayMemory loads a bucket holding one 2-hour block of
// 1,000,000 series (100 metric names times 10,000 instances, 5 labels,
// 4 samples each) into a BucketStore and reports what the store keeps per
// series: live heap after a GC (heap-B/series), and the local copy of the
// index (index-B/series), which the TSDB's block reader mmaps, so it costs
// page cache rather than heap. One load is one op; run it with
// -benchtime=1x, as the block alone takes a while to build.
func BenchmarkStoreGatewayMemory(b *testing.B) {
	const (
		names     = 100
		instances = 10_000
		nSeries   = names * instances
	)
	bkt := newBucket(b)
	start := time.Now()
	uploadBlock(b, bkt, "t1", writeLargeBlock(b, names, instances), true)
	b.Logf("built and uploaded a block of %d series in %s", nSeries, time.Since(start).Round(time.Millisecond))

	var heap, indexBytes int64
	for b.Loop() {
		// A fresh sync directory each time, so every op downloads the index.
		cfg := testConfig(b)
		before := liveHeap()
		s, err := NewBucketStore(cfg, bkt, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.SyncBlocks(context.Background()); err != nil {
			b.Fatal(err)
		}
		heap = int64(liveHeap()) - int64(before)
		ids := s.Blocks("t1")
		if len(ids) != 1 {
			b.Fatalf("%d blocks loaded, want 1", len(ids))
		}
		st, err := os.Stat(filepath.Join(cfg.SyncDir, "t1", ids[0].String(), indexFilename))
		if err != nil {
			b.Fatal(err)
		}
		indexBytes = st.Size()
		// A query proves the block is served, not merely listed.
		q, err := s.Querier("t1", 0, 2*hour)
		if err != nil {
			b.Fatal(err)
		}
		ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "instance", "host-00042"))
		n := 0
		for ss.Next() {
			n++
		}
		if err := ss.Err(); err != nil || n != names {
			b.Fatalf("select: %d series, %v; want %d", n, err, names)
		}
		_ = q.Close()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(heap)/nSeries, "heap-B/series")
	b.ReportMetric(float64(indexBytes)/nSeries, "index-B/series")
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// writeLargeBlock writes a block of names*instances series with the TSDB's
// own index and chunk writers, as its compactor does. tsdb.CreateBlock
// would first hold every series in a head, a few GB at a million series.
// Series are generated in label order, as the index writer requires.
func writeLargeBlock(b *testing.B, names, instances int) string {
	b.Helper()
	ctx := context.Background()
	id := ulid.MustNew(ulid.Now(), nil)
	dir := filepath.Join(b.TempDir(), id.String())
	cw, err := chunks.NewWriter(filepath.Join(dir, chunksDirname))
	if err != nil {
		b.Fatal(err)
	}
	iw, err := index.NewWriter(ctx, filepath.Join(dir, indexFilename))
	if err != nil {
		b.Fatal(err)
	}
	metric := func(i int) string { return fmt.Sprintf("metric_%03d", i) }
	instance := func(i int) string { return fmt.Sprintf("host-%05d", i) }
	job := func(i int) string { return fmt.Sprintf("job-%d", i%10) }
	const cluster, zone = "eu-west-1", "eu-west-1a"

	// Symbols go first, sorted: every name and value of every label.
	syms := map[string]struct{}{"__name__": {}, "cluster": {}, "instance": {}, "job": {}, "zone": {}, cluster: {}, zone: {}}
	for i := range names {
		syms[metric(i)] = struct{}{}
	}
	for i := range instances {
		syms[instance(i)] = struct{}{}
		syms[job(i)] = struct{}{}
	}
	sorted := make([]string, 0, len(syms))
	for s := range syms {
		sorted = append(sorted, s)
	}
	slices.Sort(sorted)
	for _, s := range sorted {
		if err := iw.AddSymbol(s); err != nil {
			b.Fatal(err)
		}
	}

	const nSamples, step = 4, 30_000
	var (
		ref     storage.SeriesRef
		samples uint64
	)
	for m := range names {
		for i := range instances {
			c := chunkenc.NewXORChunk()
			app, err := c.Appender()
			if err != nil {
				b.Fatal(err)
			}
			for s := range nSamples {
				app.Append(0, int64(s)*step, float64(m+i+s))
			}
			metas := []chunks.Meta{{MinTime: 0, MaxTime: (nSamples - 1) * step, Chunk: c}}
			if err := cw.WriteChunks(metas...); err != nil {
				b.Fatal(err)
			}
			ref++
			lset := labels.FromStrings("__name__", metric(m), "cluster", cluster, "instance", instance(i), "job", job(i), "zone", zone)
			if err := iw.AddSeries(ref, lset, metas...); err != nil {
				b.Fatal(err)
			}
			samples += nSamples
		}
	}
	if err := cw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := iw.Close(); err != nil {
		b.Fatal(err)
	}
	meta := tsdb.BlockMeta{
		ULID: id, MinTime: 0, MaxTime: 2 * hour,
		Stats:      tsdb.BlockStats{NumSamples: samples, NumFloatSamples: samples, NumSeries: uint64(ref), NumChunks: uint64(ref)},
		Compaction: tsdb.BlockMetaCompaction{Level: 1, Sources: []ulid.ULID{id}},
		Version:    1, // the only meta.json version the TSDB reads
	}
	raw, err := json.Marshal(meta)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, metaFilename), raw, 0o600); err != nil {
		b.Fatal(err)
	}
	return dir
}
