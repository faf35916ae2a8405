package ingester

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
)

// TestQueryShardAtSource: QueryStream and QueryStreamChunks carrying a
// __CORTEX_SHARDS__ matcher send only the shard's series (those whose job
// hashes to it): the shards' answers are disjoint, cover every series, keep
// each job whole, and a malformed shard is refused.
func TestQueryShardAtSource(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	var all []prompb.TimeSeries
	for j := range 8 {
		for i := range 5 {
			all = append(all, floats(series("up", "job", fmt.Sprintf("j%d", j), "instance", fmt.Sprintf("i%d", i)), float64(base), 1))
		}
	}
	h.mustPush("t", all...)

	const shards = 3
	seen := map[string]int{}
	jobShard := map[string]int{}
	for i := range shards {
		m := querysharding.ShardInfo{ShardIndex: int64(i), TotalShards: shards, By: true, Labels: []string{"job"}}.Matcher()
		pm := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: m.Name, Value: m.Value}
		samples := h.query("t", base, base+1000, eq("__name__", "up"), pm)
		chunked := h.queryChunks("t", base, base+1000, eq("__name__", "up"), pm)
		if len(samples) != len(chunked) {
			t.Fatalf("shard %d: QueryStream sent %d series, QueryStreamChunks %d", i, len(samples), len(chunked))
		}
		if len(samples) == len(all) {
			t.Fatalf("shard %d of %d holds every series", i, shards)
		}
		for k, s := range samples {
			ls := labelsString(s.Labels)
			if ls != labelsString(chunked[k].Labels) {
				t.Fatalf("shard %d: QueryStream and QueryStreamChunks differ at %d: %s, %s", i, k, ls, labelsString(chunked[k].Labels))
			}
			seen[ls]++
			for _, l := range s.Labels {
				if l.Name == "job" {
					if prev, ok := jobShard[l.Value]; ok && prev != i {
						t.Fatalf("job %s in shards %d and %d", l.Value, prev, i)
					}
					jobShard[l.Value] = i
				}
			}
		}
	}
	if len(seen) != len(all) {
		t.Fatalf("the shards hold %d distinct series, want %d", len(seen), len(all))
	}
	for ls, n := range seen {
		if n != 1 {
			t.Fatalf("%s in %d shards", ls, n)
		}
	}

	bad := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: querysharding.LabelName, Value: `{"shard_index":3,"total_shards":3}`}
	stream, err := h.conn.QueryStream(ctxFor("t"), &prompb.Query{StartTimestampMs: base, EndTimestampMs: base + 1000, Matchers: []*prompb.LabelMatcher{eq("__name__", "up"), bad}})
	if err == nil {
		_, err = stream.Recv()
	}
	if err == nil || !strings.Contains(err.Error(), "__CORTEX_SHARDS__: shard_index must be between 0 and total_shards-1 (2), got 3") {
		t.Fatalf("malformed shard: %v", err)
	}
}
