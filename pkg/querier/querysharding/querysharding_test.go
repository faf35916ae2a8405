package querysharding

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
)

func TestExtract(t *testing.T) {
	job := labels.MustNewMatcher(labels.MatchEqual, "job", "api")
	shard := ShardInfo{ShardIndex: 1, TotalShards: 4, By: true, Labels: []string{"job"}}
	s, rest, err := Extract([]*labels.Matcher{job, shard.Matcher()})
	if err != nil || s == nil || s.ShardIndex != 1 || s.TotalShards != 4 || !s.By || len(s.Labels) != 1 || len(rest) != 1 || rest[0] != job {
		t.Fatalf("Extract = %+v, %v, %v", s, rest, err)
	}
	if s, rest, err := Extract([]*labels.Matcher{job}); s != nil || len(rest) != 1 || err != nil {
		t.Fatalf("no shard: %+v, %v, %v", s, rest, err)
	}
	other := ShardInfo{ShardIndex: 2, TotalShards: 4, By: true, Labels: []string{"job"}}
	for _, c := range []struct {
		ms   []*labels.Matcher
		want string
	}{
		{[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, LabelName, "{")}, `__CORTEX_SHARDS__: reading the shard "{": unexpected end of JSON input`},
		{[]*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, LabelName, ".*")}, `__CORTEX_SHARDS__: only = matches a shard, got __CORTEX_SHARDS__=~".*"`},
		{[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, LabelName, `{"shard_index":0,"total_shards":0}`)}, "__CORTEX_SHARDS__: total_shards must be between 1 and 1024, got 0"},
		{[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, LabelName, `{"shard_index":-1,"total_shards":2}`)}, "__CORTEX_SHARDS__: shard_index must be between 0 and total_shards-1 (1), got -1"},
		{[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, LabelName, `{"shard_index":0,"total_shards":2,"by":true}`)}, "__CORTEX_SHARDS__: a shard by labels needs at least one label"},
		{[]*labels.Matcher{shard.Matcher(), other.Matcher()}, "__CORTEX_SHARDS__: a selector names two different shards"},
	} {
		if _, _, err := Extract(c.ms); err == nil || err.Error() != c.want {
			t.Errorf("%v: error %v, want %q", c.ms, err, c.want)
		}
	}
}

// TestFilterPartitions: each series is in exactly one shard, and series
// that agree on the sharding labels (by) or on every other label (without,
// the metric name aside) are in the same shard.
func TestFilterPartitions(t *testing.T) {
	const shards = 5
	var all []labels.Labels
	for _, name := range []string{"a", "b"} {
		for j := range 7 {
			for i := range 9 {
				all = append(all, labels.FromStrings("__name__", name, "job", fmt.Sprintf("j%d", j), "instance", fmt.Sprintf("i%d", i)))
			}
		}
	}
	for _, by := range []bool{true, false} {
		// By job, or without instance (and the metric name): job either way.
		key := func(ls labels.Labels) string { return ls.Get("job") }
		shardOf := map[string]int{}
		counts := make([]int, shards)
		for _, ls := range all {
			in := -1
			for i := range shards {
				f := NewFilter(ShardInfo{ShardIndex: int64(i), TotalShards: shards, By: by, Labels: map[bool][]string{true: {"job"}, false: {"instance"}}[by]})
				if f.Matches(ls) {
					if in >= 0 {
						t.Fatalf("by %v: %s in shards %d and %d", by, ls, in, i)
					}
					in = i
				}
			}
			if in < 0 {
				t.Fatalf("by %v: %s in no shard", by, ls)
			}
			if prev, ok := shardOf[key(ls)]; ok && prev != in {
				t.Fatalf("by %v: group %s in shards %d and %d", by, key(ls), prev, in)
			}
			shardOf[key(ls)] = in
			counts[in]++
		}
		empty := 0
		for _, c := range counts {
			if c == 0 {
				empty++
			}
		}
		if empty > 1 {
			t.Errorf("by %v: %d of %d shards empty: %v", by, empty, shards, counts)
		}
	}
}

// recorder is a queryable that records what its Selects were given.
type recorder struct {
	storage.Queryable
	shards   []*ShardInfo
	matchers [][]*labels.Matcher
}

func (r *recorder) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := r.Queryable.Querier(mint, maxt)
	return recordingQuerier{q, r}, err
}

type recordingQuerier struct {
	storage.Querier
	r *recorder
}

func (q recordingQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	q.r.shards = append(q.r.shards, FromContext(ctx))
	q.r.matchers = append(q.r.matchers, WithShard(ctx, ms))
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}

// TestQueryable: a Select with a shard matcher reads the other matchers
// with the shard in its context (which a source sends on, WithShard) and
// keeps the shard's series; one without is passed on as is.
func TestQueryable(t *testing.T) {
	st := teststorage.New(t)
	t.Cleanup(func() { _ = st.Close() })
	app := st.Appender(context.Background())
	for j := range 6 {
		for i := range 3 {
			if _, err := app.Append(0, labels.FromStrings("__name__", "up", "job", fmt.Sprintf("j%d", j), "instance", fmt.Sprintf("i%d", i)), 1000, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Queryable: st}
	q, err := Queryable{Queryable: rec}.Querier(0, 2000)
	if err != nil {
		t.Fatal(err)
	}
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	total := 0
	for i := range 2 {
		shard := ShardInfo{ShardIndex: int64(i), TotalShards: 2, By: true, Labels: []string{"job"}}
		ss := q.Select(context.Background(), true, nil, up, shard.Matcher())
		f := NewFilter(shard)
		for ss.Next() {
			if !f.Matches(ss.At().Labels()) {
				t.Errorf("shard %d answered %s", i, ss.At().Labels())
			}
			total++
		}
		if ss.Err() != nil {
			t.Fatal(ss.Err())
		}
		got := rec.shards[len(rec.shards)-1]
		if got == nil || got.ShardIndex != int64(i) {
			t.Fatalf("shard in the source's context: %+v", got)
		}
		sent := rec.matchers[len(rec.matchers)-1]
		if len(sent) != 2 || sent[0] != up || !strings.HasPrefix(sent[1].Value, `{"shard_index":`+fmt.Sprint(i)) {
			t.Fatalf("a source sends %v", sent)
		}
	}
	if total != 18 {
		t.Fatalf("the shards answered %d series, want 18", total)
	}
	ss := q.Select(context.Background(), true, nil, up)
	n := 0
	for ss.Next() {
		n++
	}
	if n != 18 || rec.shards[len(rec.shards)-1] != nil {
		t.Fatalf("unsharded Select: %d series, shard %v", n, rec.shards[len(rec.shards)-1])
	}
	bad := labels.MustNewMatcher(labels.MatchEqual, LabelName, "x")
	if ss := q.Select(context.Background(), true, nil, up, bad); ss.Next() || ss.Err() == nil || !strings.Contains(ss.Err().Error(), `__CORTEX_SHARDS__: reading the shard "x"`) {
		t.Fatalf("malformed shard: %v", ss.Err())
	}
}
