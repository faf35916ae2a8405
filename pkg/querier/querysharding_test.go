package querier

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// shardRecordingGateway records the shard matchers of the Series requests
// a store-gateway gets.
type shardRecordingGateway struct {
	*countingGateway
	mu     sync.Mutex
	shards []string
}

func (g *shardRecordingGateway) Series(ctx context.Context, in *prompb.Query, opts ...grpc.CallOption) (storegateway.SeriesClient, error) {
	g.mu.Lock()
	for _, m := range in.Matchers {
		if m.Name == querysharding.LabelName {
			g.shards = append(g.shards, m.Value)
		}
	}
	g.mu.Unlock()
	return g.countingGateway.Series(ctx, in, opts...)
}

// TestShardQueryReachesStoreGateways: a Select carrying a shard matcher,
// through the querier's shard filter, sends the shard to the
// store-gateways, and the shards together answer each series once.
func TestShardQueryReachesStoreGateways(t *testing.T) {
	b := newBlocksBucket(t, 1)
	g := &shardRecordingGateway{countingGateway: startGateway(t, b.bkt, func(ulid.ULID) bool { return true })}
	q := querysharding.Queryable{Queryable: newStoreQueryable(b.bkt, fixedGateways{g}, sgConfig(), storeLimits(t, 0))}
	querier, err := q.Querier(0, twoHours-1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	const shards = 3
	for i := range shards {
		shard := querysharding.ShardInfo{ShardIndex: int64(i), TotalShards: shards, By: true, Labels: []string{"__name__"}}
		ss := querier.Select(tenant.Inject(context.Background(), sgTenant), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"), shard.Matcher())
		filter := querysharding.NewFilter(shard)
		for ss.Next() {
			if !filter.Matches(ss.At().Labels()) {
				t.Errorf("shard %d answered %s", i, ss.At().Labels())
			}
			got = append(got, ss.At().Labels().Get("__name__"))
		}
		if err := ss.Err(); err != nil {
			t.Fatal(err)
		}
		if len(g.shards) != i+1 || g.shards[i] != shard.Matcher().Value {
			t.Fatalf("the store-gateway was sent the shards %q, want %q last", g.shards, shard.Matcher().Value)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("the shards answered %v, want a and b once each", got)
	}
}
