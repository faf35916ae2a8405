package querier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// selectAll reads every series named m as the engine would.
func selectAll(ctx context.Context, q storage.Queryable, m string) (map[string][]float64, error) {
	querier, err := q.Querier(0, 1<<40)
	if err != nil {
		return nil, err
	}
	defer querier.Close()
	set := querier.Select(ctx, true, &storage.SelectHints{Start: 0, End: 1 << 40}, labels.MustNewMatcher(labels.MatchEqual, "__name__", m))
	out := map[string][]float64{}
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		var vals []float64
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			vals = append(vals, float64(ts), v)
		}
		out[s.Labels().String()] = vals
	}
	return out, set.Err()
}

func TestFanOutToleratesOneFailedIngester(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	lbls := map[string]string{"__name__": "m"}
	// Every sample sits on two of the three ingesters, as after writes that
	// reached a quorum: any two ingesters together hold all of them.
	c.ingesters[0].add("t1", series(lbls, sample(1000, 1), sample(2000, 2), sample(4000, 4)))
	c.ingesters[1].add("t1", series(lbls, sample(2000, 2), sample(3000, 3), sample(4000, 4), sample(5000, 5)))
	c.ingesters[2].add("t1", series(lbls, sample(1000, 1), sample(3000, 3), sample(5000, 5)))
	ctx := tenant.Inject(context.Background(), "t1")
	want := []float64{1000, 1, 2000, 2, 3000, 3, 4000, 4, 5000, 5}

	for down := -1; down < 3; down++ {
		for i, f := range c.ingesters {
			f.fail.Store(i == down)
		}
		got, err := selectAll(ctx, c.querier.Queryable(), "m")
		if err != nil {
			t.Fatalf("ingester %d down: %v", down, err)
		}
		if !slices.Equal(got[`{__name__="m"}`], want) {
			t.Fatalf("ingester %d down: got %v, want %v", down, got, want)
		}
	}

	// Two of three down is more than replication factor minus quorum.
	c.ingesters[0].fail.Store(true)
	c.ingesters[1].fail.Store(true)
	c.ingesters[2].fail.Store(false)
	_, err := selectAll(ctx, c.querier.Queryable(), "m")
	var unavailable *unavailableError
	if !errors.As(err, &unavailable) || !strings.Contains(err.Error(), "fake ingester down") {
		t.Fatalf("two ingesters down: got %v, want an unavailable error naming the cause", err)
	}
	querier, _ := c.querier.Queryable().Querier(0, 1<<40)
	if _, _, err := querier.LabelNames(ctx, nil); !errors.As(err, &unavailable) {
		t.Fatalf("LabelNames with two ingesters down: %v", err)
	}
}

// TestMinimizedIngesterRequests: a Select asks a quorum (two of three
// ingesters) first; one that fails or hangs past the hedging delay is
// replaced by the third, and the answer is whole either way.
func TestMinimizedIngesterRequests(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MinimizeIngesterRequestsHedgingDelay = 100 * time.Millisecond }})
	lbls := map[string]string{"__name__": "m"}
	c.ingesters[0].add("t1", series(lbls, sample(1000, 1), sample(2000, 2)))
	c.ingesters[1].add("t1", series(lbls, sample(2000, 2), sample(3000, 3)))
	c.ingesters[2].add("t1", series(lbls, sample(1000, 1), sample(3000, 3)))
	ctx := tenant.Inject(context.Background(), "t1")
	want := []float64{1000, 1, 2000, 2, 3000, 3}
	asked := func() (n int64) {
		for _, f := range c.ingesters {
			n += f.queries.Swap(0)
		}
		return n
	}

	got, err := selectAll(ctx, c.querier.Queryable(), "m")
	if err != nil || !slices.Equal(got[`{__name__="m"}`], want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	if n := asked(); n != 2 {
		t.Fatalf("%d ingesters asked, want a quorum of 2", n)
	}

	// Ingester 0 hangs: whenever it is among the first two asked, the
	// third is asked after the hedging delay. Ten Selects pick it at least
	// once but with probability (1/3)^10.
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	c2 := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MinimizeIngesterRequestsHedgingDelay = 100 * time.Millisecond }})
	for i, f := range c2.ingesters {
		f.series = c.ingesters[i].series
	}
	c2.ingesters[0].block = hang
	for range 10 {
		start := time.Now()
		got, err := selectAll(ctx, c2.querier.Queryable(), "m")
		if err != nil || !slices.Equal(got[`{__name__="m"}`], want) {
			t.Fatalf("ingester 0 hanging: got %v %v, want %v", got, err, want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("ingester 0 hanging: the answer took %s with a 100ms hedging delay", took)
		}
	}
	if c2.ingesters[0].queries.Load() == 0 {
		t.Fatal("ten Selects never asked ingester 0")
	}
}

// The single-process setup: one ingester, replication factor 1, no
// failure tolerated.
func TestSingleIngester(t *testing.T) {
	c := newCluster(t, clusterOpts{ingesters: 1, rf: 1})
	c.add("t1", series(map[string]string{"__name__": "m"}, sample(1000, 1)))
	ctx := tenant.Inject(context.Background(), "t1")
	if got, err := selectAll(ctx, c.querier.Queryable(), "m"); err != nil || !slices.Equal(got[`{__name__="m"}`], []float64{1000, 1}) {
		t.Fatalf("got %v, %v", got, err)
	}
	c.ingesters[0].fail.Store(true)
	var unavailable *unavailableError
	if _, err := selectAll(ctx, c.querier.Queryable(), "m"); !errors.As(err, &unavailable) {
		t.Fatalf("ingester down: got %v, want unavailable", err)
	}
}

