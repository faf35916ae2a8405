package storegateway_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	"github.com/cortex-tls/cortex/pkg/storegateway"
)

// TestStoreGatewayShardAtSource: a Series request carrying a
// __CORTEX_SHARDS__ matcher gets only the blocks' series of that shard
// (sharded without instance: by every other label but the metric name), and
// the shards together get every series once.
func TestStoreGatewayShardAtSource(t *testing.T) {
	bkt := storegateway.NewTestBucket(t)
	var all []storage.Series
	for j := range 6 {
		for i := range 4 {
			all = append(all, storegateway.FloatSeries(labels.FromStrings("__name__", "up", "job", fmt.Sprintf("j%d", j), "instance", fmt.Sprintf("i%d", i)), 0, step, 10, value(i)))
		}
	}
	storegateway.UploadBlock(t, bkt, "team-a", storegateway.WriteBlock(t, all))
	store := storegateway.NewTestStore(t, bkt)
	if err := store.SyncBlocks(context.Background()); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, store)
	conn := g.dial(t, g.pki.Client(t, "querier"), g.pki.CAPath)

	const shards = 4
	seen := map[string]int{}
	for i := range shards {
		shard := querysharding.ShardInfo{ShardIndex: int64(i), TotalShards: shards, Labels: []string{"instance"}}
		m := shard.Matcher()
		names, samples, _ := seriesResult(t, conn, "team-a", &prompb.Query{Matchers: []*prompb.LabelMatcher{eq("__name__", "up"), eq(m.Name, m.Value)}})
		if len(names) == len(all) {
			t.Fatalf("shard %d of %d holds every series", i, shards)
		}
		filter := querysharding.NewFilter(shard)
		for _, name := range names {
			seen[name]++
			if len(samples[name]) != 10 {
				t.Errorf("shard %d, %s: %d samples, want 10", i, name, len(samples[name]))
			}
		}
		for _, s := range all {
			want := filter.Matches(s.Labels())
			got := false
			for _, name := range names {
				got = got || name == prometheusString(s.Labels())
			}
			if got != want {
				t.Errorf("shard %d: %s sent %v, in the shard %v", i, s.Labels(), got, want)
			}
		}
	}
	if len(seen) != len(all) {
		t.Fatalf("the shards hold %d distinct series, want %d", len(seen), len(all))
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d shards", name, n)
		}
	}
}

// prometheusString is labelsString for labels.Labels.
func prometheusString(ls labels.Labels) string {
	return labelsString(prompb.FromLabels(ls, nil))
}
