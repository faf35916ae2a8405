package storegateway

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// fakeSeriesStream is the server side of a Series call: it collects the
// series sent, and with block set, each Send waits for release.
type fakeSeriesStream struct {
	grpc.ServerStream
	ctx     context.Context
	mu      sync.Mutex
	series  int
	block   bool
	sending chan struct{} // closed at the first Send
	release chan struct{}
	once    sync.Once
}

func newFakeStream(tenantID string, block bool) *fakeSeriesStream {
	return &fakeSeriesStream{
		ctx:     tenant.Inject(context.Background(), tenantID),
		block:   block,
		sending: make(chan struct{}),
		release: make(chan struct{}),
	}
}

func (f *fakeSeriesStream) Context() context.Context     { return f.ctx }
func (f *fakeSeriesStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeSeriesStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeSeriesStream) SetTrailer(metadata.MD)       {}
func (f *fakeSeriesStream) Send(m *prompb.ChunkedReadResponse) error {
	f.once.Do(func() { close(f.sending) })
	if f.block {
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.series += len(m.ChunkedSeries)
	return nil
}

func allUp() *prompb.Query {
	return &prompb.Query{StartTimestampMs: 0, EndTimestampMs: 10 * hour, Matchers: []*prompb.LabelMatcher{
		{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"},
	}}
}

// limitedStore is a store of one block of testSeries' six series.
func limitedStore(t *testing.T, edit func(*Config)) (*BucketStore, *countingBucket) {
	t.Helper()
	bkt := newBucket(t)
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, func(i int, _ int64) float64 { return float64(i) }))), true)
	cfg := testConfig(t)
	edit(&cfg)
	s, _ := newStore(t, cfg, bkt)
	syncStore(t, s)
	return s, bkt
}

// -blocks-storage.bucket-store.max-concurrent queues Series calls past it;
// -max-inflight-requests refuses those past it, queued ones counted, with
// Cortex's error.
func TestSeriesConcurrencyAndInflightLimits(t *testing.T) {
	s, _ := limitedStore(t, func(c *Config) { c.MaxConcurrent = 1; c.MaxInflightRequests = 2 })
	srv := NewStoreGatewayServer(s, nil)

	first := newFakeStream("t1", true)
	firstDone := make(chan error, 1)
	go func() { firstDone <- srv.Series(allUp(), first) }()
	<-first.sending // running, holding the only slot

	second := newFakeStream("t1", false)
	secondDone := make(chan error, 1)
	go func() { secondDone <- srv.Series(allUp(), second) }()
	testkit.Eventually(t, 10*time.Second, "the second call to queue", func() bool {
		return s.limits.inflight.Load() == 2
	})
	select {
	case err := <-secondDone:
		t.Fatalf("the second call ran past -max-concurrent=1: %v", err)
	default:
	}

	err := srv.Series(allUp(), newFakeStream("t1", false))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many inflight requests in store gateway") {
		t.Fatalf("third call with two in flight: %v, want ResourceExhausted too many inflight requests", err)
	}

	close(first.release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	if err := <-secondDone; err != nil {
		t.Fatal(err)
	}
	if first.series != 6 || second.series != 6 {
		t.Fatalf("series sent: %d and %d, want 6 each", first.series, second.series)
	}
	if n := s.limits.inflight.Load(); n != 0 {
		t.Fatalf("%d calls still counted in flight", n)
	}
}

// -blocks-storage.bucket-store.series-batch-size: a Select reads its
// series' chunks a batch at a time, with the same answer.
func TestSeriesBatchSize(t *testing.T) {
	ranges := map[int]int64{}
	var answers []map[string][]sample
	for _, size := range []int{10000, 2} {
		s, bkt := limitedStore(t, func(c *Config) { c.SeriesBatchSize = size })
		before := bkt.ranges.Load()
		_, got := selectAll(t, querier(t, s, "t1", minT, maxT), nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
		ranges[size] = bkt.ranges.Load() - before
		answers = append(answers, got)
	}
	if ranges[10000] != 1 || ranges[2] != 3 {
		t.Fatalf("range requests for six series by batch size: %v, want 1 for 10000 and 3 for 2", ranges)
	}
	if !reflect.DeepEqual(answers[0], answers[1]) || len(answers[0]) != 6 {
		t.Fatal("batched reads changed the answer")
	}
}

// -blocks-storage.bucket-store.max-chunk-pool-bytes bounds the chunk
// buffers open queriers hold, over every tenant: a query past it fails
// naming the flag, and closing a querier gives its bytes back.
func TestMaxChunkPoolBytes(t *testing.T) {
	s, _ := limitedStore(t, func(*Config) {})
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	q1 := querier(t, s, "t1", minT, maxT)
	selectAll(t, q1, nil, up)
	held := s.limits.chunkBytes.Load()
	if held <= 0 {
		t.Fatalf("an open querier holds %d chunk bytes", held)
	}
	s.limits.cfg.MaxChunkPoolBytes = uint64(held) + uint64(held)/2

	q2 := querier(t, s, "t1", minT, maxT)
	err := q2.Select(context.Background(), true, nil, up).Err()
	if err == nil || !strings.Contains(err.Error(), "pool exhausted") || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.max-chunk-pool-bytes") {
		t.Fatalf("a second query past the pool: %v", err)
	}
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}
	_ = q2.Close()
	if n := s.limits.chunkBytes.Load(); n != 0 {
		t.Fatalf("%d chunk bytes held with every querier closed", n)
	}
	q3 := querier(t, s, "t1", minT, maxT)
	if names, _ := selectAll(t, q3, nil, up); len(names) != 6 {
		t.Fatalf("after the first querier closed: %d series", len(names))
	}
}

