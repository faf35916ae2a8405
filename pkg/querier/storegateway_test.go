package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	sgclient "github.com/cortex-tls/cortex/pkg/storegateway/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

const (
	sgTenant = "team-a"
	twoHours = int64(2 * time.Hour / time.Millisecond)
)

// blocksBucket is a filesystem bucket holding one block per two hours for
// sgTenant, each with series a and b sampled every minute, and its bucket
// index.
type blocksBucket struct {
	bkt    objstore.Bucket
	blocks []ulid.ULID
}

func newBlocksBucket(t *testing.T, n int) *blocksBucket {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &blocksBucket{bkt: bkt}
	for i := range n {
		start := int64(i) * twoHours
		var series []storage.Series
		for _, name := range []string{"a", "b"} {
			var samples []chunks.Sample
			for ts := start; ts < start+twoHours; ts += 60_000 {
				samples = append(samples, sgSample{ts, float64(ts)})
			}
			series = append(series, storage.NewListSeries(labels.FromStrings("__name__", name), samples))
		}
		dir, err := tsdb.CreateBlock(series, t.TempDir(), 0, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		m, err := block.ReadMetaFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := block.Upload(context.Background(), objstore.NewPrefixedBucket(bkt, sgTenant), dir, block.ThanosMeta{}); err != nil {
			t.Fatal(err)
		}
		b.blocks = append(b.blocks, m.ULID)
	}
	b.writeIndex(t)
	return b
}

func (b *blocksBucket) writeIndex(t *testing.T) {
	t.Helper()
	idx, _, err := bucketindex.NewUpdater(b.bkt, sgTenant, slog.New(slog.DiscardHandler)).UpdateIndex(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bucketindex.WriteIndex(context.Background(), b.bkt, sgTenant, idx); err != nil {
		t.Fatal(err)
	}
}

type sgSample struct {
	t int64
	f float64
}

func (s sgSample) T() int64                      { return s.t }
func (s sgSample) F() float64                    { return s.f }
func (s sgSample) H() *histogram.Histogram       { return nil }
func (s sgSample) FH() *histogram.FloatHistogram { return nil }
func (s sgSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sgSample) Copy() chunks.Sample           { return s }
func (s sgSample) ST() int64                     { return 0 }

// countingGateway counts the calls made to a store-gateway.
type countingGateway struct {
	StoreGateway
	calls atomic.Int64
}

func (g *countingGateway) Series(ctx context.Context, in *prompb.Query, opts ...grpc.CallOption) (storegateway.SeriesClient, error) {
	g.calls.Add(1)
	return g.StoreGateway.Series(ctx, in, opts...)
}

// startGateway serves the blocks of bkt that hold accepts from a real
// bucket store on loopback.
func startGateway(t *testing.T, bkt objstore.Bucket, hold func(ulid.ULID) bool) *countingGateway {
	t.Helper()
	store, err := storegateway.NewBucketStore(storegateway.Config{
		SyncDir: filepath.Join(t.TempDir(), "sync"), MetaSyncConcurrency: 2, BlockSyncConcurrency: 2,
		TenantSyncConcurrency: 2, BlockDiscoveryStrategy: storegateway.DiscoveryConcurrent,
		MaxConcurrent: 10, SeriesBatchSize: 10000, TokenBucketBytesLimiter: storegateway.TokenBucketBytesLimiterConfig{Mode: storegateway.TokenBucketDisabled},
	}, bkt, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	store.SetBlockFilter(func(_ string, id ulid.ULID, _ bool) bool { return hold(id) })
	if err := store.SyncBlocks(context.Background()); err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(grpccodec.Codec{})}, tenant.ServerInterceptors()...)...)
	storegateway.RegisterStoreGatewayServer(gs, storegateway.NewStoreGatewayServer(store, nil))
	ln := testkit.Listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
		_ = store.Close()
	})
	return dialGateway(t, ln.Addr().String())
}

