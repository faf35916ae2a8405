package querier

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/protobuf/proto"

	"github.com/cortex-tls/cortex/pkg/ingester/client"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// With -distributor.extra-query-delay the ingesters a quorum needs are
// asked at once and the last of the replication set only after the delay,
// or at once when a call fails, as Cortex's ReplicationSet.Do schedules
// them; -querier.minimize-ingester-requests' schedule no longer applies.
func TestExtraQueryDelay(t *testing.T) {
	lbls := map[string]string{"__name__": "m"}
	ctx := tenant.Inject(context.Background(), "t1")
	want := []float64{1000, 1}
	asked := func(c *testCluster) (n int64) {
		for _, f := range c.ingesters {
			n += f.queries.Swap(0)
		}
		return n
	}
	check := func(c *testCluster, what string) {
		t.Helper()
		got, err := selectAll(ctx, c.querier.Queryable(), "m")
		if err != nil || !slices.Equal(got[`{__name__="m"}`], want) {
			t.Fatalf("%s: got %v %v, want %v", what, got, err, want)
		}
	}

	// A delay no test waits for: the third ingester is only asked when
	// another fails.
	long := newCluster(t, clusterOpts{cfg: func(cfg *Config) {
		cfg.ExtraQueryDelay = time.Hour
		cfg.MinimizeIngesterRequestsHedgingDelay = time.Millisecond
	}})
	long.add("t1", series(lbls, sample(1000, 1)))
	for range 10 {
		check(long, "healthy ingesters")
		if n := asked(long); n != 2 {
			t.Fatalf("healthy ingesters: %d asked, want the 2 of a quorum (the third waits for the delay)", n)
		}
	}
	long.ingesters[0].fail.Store(true)
	for range 10 {
		// Whether ingester 0 was among the first two or the delayed one,
		// the answer comes now: its failure starts the delayed call.
		check(long, "ingester 0 failing")
		if n := asked(long); n < 2 || n > 3 {
			t.Fatalf("ingester 0 failing: %d asked", n)
		}
	}
	querier, _ := long.querier.Queryable().Querier(0, 1<<40)
	if vals, _, err := querier.LabelValues(ctx, "__name__", nil); err != nil || !slices.Equal(vals, []string{"m"}) {
		t.Fatalf("label values with ingester 0 failing: %v %v", vals, err)
	}

	// A short delay: an ingester that hangs among the first two is
	// overtaken by the delayed one.
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	short := newCluster(t, clusterOpts{cfg: func(cfg *Config) {
		cfg.ExtraQueryDelay = 50 * time.Millisecond
		cfg.MinimizeIngesterRequestsHedgingDelay = time.Hour
	}})
	short.add("t1", series(lbls, sample(1000, 1)))
	short.ingesters[0].block = hang
	// Each Select answers despite the hang; they go on until one has
	// reached ingester 0 among its first two (a third of them ask it last,
	// and a loaded machine may cancel a call before it reaches the
	// ingester).
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 10 || short.ingesters[0].queries.Load() == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d Selects never reached ingester 0", i)
		}
		check(short, "ingester 0 hanging")
	}

	// Without the delay, and without minimizing, every ingester is asked.
	all := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MinimizeIngesterRequests = false }})
	all.add("t1", series(lbls, sample(1000, 1)))
	for i := range 10 {
		check(all, "no delay")
		// The third call may still be on its way when the quorum answered.
		if n := asked(all); n < 2 {
			t.Fatalf("select %d without delay: %d asked", i, n)
		}
	}

	cfg := defaultConfig()
	cfg.ExtraQueryDelay = -time.Second
	if err := cfg.Validate(); err == nil || err.Error() != "-distributor.extra-query-delay must not be negative, got -1s" {
		t.Fatalf("a negative delay: %v", err)
	}
}

// With -querier.ingester-metadata-streaming (the default) label names,
// label values and series come over the ingesters' streaming calls and
// answer what the unary calls do; the series limits hold as the batches
// arrive.
func TestIngesterMetadataStreaming(t *testing.T) {
	type answer struct {
		names, values, series []string
	}
	read := func(c *testCluster) (answer, error) {
		ctx := tenant.Inject(context.Background(), "t1")
		q, _ := c.querier.Queryable().Querier(0, 1<<40)
		var a answer
		var err error
		m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")
		if a.names, _, err = q.LabelNames(ctx, nil, m); err != nil {
			return a, err
		}
		if a.values, _, err = q.LabelValues(ctx, "pod", nil); err != nil {
			return a, err
		}
		set := q.Select(ctx, true, &storage.SelectHints{Start: 0, End: 1 << 40, Func: "series"}, m)
		for set.Next() {
			a.series = append(a.series, set.At().Labels().String())
		}
		return a, set.Err()
	}
	build := func(streaming bool, limits func(*validation.Limits)) *testCluster {
		c := newCluster(t, clusterOpts{limits: limits, cfg: func(cfg *Config) {
			cfg.IngesterMetadataStreaming = streaming
			cfg.MinimizeIngesterRequests = false
		}})
		for i := range 300 {
			c.add("t1", series(map[string]string{"__name__": "m", "pod": fmt.Sprintf("pod-%03d", i), fmt.Sprintf("l%03d", i%150): "x"}, sample(1000, 1)))
		}
		return c
	}

	streamed, unary := build(true, nil), build(false, nil)
	got, err := read(streamed)
	if err != nil {
		t.Fatal(err)
	}
	want, err := read(unary)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.names) != 152 || len(want.values) != 300 || len(want.series) != 300 {
		t.Fatalf("unary answers: %d names, %d values, %d series, want 152, 300 and 300", len(want.names), len(want.values), len(want.series))
	}
	if !slices.Equal(got.names, want.names) || !slices.Equal(got.values, want.values) || !slices.Equal(got.series, want.series) {
		t.Fatalf("streamed answers differ from the unary ones: %d names, %d values, %d series", len(got.names), len(got.values), len(got.series))
	}
	var streams, unaryStreams int64
	for i := range streamed.ingesters {
		streams += streamed.ingesters[i].seriesStreams.Load()
		unaryStreams += unary.ingesters[i].seriesStreams.Load()
	}
	if streams == 0 || unaryStreams != 0 {
		t.Fatalf("SeriesStream calls: %d streaming, %d without, want some and none", streams, unaryStreams)
	}

	limited := build(true, func(l *validation.Limits) { l.MaxFetchedSeriesPerQuery = 200 })
	if _, err := read(limited); err == nil || !strings.Contains(err.Error(), "the query hit the max number of series fetched limit (limit: 200 series") {
		t.Fatalf("300 series streamed under a limit of 200: %v", err)
	}
}