// -store-gateway.max-downloaded-bytes-per-request refuses a call reading
// more from the bucket than the tenant's limit.
func TestMaxDownloadedBytesPerRequest(t *testing.T) {
	s, _ := limitedStore(t, func(*Config) {})
	limit := int64(100)
	srv := NewStoreGatewayServer(s, nil, WithMaxDownloadedBytesPerRequest(func(tenantID string) int64 {
		if tenantID != "t1" {
			t.Errorf("limit asked for tenant %q", tenantID)
		}
		return limit
	}))
	err := srv.Series(allUp(), newFakeStream("t1", false))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "exceeded bytes limit") || !strings.Contains(err.Error(), "-store-gateway.max-downloaded-bytes-per-request") {
		t.Fatalf("a call past the limit: %v", err)
	}
	limit = 0
	stream := newFakeStream("t1", false)
	if err := srv.Series(allUp(), stream); err != nil || stream.series != 6 {
		t.Fatalf("without a limit: %d series, %v", stream.series, err)
	}
}

// The token bucket bytes limiter refuses a request once past its own
// bucket when it needs more than the tenant's whole bucket, with Cortex's
// text, and in dryrun mode only logs.
func TestTokenBucketBytesLimiter(t *testing.T) {
	for _, mode := range []string{TokenBucketEnabled, TokenBucketDryRun} {
		t.Run(mode, func(t *testing.T) {
			s, _ := limitedStore(t, func(c *Config) {
				c.TokenBucketBytesLimiter = TokenBucketBytesLimiterConfig{Mode: mode, InstanceTokenBucketSize: 1 << 30, UserTokenBucketSize: 1000, RequestTokenBucketSize: 10}
			})
			srv := NewStoreGatewayServer(s, nil)
			stream := newFakeStream("t1", false)
			err := srv.Series(allUp(), stream)
			if mode == TokenBucketDryRun {
				if err != nil || stream.series != 6 {
					t.Fatalf("dryrun: %d series, %v", stream.series, err)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "store gateway resource exhausted") {
				t.Fatalf("a request over the tenant's bucket: %v", err)
			}
		})
	}
	cfg := testConfig(t)
	cfg.TokenBucketBytesLimiter.Mode = "on"
	if _, err := NewBucketStore(cfg, newBucket(t), nil, nil); err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.token-bucket-bytes-limiter.mode") {
		t.Fatalf("an unknown mode: %v", err)
	}
}

// -blocks-storage.bucket-store.matchers-cache-max-items keeps regular
// expressions compiled across calls.
func TestMatchersCache(t *testing.T) {
	bkt := newBucket(t)
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, func(int, int64) float64 { return 1 }))), true)
	cfg := testConfig(t)
	cfg.MatchersCacheMaxItems = 10
	s, reg := newStore(t, cfg, bkt)
	syncStore(t, s)
	srv := NewStoreGatewayServer(s, nil)
	q := &prompb.Query{EndTimestampMs: 10 * hour, Matchers: []*prompb.LabelMatcher{
		{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"},
		{Type: prompb.LabelMatcher_RE, Name: "instance", Value: "i[12]"},
	}}
	for range 2 {
		stream := newFakeStream("t1", false)
		if err := srv.Series(q, stream); err != nil || stream.series != 4 {
			t.Fatalf("%d series, %v", stream.series, err)
		}
	}
	if r, h := testkit.MetricSum(t, reg, "cortex_storegateway_matchers_cache_requests_total"), testkit.MetricSum(t, reg, "cortex_storegateway_matchers_cache_hits_total"); r != 2 || h != 1 {
		t.Fatalf("matchers cache: %v requests, %v hits; want 2 and 1 (the equality matcher is not cached)", r, h)
	}
}
