package storegateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
)

// benchMatchers are the matcher sets of BenchmarkSelectIndexCache, over a
// block of 10,000 series with 10,000 instances and 100 jobs.
var benchMatchers = []struct {
	name   string
	ms     []*labels.Matcher
	series int
}{
	{"equal-100-series", []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "bench"),
		labels.MustNewMatcher(labels.MatchEqual, "job", "job-7"),
	}, 100},
	{"regex-1000-series", []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "bench"),
		labels.MustNewMatcher(labels.MatchRegexp, "instance", "host-01.*"),
	}, 1000},
	{"negative-regex-1000-series", []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "bench"),
		labels.MustNewMatcher(labels.MatchNotRegexp, "job", "job-[1-9][0-9]"),
	}, 1000},
}

func benchStore(b *testing.B, cfg Config) *BucketStore {
	const nSeries = 10000
	bkt := newBucket(b)
	series := make([]storage.Series, nSeries)
	for i := range series {
		series[i] = genSeries{
			lset:  labels.FromStrings("__name__", "bench", "instance", fmt.Sprintf("host-%05d", i), "job", fmt.Sprintf("job-%d", i%100)),
			start: 0, step: 15000, n: 480,
			val: func(t int64) float64 { return float64(t/15000%97) + float64(i) },
		}
	}
	uploadBlock(b, bkt, "t1", writeBlock(b, series), true)
	s, _ := newStore(b, cfg, bkt)
	syncStore(b, s)
	return s
}

// BenchmarkSelectIndexCache runs labels-only Selects (the series API: all
// index, no chunks) and full Selects, without caches, with the in-memory
// index cache, and with the in-memory chunks cache too (over a filesystem
// bucket, whose reads are far cheaper than an object store's); and apart
// from that the two steps of the index work: expanding postings and reading
// each series' labels and chunk references.
func BenchmarkSelectIndexCache(b *testing.B) {
	off := testConfig(b)
	on := testConfig(b)
	on.IndexCache = IndexCacheConfig{Backend: CacheBackendInMemory, InMemory: InMemoryIndexCacheConfig{MaxSizeBytes: 1 << 30}}
	all := on
	all.ChunksCache = ChunksCacheConfig{
		BucketCacheBackend: BucketCacheBackend{Backend: CacheBackendInMemory, InMemory: InMemoryBucketCacheConfig{MaxSizeBytes: 1 << 30}},
		SubrangeSize:       16000, MaxGetRangeRequests: 3, AttributesTTL: time.Hour, SubrangeTTL: time.Hour,
	}
	stores := []struct {
		name string
		s    *BucketStore
	}{{"no-cache", benchStore(b, off)}, {"index-cache", benchStore(b, on)}, {"index-and-chunks-cache", benchStore(b, all)}}

	for _, bm := range benchMatchers {
		for _, kind := range []string{"series-api", "select"} {
			for _, st := range stores {
				b.Run(bm.name+"/"+kind+"/"+st.name, func(b *testing.B) {
					b.ReportAllocs()
					hints := &storage.SelectHints{Start: 0, End: 2 * hour}
					if kind == "series-api" {
						hints.Func = "series"
					}
					for b.Loop() {
						q, err := st.s.Querier("t1", 0, 2*hour)
						if err != nil {
							b.Fatal(err)
						}
						ss := q.Select(context.Background(), true, hints, bm.ms...)
						n := 0
						for ss.Next() {
							n++
						}
						_ = q.Close()
						if err := ss.Err(); err != nil || n != bm.series {
							b.Fatalf("%d series, %v", n, err)
						}
					}
				})
			}
		}
		// The index work without the store around it.
		b.Run(bm.name+"/steps", func(b *testing.B) {
			ir, err := stores[0].s.blocks["t1"][stores[0].s.Blocks("t1")[0]].tb.Index()
			if err != nil {
				b.Fatal(err)
			}
			defer ir.Close()
			p, _ := tsdb.PostingsForMatchers(context.Background(), ir, bm.ms...)
			refs, _ := index.ExpandPostings(p)
			b.Run("expand-postings", func(b *testing.B) {
				for b.Loop() {
					p, _ := tsdb.PostingsForMatchers(context.Background(), ir, bm.ms...)
					if _, err := index.ExpandPostings(p); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("decode-cached-postings", func(b *testing.B) {
				enc := encodePostings(refs)
				for b.Loop() {
					if _, err := decodePostings(enc); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("read-series", func(b *testing.B) {
				var builder labels.ScratchBuilder
				var chks []chunks.Meta
				for b.Loop() {
					for _, r := range refs {
						if err := ir.Series(r, &builder, &chks); err != nil {
							b.Fatal(err)
						}
						_ = builder.Labels()
					}
				}
			})
			// What reading a Series item from a cache would cost: its labels
			// and chunk references decoded from a compact copy.
			b.Run("decode-cached-series", func(b *testing.B) {
				var builder labels.ScratchBuilder
				var chks []chunks.Meta
				encoded := make([][]byte, len(refs))
				for i, r := range refs {
					if err := ir.Series(r, &builder, &chks); err != nil {
						b.Fatal(err)
					}
					encoded[i] = encodeSeriesForBench(builder.Labels(), chks)
				}
				for b.Loop() {
					for _, e := range encoded {
						decodeSeriesForBench(e, &builder, &chks)
						_ = builder.Labels()
					}
				}
			})
		})
	}
}

func encodeSeriesForBench(lset labels.Labels, chks []chunks.Meta) []byte {
	var buf []byte
	buf = binary.AppendUvarint(buf, uint64(lset.Len()))
	lset.Range(func(l labels.Label) {
		buf = binary.AppendUvarint(buf, uint64(len(l.Name)))
		buf = append(buf, l.Name...)
		buf = binary.AppendUvarint(buf, uint64(len(l.Value)))
		buf = append(buf, l.Value...)
	})
	buf = binary.AppendUvarint(buf, uint64(len(chks)))
	for _, c := range chks {
		buf = binary.AppendVarint(buf, c.MinTime)
		buf = binary.AppendVarint(buf, c.MaxTime-c.MinTime)
		buf = binary.AppendUvarint(buf, uint64(c.Ref))
	}
	return buf
}

func decodeSeriesForBench(b []byte, builder *labels.ScratchBuilder, chks *[]chunks.Meta) {
	builder.Reset()
	n, k := binary.Uvarint(b)
	b = b[k:]
	str := func() string {
		l, k := binary.Uvarint(b)
		s := string(b[k : k+int(l)])
		b = b[k+int(l):]
		return s
	}
	for range n {
		name := str()
		builder.Add(name, str())
	}
	*chks = (*chks)[:0]
	n, k = binary.Uvarint(b)
	b = b[k:]
	for range n {
		mint, k1 := binary.Varint(b)
		d, k2 := binary.Varint(b[k1:])
		ref, k3 := binary.Uvarint(b[k1+k2:])
		b = b[k1+k2+k3:]
		*chks = append(*chks, chunks.Meta{MinTime: mint, MaxTime: mint + d, Ref: chunks.ChunkRef(ref)})
	}
}