// One ingester's stream of label names, label values or series gathers at
// most -ingester.client.grpc-max-recv-msg-size bytes, as the unary call's
// answer holds: at exactly the unary answer's size both answer the same,
// one byte less refuses both, the stream with an error naming the flag.
func TestIngesterMetadataStreamBytes(t *testing.T) {
	ctx := tenant.Inject(context.Background(), "t1")
	build := func(streaming bool, maxRecv int) *testCluster {
		c := newCluster(t, clusterOpts{
			cfg: func(cfg *Config) {
				cfg.IngesterMetadataStreaming = streaming
				cfg.MinimizeIngesterRequests = false
			},
			client: func(cfg *client.Config) { cfg.MaxRecvMsgSize = maxRecv },
		})
		for i := range 300 {
			c.add("t1", series(map[string]string{"__name__": "m", "pod": fmt.Sprintf("pod-%03d", i), fmt.Sprintf("l%03d", i%150): "x"}, sample(1000, 1)))
		}
		return c
	}
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")
	reads := []struct {
		what string
		read func(storage.Querier) ([]string, error)
		size func(*fakeIngester) (int, error)
	}{{
		what: "label names",
		read: func(q storage.Querier) ([]string, error) {
			names, _, err := q.LabelNames(ctx, nil)
			return names, err
		},
		size: func(f *fakeIngester) (int, error) {
			r, err := f.LabelNames(ctx, &client.LabelNamesRequest{StartMs: 0, EndMs: 1 << 40})
			return proto.Size(r), err
		},
	}, {
		what: "label values",
		read: func(q storage.Querier) ([]string, error) {
			values, _, err := q.LabelValues(ctx, "pod", nil)
			return values, err
		},
		size: func(f *fakeIngester) (int, error) {
			r, err := f.LabelValues(ctx, &client.LabelValuesRequest{Name: "pod", StartMs: 0, EndMs: 1 << 40})
			return proto.Size(r), err
		},
	}, {
		what: "series",
		read: func(q storage.Querier) ([]string, error) {
			var out []string
			set := q.Select(ctx, true, &storage.SelectHints{Start: 0, End: 1 << 40, Func: "series"}, m)
			for set.Next() {
				out = append(out, set.At().Labels().String())
			}
			return out, set.Err()
		},
		size: func(f *fakeIngester) (int, error) {
			r, err := f.Series(ctx, &client.SeriesRequest{StartMs: 0, EndMs: 1 << 40, MatcherSets: client.ToMatcherSets([]*labels.Matcher{m})})
			return proto.Size(r), err
		},
	}}
	unbounded := build(false, 100<<20)
	for _, r := range reads {
		size, err := r.size(unbounded.ingesters[0])
		if err != nil {
			t.Fatal(err)
		}
		q, _ := unbounded.querier.Queryable().Querier(0, 1<<40)
		want, err := r.read(q)
		if err != nil || len(want) < 150 {
			t.Fatalf("%s, unary: %d answers, %v", r.what, len(want), err)
		}
		for _, streaming := range []bool{true, false} {
			q, _ = build(streaming, size).querier.Queryable().Querier(0, 1<<40)
			if got, err := r.read(q); err != nil || !slices.Equal(got, want) {
				t.Fatalf("%s, streaming %v, at the limit of %d bytes: %d answers, %v; want the %d unbounded", r.what, streaming, size, len(got), err, len(want))
			}
			q, _ = build(streaming, size-1).querier.Queryable().Querier(0, 1<<40)
			_, err := r.read(q)
			wantErr := "larger than max"
			if streaming {
				wantErr = fmt.Sprintf("the %s streamed exceed %d bytes, the max size of one answer (-ingester.client.grpc-max-recv-msg-size): narrow the matchers or the time range", r.what, size-1)
			}
			if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), "ResourceExhausted") {
				t.Fatalf("%s, streaming %v, over the limit of %d bytes: %v, want ResourceExhausted with %q", r.what, streaming, size-1, err, wantErr)
			}
		}
	}
}