func TestSelectMergesReplicasAndHonoursHints(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.add("t1",
		series(map[string]string{"__name__": "m", "job": "b"}, sample(1000, 1), sample(2000, 2), sample(3000, 3)),
		series(map[string]string{"__name__": "m", "job": "a"}, sample(1000, 10), sample(2000, 20)),
		series(map[string]string{"__name__": "other"}, sample(1000, 5)),
	)
	ctx := tenant.Inject(context.Background(), "t1")
	querier, err := c.querier.Queryable().Querier(0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	set := querier.Select(ctx, false, &storage.SelectHints{Start: 2000, End: 3000, Func: "rate"},
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"), labels.MustNewMatcher(labels.MatchRegexp, "job", "a|b"))
	var got []string
	for set.Next() {
		s := set.At()
		it := s.Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			got = append(got, fmt.Sprintf("%s@%d=%g", s.Labels().Get("job"), ts, v))
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	// Sorted by labels, each sample once although three ingesters sent it,
	// only the hinted time range.
	if want := []string{"a@2000=20", "b@2000=2", "b@3000=3"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	names, _, err := querier.LabelNames(ctx, nil)
	if err != nil || !slices.Equal(names, []string{"__name__", "job"}) {
		t.Fatalf("LabelNames = %v, %v", names, err)
	}
	vals, _, err := querier.LabelValues(ctx, "job", nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	if err != nil || !slices.Equal(vals, []string{"a", "b"}) {
		t.Fatalf("LabelValues = %v, %v", vals, err)
	}

	// Without a tenant in the context nothing is read.
	set = querier.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	if set.Next() || set.Err() == nil {
		t.Fatal("Select without a tenant succeeded")
	}
}

func TestLabelsMergedAcrossReplicas(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	for i, jobs := range [][]string{{"a", "b"}, {"b", "c"}, {"a", "c"}} {
		for _, j := range jobs {
			c.ingesters[i].add("t1", series(map[string]string{"__name__": "m", "job": j, "only_" + j: "x"}, sample(1000, 1)))
		}
	}
	ctx := tenant.Inject(context.Background(), "t1")
	querier, _ := c.querier.Queryable().Querier(0, 10000)
	vals, _, err := querier.LabelValues(ctx, "job", nil)
	if err != nil || !slices.Equal(vals, []string{"a", "b", "c"}) {
		t.Fatalf("LabelValues = %v, %v", vals, err)
	}
	names, _, err := querier.LabelNames(ctx, &storage.LabelHints{Limit: 3})
	if err != nil || !slices.Equal(names, []string{"__name__", "job", "only_a"}) {
		t.Fatalf("LabelNames with limit 3 = %v, %v", names, err)
	}
}

func TestQueryLimits(t *testing.T) {
	three := func(c *testCluster) {
		for _, j := range []string{"a", "b", "c"} {
			c.add("t1", series(map[string]string{"__name__": "m", "job": j}, sample(1000, 1), sample(2000, 2)))
		}
	}
	ctx := tenant.Inject(context.Background(), "t1")
	for _, tc := range []struct {
		name   string
		limits func(*validation.Limits)
		err    string
	}{
		{"series at the limit", func(l *validation.Limits) { l.MaxSeriesPerQuery = 3 }, ""},
		{"series over the limit", func(l *validation.Limits) { l.MaxSeriesPerQuery = 2 }, "max number of series limit (limit: 2 series, set by -querier.max-series-per-query"},
		{"samples at the limit", func(l *validation.Limits) { l.MaxFetchedSamplesPerQry = 6 }, ""},
		{"samples over the limit", func(l *validation.Limits) { l.MaxFetchedSamplesPerQry = 5 }, "max number of samples fetched limit (limit: 5 samples, set by -querier.max-fetched-samples-per-query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{limits: tc.limits})
			three(c)
			got, err := selectAll(ctx, c.querier.Queryable(), "m")
			if tc.err == "" {
				if err != nil || len(got) != 3 {
					t.Fatalf("got %d series, %v", len(got), err)
				}
				return
			}
			var le *limitError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want a limit error containing %q", err, tc.err)
			}
		})
	}
}

func TestSeriesLimitCountsAcrossSelectors(t *testing.T) {
	c := newCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxSeriesPerQuery = 3 }})
	for _, j := range []string{"a", "b"} {
		c.add("t1", series(map[string]string{"__name__": "m", "job": j}, sample(1000, 1)))
	}
	ctx := tenant.Inject(context.Background(), "t1")
	querier, _ := c.querier.Queryable().Querier(0, 10000)
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")
	if set := querier.Select(ctx, true, nil, m); set.Err() != nil {
		t.Fatal(set.Err())
	}
	// The second selector of the same query brings the total to four.
	if set := querier.Select(ctx, true, nil, m); set.Err() == nil {
		t.Fatal("the series limit did not count the query's earlier selectors")
	}
}