func dialGateway(t *testing.T, addr string) *countingGateway {
	t.Helper()
	c, err := sgclient.Dial(addr, sgclient.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &countingGateway{StoreGateway: c}
}

// fixedGateways offers the same store-gateways, in order, for every block.
type fixedGateways []StoreGateway

func (f fixedGateways) Candidates(string, ulid.ULID) ([]StoreGateway, error) { return f, nil }

func gateways(gs ...*countingGateway) fixedGateways {
	out := make(fixedGateways, len(gs))
	for i, g := range gs {
		out[i] = g
	}
	return out
}

func storeLimits(t *testing.T, maxSeries int) *validation.Overrides {
	t.Helper()
	var l validation.Limits
	l.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	l.MaxSeriesPerQuery = maxSeries
	return validation.NewOverrides(l, nil)
}

func sgConfig() storegateway.Config {
	return storegateway.Config{
		SyncInterval:             time.Minute,
		IgnoreDeletionMarksDelay: 6 * time.Hour,
		BucketIndex:              storegateway.BucketIndexConfig{Enabled: true, UpdateOnErrorInterval: time.Minute, IdleTimeout: time.Hour, MaxStalePeriod: time.Hour},
	}
}

// newStoreQueryable reads bkt's blocks from gateways; its clock is an hour
// ahead, so that the blocks just written are past the three sync
// intervals a store-gateway is given to load them.
func newStoreQueryable(bkt objstore.Bucket, g GatewaySet, cfg storegateway.Config, limits *validation.Overrides) *storeGatewayQueryable {
	q := NewStoreGatewayQueryable(NewBlocksFinder(bkt, cfg, nil), g, cfg, limits).(*storeGatewayQueryable)
	q.now = func() time.Time { return time.Now().Add(time.Hour) }
	return q
}

// selectStore returns each series' sample timestamps.
func selectStore(q storage.Queryable, mint, maxt int64) (map[string][]int64, error) {
	querier, _ := q.Querier(mint, maxt)
	ss := querier.Select(tenant.Inject(context.Background(), sgTenant), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]int64{}
	var it chunkenc.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		name := ss.At().Labels().Get("__name__")
		for it.Next() == chunkenc.ValFloat {
			ts, _ := it.At()
			out[name] = append(out[name], ts)
		}
	}
	return out, ss.Err()
}

// wantMinutes checks that a series has one sample per minute over
// [from, to), each once.
func wantMinutes(t *testing.T, got []int64, from, to int64) {
	t.Helper()
	if int64(len(got)) != (to-from)/60_000 {
		t.Fatalf("%d samples, want %d over [%d, %d)", len(got), (to-from)/60_000, from, to)
	}
	for i, ts := range got {
		if ts != from+int64(i)*60_000 {
			t.Fatalf("sample %d at %d, want %d", i, ts, from+int64(i)*60_000)
		}
	}
}

// Blocks are asked of the first store-gateway offered; those it does not
// hold are asked of the next, and each block's samples come once.
func TestStoreGatewayQueryableAsksTheNextForMissingBlocks(t *testing.T) {
	b := newBlocksBucket(t, 3)
	first := startGateway(t, b.bkt, func(id ulid.ULID) bool { return id != b.blocks[2] })
	second := startGateway(t, b.bkt, func(id ulid.ULID) bool { return id != b.blocks[0] })
	q := newStoreQueryable(b.bkt, gateways(first, second), sgConfig(), storeLimits(t, 0))

	got, err := selectStore(q, 0, 3*twoHours-1)
	if err != nil {
		t.Fatal(err)
	}
	wantMinutes(t, got["a"], 0, 3*twoHours)
	wantMinutes(t, got["b"], 0, 3*twoHours)
	if first.calls.Load() != 1 || second.calls.Load() != 1 {
		t.Fatalf("calls %d and %d, want one each (the second only for the block the first lacks)", first.calls.Load(), second.calls.Load())
	}

	names, _, err := mustQuerier(t, q, 0, 3*twoHours).LabelValues(tenant.Inject(context.Background(), sgTenant), "__name__", nil)
	if err != nil || strings.Join(names, ",") != "a,b" {
		t.Fatalf("label values %v, %v", names, err)
	}
}

func mustQuerier(t *testing.T, q storage.Queryable, mint, maxt int64) storage.Querier {
	t.Helper()
	querier, err := q.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	return querier
}

// A block no store-gateway holds fails the query, naming the block,
// unless it is recent enough that store-gateways may not have loaded it.
func TestStoreGatewayQueryableFailsOnMissingBlocks(t *testing.T) {
	b := newBlocksBucket(t, 2)
	only := startGateway(t, b.bkt, func(id ulid.ULID) bool { return id == b.blocks[0] })
	q := newStoreQueryable(b.bkt, gateways(only), sgConfig(), storeLimits(t, 0))
	_, err := selectStore(q, 0, 2*twoHours)
	var unavailable *unavailableError
	if !errors.As(err, &unavailable) || !strings.Contains(err.Error(), "consistency check failed because some blocks were not queried: "+b.blocks[1].String()) {
		t.Fatalf("got %v, want a consistency error naming %s", err, b.blocks[1])
	}

	// Uploaded within three sync intervals: not required yet.
	cfg := sgConfig()
	cfg.SyncInterval = time.Hour
	q = newStoreQueryable(b.bkt, gateways(only), cfg, storeLimits(t, 0))
	got, err := selectStore(q, 0, 2*twoHours)
	if err != nil {
		t.Fatalf("a recent block missing failed the query: %v", err)
	}
	wantMinutes(t, got["a"], 0, twoHours)
}

