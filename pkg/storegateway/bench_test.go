package storegateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// BenchmarkSelect reads a block of 10,000 series of 2 hours at a 15s
// interval (480 samples, 4 chunks each) from a filesystem bucket: all of
// it, and 100 series picked by a label.
func BenchmarkSelect(b *testing.B) {
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
	s, _ := newStore(b, testConfig(b), bkt)
	syncStore(b, s)
	id := s.Blocks("t1")[0]
	st, err := os.Stat(filepath.Join(s.cfg.SyncDir, "t1", id.String(), indexFilename))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("local index: %d bytes for %d series (%.0f bytes per series)", st.Size(), nSeries, float64(st.Size())/nSeries)

	for _, bc := range []struct {
		name    string
		matcher *labels.Matcher
		series  int
	}{
		{"all-10k-series", labels.MustNewMatcher(labels.MatchEqual, "__name__", "bench"), nSeries},
		{"100-series", labels.MustNewMatcher(labels.MatchEqual, "job", "job-7"), nSeries / 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var it chunkenc.Iterator
			for b.Loop() {
				q, err := s.Querier("t1", 0, 2*hour)
				if err != nil {
					b.Fatal(err)
				}
				ss := q.Select(context.Background(), true, nil, bc.matcher)
				n, samples := 0, 0
				for ss.Next() {
					n++
					it = ss.At().Iterator(it)
					for it.Next() != chunkenc.ValNone {
						samples++
					}
				}
				if err := ss.Err(); err != nil {
					b.Fatal(err)
				}
				if n != bc.series || samples != bc.series*480 {
					b.Fatalf("%d series, %d samples", n, samples)
				}
				_ = q.Close()
			}
		})
	}
}
