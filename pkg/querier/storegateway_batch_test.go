package querier

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cortex-tls/cortex/pkg/storegateway"
)

// batchRecordingGateway records, for each Series call, the batch size the
// call asked for and how many series each message it received carried.
type batchRecordingGateway struct {
	StoreGateway
	mu      sync.Mutex
	asked   []string
	batches []int
}

func (g *batchRecordingGateway) Series(ctx context.Context, in *prompb.Query, opts ...grpc.CallOption) (storegateway.SeriesClient, error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	g.mu.Lock()
	g.asked = append(g.asked, md.Get(storegateway.SeriesBatchSizeKey)...)
	g.mu.Unlock()
	c, err := g.StoreGateway.Series(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	return &batchRecordingStream{SeriesClient: c, g: g}, nil
}

type batchRecordingStream struct {
	storegateway.SeriesClient
	g *batchRecordingGateway
}

func (s *batchRecordingStream) Recv() (*prompb.ChunkedReadResponse, error) {
	m, err := s.SeriesClient.Recv()
	if err == nil {
		s.g.mu.Lock()
		s.g.batches = append(s.g.batches, len(m.ChunkedSeries))
		s.g.mu.Unlock()
	}
	return m, err
}

// -querier.store-gateway-series-batch-size is asked of the store-gateway
// with each Series call, the store-gateway sends that many series per
// message, and the querier's answer is the same whatever the batch size.
func TestStoreGatewaySeriesBatchSize(t *testing.T) {
	b := newBlocksBucket(t, 2)
	var answers []map[string][]int64
	for _, tc := range []struct {
		batch   int64
		asked   []string
		batches []int
	}{
		// Two series (a and b) over two blocks, merged by the store-gateway.
		{1, nil, []int{1, 1}},
		{100, []string{"100"}, []int{2}},
	} {
		g := &batchRecordingGateway{StoreGateway: startGateway(t, b.bkt, func(ulid.ULID) bool { return true })}
		sg := newStoreQueryable(b.bkt, fixedGateways{g}, sgConfig(), storeLimits(t, 0))
		cfg := defaultConfig()
		cfg.StoreGatewaySeriesBatchSize = tc.batch
		WithStore(sg)(&Querier{cfg: cfg, split: &timeSplitQueryable{}})

		got, err := selectStore(sg, 0, 2*twoHours-1)
		if err != nil {
			t.Fatalf("batch size %d: %v", tc.batch, err)
		}
		wantMinutes(t, got["a"], 0, 2*twoHours)
		wantMinutes(t, got["b"], 0, 2*twoHours)
		if !slices.Equal(g.asked, tc.asked) {
			t.Errorf("batch size %d: the call asked for %q, want %q", tc.batch, g.asked, tc.asked)
		}
		if !slices.Equal(g.batches, tc.batches) {
			t.Errorf("batch size %d: messages of %v series, want %v", tc.batch, g.batches, tc.batches)
		}
		answers = append(answers, got)
	}
	for name, ts := range answers[0] {
		if !slices.Equal(ts, answers[1][name]) {
			t.Errorf("series %s: batch sizes 1 and 100 answered differently", name)
		}
	}

	cfg := defaultConfig()
	if cfg.StoreGatewaySeriesBatchSize != 1 {
		t.Fatalf("default %d, want Cortex's 1", cfg.StoreGatewaySeriesBatchSize)
	}
	cfg.StoreGatewaySeriesBatchSize = -1
	if err := cfg.Validate(); err == nil || err.Error() != "-querier.store-gateway-series-batch-size must not be negative (0 or 1 disables batching), got -1" {
		t.Fatalf("batch size -1: %v", err)
	}
}