// A store-gateway that fails is replaced by the next; when all fail, the
// error names each.
func TestStoreGatewayQueryableSkipsFailingGateways(t *testing.T) {
	b := newBlocksBucket(t, 1)
	ln := testkit.Listen(t)
	downAddr := ln.Addr().String()
	_ = ln.Close()
	down := dialGateway(t, downAddr)
	up := startGateway(t, b.bkt, func(ulid.ULID) bool { return true })

	got, err := selectStore(newStoreQueryable(b.bkt, gateways(down, up), sgConfig(), storeLimits(t, 0)), 0, twoHours)
	if err != nil {
		t.Fatal(err)
	}
	wantMinutes(t, got["a"], 0, twoHours)

	_, err = selectStore(newStoreQueryable(b.bkt, gateways(down), sgConfig(), storeLimits(t, 0)), 0, twoHours)
	if err == nil || !strings.Contains(err.Error(), "store-gateway "+downAddr) || !strings.Contains(err.Error(), b.blocks[0].String()) {
		t.Fatalf("got %v, want an error naming %s and the block", err, downAddr)
	}
}

// A limit error is the query's answer: it is not retried elsewhere.
func TestStoreGatewayQueryableLimits(t *testing.T) {
	b := newBlocksBucket(t, 1)
	first := startGateway(t, b.bkt, func(ulid.ULID) bool { return true })
	other := startGateway(t, b.bkt, func(ulid.ULID) bool { return true })
	_, err := selectStore(newStoreQueryable(b.bkt, gateways(first, other), sgConfig(), storeLimits(t, 1)), 0, twoHours)
	var le *limitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "-querier.max-series-per-query") {
		t.Fatalf("two series over a limit of one: %v, want the series limit error", err)
	}
	if other.calls.Load() != 0 {
		t.Error("a limit error was retried on another store-gateway")
	}
}

