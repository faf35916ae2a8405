package storegateway

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// With -blocks-storage.bucket-store.lazy-expanded-postings-enabled, a
// regular expression over 111 values of a label, when an equality matcher
// leaves at most 2 series, is checked on those series' labels rather than
// expanded (111 > 10 x 2 with a ratio of 10), as is a negative one
// excluding 111 values, with the same answer; with a ratio of 100 both are
// expanded.
func TestLazyExpandedPostings(t *testing.T) {
	bkt := newBucket(t)
	var series []storage.Series
	for i := range 1000 {
		id := strconv.Itoa(i)
		series = append(series, genSeries{
			lset:  labels.FromStrings("__name__", "m", "id", id, "job", "j"+strconv.Itoa(i%500)),
			start: 0, step: 15000, n: 10, val: func(int64) float64 { return float64(i) },
		})
	}
	uploadBlock(t, bkt, "t1", writeBlock(t, series), true)
	ms := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "job", "j1"),
		labels.MustNewMatcher(labels.MatchRegexp, "id", "1.*"),
		labels.MustNewMatcher(labels.MatchNotRegexp, "id", "5.*"),
	}

	answers := map[string][]string{}
	for _, tc := range []struct {
		name     string
		enabled  bool
		ratio    float64
		wantLazy float64
	}{
		{"disabled", false, 10, 0},
		{"lazy", true, 10, 2}, // id=~"1.*" merges 111 values, id!~"5.*" subtracts 111
		{"ratio 100", true, 100, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.LazyExpandedPostingsEnabled = tc.enabled
			cfg.LazyExpandedPostingGroupMaxKeySeriesRatio = tc.ratio
			s, reg := newStore(t, cfg, bkt)
			syncStore(t, s)
			names, _ := selectAll(t, querier(t, s, "t1", minT, maxT), nil, ms...)
			answers[tc.name] = names
			if n := testkit.MetricSum(t, reg, "cortex_bucket_store_lazy_expanded_posting_groups_total"); tc.enabled && n != tc.wantLazy {
				t.Fatalf("%v lazy matchers, want %v", n, tc.wantLazy)
			}
		})
	}
	want := []string{`{__name__="m", id="1", job="j1"}`}
	for name, got := range answers {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// BenchmarkLazyExpandedPostings selects, from a block of 100,000 series,
// the 2 of one job whose instance matches a regular expression over
// 11,111 of the 100,000 instance values, with the regular expression's
// postings expanded and merged, or checked on the 2 series' labels
// (-lazy-expanded-postings-enabled). Labels only: the index work alone.
func BenchmarkLazyExpandedPostings(b *testing.B) {
	const nSeries = 100000
	bkt := newBucket(b)
	series := make([]storage.Series, nSeries)
	for i := range series {
		series[i] = genSeries{
			lset:  labels.FromStrings("__name__", "m", "instance", strconv.Itoa(i), "job", "j"+strconv.Itoa(i%50000)),
			start: 0, step: 15000, n: 1, val: func(int64) float64 { return 1 },
		}
	}
	uploadBlock(b, bkt, "t1", writeBlock(b, series), true)
	ms := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "job", "j1"),
		labels.MustNewMatcher(labels.MatchRegexp, "instance", "1.*"),
	}
	for _, lazy := range []bool{false, true} {
		b.Run(fmt.Sprintf("lazy=%v", lazy), func(b *testing.B) {
			cfg := testConfig(b)
			cfg.IndexCache.Backend = ""
			cfg.LazyExpandedPostingsEnabled = lazy
			cfg.LazyExpandedPostingGroupMaxKeySeriesRatio = 100
			s, _ := newStore(b, cfg, bkt)
			syncStore(b, s)
			hints := &storage.SelectHints{Start: minT, End: maxT, Func: "series"}
			for b.Loop() {
				q, err := s.Querier("t1", minT, maxT)
				if err != nil {
					b.Fatal(err)
				}
				ss := q.Select(context.Background(), true, hints, ms...)
				n := 0
				for ss.Next() {
					n++
				}
				if ss.Err() != nil || n != 1 {
					b.Fatalf("%d series, %v", n, ss.Err())
				}
				_ = q.Close()
			}
		})
	}
}
