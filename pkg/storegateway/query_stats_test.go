package storegateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// A Series call's trailer holds the store-gateway's statistics of it:
// Cortex's SeriesResponse hints' QueryStats.
func TestSeriesQueryStats(t *testing.T) {
	bkt := storegateway.NewTestBucket(t)
	var small []storage.Series
	for i := range 3 {
		small = append(small, storegateway.FloatSeries(labels.FromStrings("__name__", "cpu", "pod", fmt.Sprintf("p%d", i)), 0, step, numSamples, value(i)))
	}
	// The same 3 series in two blocks, as two ingesters ship them, and a
	// block of other series.
	storegateway.UploadBlock(t, bkt, "team-a", storegateway.WriteBlock(t, small))
	storegateway.UploadBlock(t, bkt, "team-a", storegateway.WriteBlock(t, small))
	storegateway.UploadBlock(t, bkt, "team-a", storegateway.WriteBlock(t, []storage.Series{
		storegateway.FloatSeries(labels.FromStrings("__name__", "mem", "pod", "p0"), 0, step, numSamples, value(0)),
	}))
	store := storegateway.NewTestStore(t, bkt)
	if err := store.SyncBlocks(context.Background()); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, store)
	conn := g.dial(t, g.pki.Client(t, "querier"), g.pki.CAPath)

	blocks := store.Blocks("team-a")
	if len(blocks) != 3 {
		t.Fatalf("%d blocks loaded, want 3", len(blocks))
	}
	ctx := storegateway.WithRequestedBlocks(tenant.Inject(context.Background(), "team-a"), blocks)
	stream, err := conn.Series(ctx, &prompb.Query{StartTimestampMs: 0, EndTimestampMs: numSamples * step, Matchers: []*prompb.LabelMatcher{eq("__name__", "cpu")}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	st, ok, err := storegateway.QueryStatsFrom(stream.Trailer())
	if err != nil || !ok {
		t.Fatalf("no statistics in the trailer %v: %v", stream.Trailer(), err)
	}
	// 300 samples a series, in 120-sample chunks: 3 chunks, in each of
	// the two blocks holding it; merged, each series has its 3.
	want := storegateway.QueryStats{
		BlocksQueried:          3,
		SeriesMergedCount:      3,
		ChunksMergedCount:      9,
		PostingsTouched:        6,
		PostingsTouchedSizeSum: 24,
		SeriesTouched:          6,
		ChunksFetched:          18,
	}
	if st.BlocksQueried != want.BlocksQueried || st.SeriesMergedCount != want.SeriesMergedCount || st.ChunksMergedCount != want.ChunksMergedCount ||
		st.PostingsTouched != want.PostingsTouched || st.PostingsTouchedSizeSum != want.PostingsTouchedSizeSum || st.SeriesTouched != want.SeriesTouched || st.ChunksFetched != want.ChunksFetched {
		t.Fatalf("statistics %+v, want %+v", st, want)
	}
	if st.SeriesTouchedSizeSum == 0 || st.ChunksFetchedSizeSum == 0 || st.ChunksFetchCount == 0 || st.DataDownloadedSizeSum < st.ChunksFetchedSizeSum || st.GetAllDuration <= 0 || st.MergeDuration <= 0 || st.MergeDuration > st.GetAllDuration {
		t.Fatalf("sizes and durations %+v", st)
	}
}