// Without a bucket index the tenant has no blocks yet; a stale index fails
// the query naming the flag; blocks marked for deletion long ago are not
// asked for.
func TestBlocksFinder(t *testing.T) {
	b := newBlocksBucket(t, 2)
	cfg := sgConfig()
	f := NewBlocksFinder(b.bkt, cfg, nil).(*blocksFinder)
	ctx := context.Background()

	blocks, _, err := f.GetBlocks(ctx, "nobody", 0, 10*twoHours)
	if err != nil || len(blocks) != 0 {
		t.Fatalf("a tenant without an index: %v, %v", blocks, err)
	}
	blocks, _, err = f.GetBlocks(ctx, sgTenant, twoHours, twoHours+1)
	if err != nil || len(blocks) != 1 || blocks[0].ID != b.blocks[1] {
		t.Fatalf("blocks of [2h, 2h+1ms]: %v, %v; want only %s", blocks, err, b.blocks[1])
	}

	// Marked for deletion 7h ago (past the 6h delay): no longer asked for,
	// once the finder reads the index again after a sync interval.
	if _, err := block.MarkForDeletion(ctx, objstore.NewPrefixedBucket(b.bkt, sgTenant), b.blocks[0], "test", time.Now().Add(-7*time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.writeIndex(t)
	f.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	blocks, _, err = f.GetBlocks(ctx, sgTenant, 0, 2*twoHours)
	if err != nil || len(blocks) != 1 || blocks[0].ID != b.blocks[1] {
		t.Fatalf("after marking %s: %v, %v", b.blocks[0], blocks, err)
	}

	f.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	_, _, err = f.GetBlocks(ctx, sgTenant, 0, 2*twoHours)
	if err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.bucket-index.max-stale-period=1h0m0s") {
		t.Fatalf("a 2h-old index: %v, want an error naming max-stale-period", err)
	}

	// Scanning the bucket finds the same blocks without an index.
	cfg.BucketIndex.Enabled = false
	blocks, _, err = NewBlocksFinder(b.bkt, cfg, nil).GetBlocks(ctx, sgTenant, 0, 2*twoHours)
	ids := blocks.GetULIDs()
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	if err != nil || !slices.Equal(ids, []ulid.ULID{b.blocks[1]}) {
		t.Fatalf("scan: %v, %v; want %s (the other is marked)", ids, err, b.blocks[1])
	}
}

// StaticGateways offers every store-gateway for each block, starting at
// one chosen by the block, so blocks spread over them.
func TestStaticGatewaysSpreadBlocks(t *testing.T) {
	gs := StaticGateways{dialGateway(t, "127.0.0.1:1"), dialGateway(t, "127.0.0.1:2")}
	first := map[string]int{}
	for range 50 {
		id := ulid.Make()
		c, err := gs.Candidates("t1", id)
		if err != nil || len(c) != 2 || c[0].Addr() == c[1].Addr() {
			t.Fatalf("candidates %v, %v", c, err)
		}
		first[c[0].Addr()]++
	}
	if len(first) != 2 {
		t.Fatalf("50 blocks all start at one store-gateway: %v", first)
	}
	if _, err := (StaticGateways{}).Candidates("t1", ulid.Make()); err == nil || !strings.Contains(err.Error(), "-querier.store-gateway-addresses") {
		t.Fatalf("no store-gateway: %v", err)
	}
}

// wireBytes reads a store-gateway's whole Series answer for every series
// of sgTenant in [mint, maxt]: its chunks' bytes and its series' encoded
// size.
func wireBytes(t *testing.T, g StoreGateway, mint, maxt int64) (chunkBytes, dataBytes int64) {
	t.Helper()
	req := &prompb.Query{StartTimestampMs: mint, EndTimestampMs: maxt, Matchers: client.ToPromMatchers([]*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")})}
	stream, err := g.Series(tenant.Inject(context.Background(), sgTenant), req)
	if err != nil {
		t.Fatal(err)
	}
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return chunkBytes, dataBytes
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, cs := range res.ChunkedSeries {
			for _, c := range cs.Chunks {
				chunkBytes += int64(len(c.Data))
			}
			dataBytes += int64(cs.Size())
		}
	}
}

func bytesLimits(chunkBytes, dataBytes int) *validation.Overrides {
	var l validation.Limits
	l.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	l.MaxFetchedChunkBytesPerQuery = chunkBytes
	l.MaxFetchedDataBytesPerQuery = dataBytes
	return validation.NewOverrides(l, nil)
}

// The store-gateways' answers count towards -querier.max-fetched-chunk-
// bytes-per-query and -querier.max-fetched-data-bytes-per-query: a query
// reading exactly the limit passes, one byte over fails naming the flag,
// and the bytes add up across the Selects of one query.
func TestStoreGatewayQueryableFetchedBytesLimits(t *testing.T) {
	b := newBlocksBucket(t, 2)
	g := startGateway(t, b.bkt, func(ulid.ULID) bool { return true })
	chunkBytes, dataBytes := wireBytes(t, g, 0, 2*twoHours-1)
	// Two series of 240 one-minute samples: at least one byte per sample.
	if chunkBytes < 480 || dataBytes <= chunkBytes {
		t.Fatalf("the store-gateway sent %d chunk bytes and %d data bytes, want at least 480 and more data than chunk bytes", chunkBytes, dataBytes)
	}
	sel := func(limits *validation.Overrides) (*storeGatewayQuerier, error) {
		q := newStoreQueryable(b.bkt, gateways(g), sgConfig(), limits)
		querier := mustQuerier(t, q, 0, 2*twoHours-1).(*storeGatewayQuerier)
		ss := querier.Select(tenant.Inject(context.Background(), sgTenant), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		for ss.Next() {
		}
		return querier, ss.Err()
	}

	querier, err := sel(bytesLimits(int(chunkBytes), int(dataBytes)))
	if err != nil {
		t.Fatalf("a query at both limits: %v", err)
	}
	if querier.chunkBytes.Load() != chunkBytes || querier.dataBytes.Load() != dataBytes {
		t.Errorf("counted %d chunk bytes and %d data bytes, want %d and %d", querier.chunkBytes.Load(), querier.dataBytes.Load(), chunkBytes, dataBytes)
	}

	for _, tc := range []struct {
		name              string
		chunkLim, dataLim int
		want              string
	}{
		{"chunk bytes", int(chunkBytes) - 1, 0, fmt.Sprintf("the query hit the aggregated chunk size limit (limit: %d bytes, set by -querier.max-fetched-chunk-bytes-per-query or max_fetched_chunk_bytes_per_query)", chunkBytes-1)},
		{"data bytes", 0, int(dataBytes) - 1, fmt.Sprintf("the query hit the aggregated data size limit (limit: %d bytes, set by -querier.max-fetched-data-bytes-per-query or max_fetched_data_bytes_per_query)", dataBytes-1)},
	} {
		_, err := sel(bytesLimits(tc.chunkLim, tc.dataLim))
		var le *limitError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s one byte over: %v, want the limit error %q", tc.name, err, tc.want)
		}
	}

	// Two Selects of one query, each under the limit alone.
	q := newStoreQueryable(b.bkt, gateways(g), sgConfig(), bytesLimits(int(chunkBytes)*3/2, 0))
	querier = mustQuerier(t, q, 0, 2*twoHours-1).(*storeGatewayQuerier)
	ctx := tenant.Inject(context.Background(), sgTenant)
	for i, want := range []bool{false, true} {
		ss := querier.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		for ss.Next() {
		}
		var le *limitError
		if got := errors.As(ss.Err(), &le); got != want {
			t.Errorf("Select %d of one query: error %v, want a limit error: %v", i+1, ss.Err(), want)
		}
	}
}
