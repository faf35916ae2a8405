package querier

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// fakeIngester serves the ingester gRPC API from series given by the test,
// per tenant, filtering by matchers and time as an ingester does.
type fakeIngester struct {
	mu       sync.Mutex
	series   map[string][]prompb.TimeSeries
	metadata map[string][]*client.MetricMetadata

	fail     atomic.Bool   // answer every call with Unavailable
	failNext atomic.Int64  // answer this many more calls with Unavailable
	noChunks atomic.Bool   // answer QueryStreamChunks with Unimplemented, as an older ingester
	block    chan struct{} // if set, QueryStream and QueryStreamChunks wait for it to close
	queries  atomic.Int64

	// labelNamesCalls counts the LabelNames calls.
	labelNamesCalls atomic.Int64
	// seriesStreams counts the SeriesStream calls.
	seriesStreams atomic.Int64
}

func newFakeIngester() *fakeIngester {
	return &fakeIngester{series: map[string][]prompb.TimeSeries{}, metadata: map[string][]*client.MetricMetadata{}}
}

func (f *fakeIngester) add(tenantID string, ts ...prompb.TimeSeries) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.series[tenantID] = append(f.series[tenantID], ts...)
}

func (f *fakeIngester) check(ctx context.Context) (string, error) {
	if f.fail.Load() || f.failNext.Add(-1) >= 0 {
		return "", status.Error(codes.Unavailable, "fake ingester down")
	}
	id, err := tenant.ID(ctx)
	if err != nil {
		return "", tenant.GRPCError(err)
	}
	return id, nil
}

func (f *fakeIngester) Push(context.Context, *client.PushRequest) (*client.PushResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) UserStats(context.Context, *client.UserStatsRequest) (*client.UserStatsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) PushStream(client.PushStreamServer) error {
	return status.Error(codes.Unimplemented, "fake")
}

// The metadata streams send the unary answers in batches, as an ingester does.

func (f *fakeIngester) LabelNamesStream(req *client.LabelNamesRequest, stream client.StringsStreamServer) error {
	resp, err := f.LabelNames(stream.Context(), req)
	if err != nil {
		return err
	}
	return client.SendInBatches(resp.Values, func(b []string) error { return stream.Send(&client.StringsResponse{Values: b}) })
}

func (f *fakeIngester) LabelValuesStream(req *client.LabelValuesRequest, stream client.StringsStreamServer) error {
	resp, err := f.LabelValues(stream.Context(), req)
	if err != nil {
		return err
	}
	return client.SendInBatches(resp.Values, func(b []string) error { return stream.Send(&client.StringsResponse{Values: b}) })
}

func (f *fakeIngester) SeriesStream(req *client.SeriesRequest, stream client.SeriesStreamServer) error {
	f.seriesStreams.Add(1)
	resp, err := f.Series(stream.Context(), req)
	if err != nil {
		return err
	}
	return client.SendInBatches(resp.Series, func(b []*client.LabelSet) error { return stream.Send(&client.SeriesResponse{Series: b}) })
}

func protoMatchers(ms []*prompb.LabelMatcher) []*labels.Matcher {
	out := make([]*labels.Matcher, 0, len(ms))
	for _, m := range ms {
		out = append(out, labels.MustNewMatcher(labels.MatchType(m.Type), m.Name, m.Value))
	}
	return out
}

func setMatchers(sets []*client.MatcherSet) [][]*labels.Matcher {
	var out [][]*labels.Matcher
	for _, s := range sets {
		var ms []*labels.Matcher
		for _, m := range s.Matchers {
			ms = append(ms, labels.MustNewMatcher(labels.MatchType(m.Type), m.Name, m.Value))
		}
		out = append(out, ms)
	}
	return out
}

func matchAll(ls labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

func matchAny(ls labels.Labels, sets [][]*labels.Matcher) bool {
	if len(sets) == 0 {
		return true
	}
	for _, ms := range sets {
		if matchAll(ls, ms) {
			return true
		}
	}
	return false
}

// selected returns the tenant's series matching sets within [mint, maxt],
// with only the samples in range; series without samples in range are left
// out, as a TSDB head does.
func (f *fakeIngester) selected(tenantID string, mint, maxt int64, sets [][]*labels.Matcher) []prompb.TimeSeries {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []prompb.TimeSeries
	for _, ts := range f.series[tenantID] {
		ls := labelsOf(ts)
		if !matchAny(ls, sets) {
			continue
		}
		sel := prompb.TimeSeries{Labels: ts.Labels}
		for _, s := range ts.Samples {
			if s.Timestamp >= mint && s.Timestamp <= maxt {
				sel.Samples = append(sel.Samples, s)
			}
		}
		for _, h := range ts.Histograms {
			if h.Timestamp >= mint && h.Timestamp <= maxt {
				sel.Histograms = append(sel.Histograms, h)
			}
		}
		if len(sel.Samples)+len(sel.Histograms) > 0 {
			out = append(out, sel)
		}
	}
	return out
}

func labelsOf(ts prompb.TimeSeries) labels.Labels {
	var b labels.ScratchBuilder
	return ts.ToLabels(&b, nil)
}

func (f *fakeIngester) QueryStream(req *prompb.Query, stream client.QueryStreamServer) error {
	series, err := f.query(stream.Context(), req)
	if err != nil {
		return err
	}
	// Two series per message, so answers span several messages.
	for i := 0; i < len(series); i += 2 {
		res := &prompb.QueryResult{}
		for j := i; j < min(i+2, len(series)); j++ {
			res.Timeseries = append(res.Timeseries, &series[j])
		}
		if err := stream.Send(res); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeIngester) QueryStreamChunks(req *prompb.Query, stream client.QueryStreamChunksServer) error {
	if f.noChunks.Load() {
		return status.Error(codes.Unimplemented, "unknown method QueryStreamChunks")
	}
	series, err := f.query(stream.Context(), req)
	if err != nil {
		return err
	}
	for i := 0; i < len(series); i += 2 {
		res := &prompb.ChunkedReadResponse{}
		for j := i; j < min(i+2, len(series)); j++ {
			cs, err := encodeChunks(series[j], 120)
			if err != nil {
				return status.Error(codes.Internal, err.Error())
			}
			res.ChunkedSeries = append(res.ChunkedSeries, cs)
		}
		if err := stream.Send(res); err != nil {
			return err
		}
	}
	return nil
}

// query answers a query as an ingester reads its TSDB.
func (f *fakeIngester) query(ctx context.Context, req *prompb.Query) ([]prompb.TimeSeries, error) {
	f.queries.Add(1)
	id, err := f.check(ctx)
	if err != nil {
		return nil, err
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.selected(id, req.StartTimestampMs, req.EndTimestampMs, [][]*labels.Matcher{protoMatchers(req.Matchers)}), nil
}

// encodeChunks encodes a series as a TSDB does: floats in XOR chunks of at
// most perChunk samples, histograms in histogram chunks, cut when the
// histogram type or layout changes. Chunks are ordered by start time.
func encodeChunks(ts prompb.TimeSeries, perChunk int) (*prompb.ChunkedSeries, error) {
	cs := &prompb.ChunkedSeries{Labels: ts.Labels}
	samples := slices.Clone(ts.Samples)
	slices.SortStableFunc(samples, func(a, b prompb.Sample) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
	for len(samples) > 0 {
		n := min(perChunk, len(samples))
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil {
			return nil, err
		}
		for _, s := range samples[:n] {
			app.Append(0, s.Timestamp, s.Value)
		}
		cs.Chunks = append(cs.Chunks, wireChunk(c, samples[0].Timestamp, samples[n-1].Timestamp))
		samples = samples[n:]
	}
	var (
		cur        chunkenc.Chunk
		app        chunkenc.Appender
		minT, maxT int64
	)
	cut := func() {
		if cur != nil {
			cs.Chunks = append(cs.Chunks, wireChunk(cur, minT, maxT))
		}
		cur = nil
	}
	for _, h := range ts.Histograms {
		enc := chunkenc.EncHistogram
		if h.IsFloatHistogram() {
			enc = chunkenc.EncFloatHistogram
		}
		for attempt := 0; ; attempt++ {
			if cur == nil || cur.Encoding() != enc {
				cut()
				var err error
				if cur, err = chunkenc.NewEmptyChunk(enc); err != nil {
					return nil, err
				}
				if app, err = cur.Appender(); err != nil {
					return nil, err
				}
				minT = h.Timestamp
			}
			var err error
			if enc == chunkenc.EncHistogram {
				_, _, app, err = app.AppendHistogram(nil, 0, h.Timestamp, h.ToIntHistogram(), true)
			} else {
				_, _, app, err = app.AppendFloatHistogram(nil, 0, h.Timestamp, h.ToFloatHistogram(), true)
			}
			if err == nil {
				maxT = h.Timestamp
				break
			}
			if attempt > 0 {
				return nil, err
			}
			cut() // the histogram does not fit the chunk: start a new one
		}
	}
	cut()
	slices.SortStableFunc(cs.Chunks, func(a, b prompb.Chunk) int { return cmp.Compare(a.MinTimeMs, b.MinTimeMs) })
	return cs, nil
}

func wireChunk(c chunkenc.Chunk, minT, maxT int64) prompb.Chunk {
	return prompb.Chunk{MinTimeMs: minT, MaxTimeMs: maxT, Type: prompb.Chunk_Encoding(c.Encoding()), Data: c.Bytes()}
}

func (f *fakeIngester) LabelNames(ctx context.Context, req *client.LabelNamesRequest) (*client.StringsResponse, error) {
	f.labelNamesCalls.Add(1)
	id, err := f.check(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, ts := range f.selected(id, req.StartMs, req.EndMs, setMatchers(req.MatcherSets)) {
		for _, l := range ts.Labels {
			names = append(names, l.Name)
		}
	}
	slices.Sort(names)
	return &client.StringsResponse{Values: slices.Compact(names)}, nil
}

func (f *fakeIngester) LabelValues(ctx context.Context, req *client.LabelValuesRequest) (*client.StringsResponse, error) {
	id, err := f.check(ctx)
	if err != nil {
		return nil, err
	}
	var vals []string
	for _, ts := range f.selected(id, req.StartMs, req.EndMs, setMatchers(req.MatcherSets)) {
		if v := labelsOf(ts).Get(req.Name); v != "" {
			vals = append(vals, v)
		}
	}
	slices.Sort(vals)
	return &client.StringsResponse{Values: slices.Compact(vals)}, nil
}

func (f *fakeIngester) Series(ctx context.Context, req *client.SeriesRequest) (*client.SeriesResponse, error) {
	id, err := f.check(ctx)
	if err != nil {
		return nil, err
	}
	resp := &client.SeriesResponse{}
	for _, ts := range f.selected(id, req.StartMs, req.EndMs, setMatchers(req.MatcherSets)) {
		set := &client.LabelSet{}
		for _, l := range ts.Labels {
			set.Labels = append(set.Labels, &client.Label{Name: l.Name, Value: l.Value})
		}
		resp.Series = append(resp.Series, set)
	}
	return resp, nil
}

func (f *fakeIngester) Metadata(ctx context.Context, req *client.MetadataRequest) (*client.MetadataResponse, error) {
	id, err := f.check(ctx)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &client.MetadataResponse{}
	for _, m := range f.metadata[id] {
		if req.Metric == "" || req.Metric == m.MetricFamilyName {
			resp.Metadata = append(resp.Metadata, m)
		}
	}
	return resp, nil
}

// serve starts a gRPC server for f on loopback, set up as the real
// ingester's: the project's codec and tenant interceptors, and health.
func serve(t *testing.T, f *fakeIngester) string {
	t.Helper()
	lis := testkit.Listen(t)
	srv := grpc.NewServer(append(tenant.ServerInterceptors(), grpc.ForceServerCodecV2(grpccodec.Codec{}))...)
	client.RegisterIngesterServer(srv, f)
	grpc_health_v1.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// newRing returns a ring of ACTIVE instances at addrs, replication factor
// rf, kept in an in-memory Consul.
func newRing(t testing.TB, rf int, addrs ...string) ring.ReadRing {
	t.Helper()
	logger := kitlog.New(slog.New(slog.DiscardHandler))
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), logger, nil)
	t.Cleanup(func() { _ = closer.Close() })
	ctx := context.Background()
	err := kv.CAS(ctx, "ring", func(any) (any, bool, error) {
		desc := ring.NewDesc()
		for i, addr := range addrs {
			desc.AddIngester(fmt.Sprintf("ingester-%d", i), addr, "", []uint32{uint32(i+1) * 1_000_000}, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
		}
		return desc, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(ring.Config{HeartbeatTimeout: time.Hour, ReplicationFactor: rf}, "ingester", "ring", kv, ring.NewDefaultReplicationStrategy(), nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(ctx, r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, r) })
	if n := r.InstancesCount(); n != len(addrs) {
		t.Fatalf("ring has %d instances, want %d", n, len(addrs))
	}
	return r
}

// testCluster is fake ingesters (three by default, holding the same data
// as with replication factor 3) and a started querier over them.
type testCluster struct {
	ingesters []*fakeIngester
	querier   *Querier
	reg       *prometheus.Registry
}

type clusterOpts struct {
	limits    func(*validation.Limits)
	cfg       func(*Config)
	client    func(*client.Config)
	ingesters int // 3 by default
	rf        int // 3 by default
}

func defaultConfig() Config {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	// Tests run queriers side by side in one directory, and the active
	// query log is a file per directory: TestActiveQueryLog gives it one.
	cfg.ActiveQueryTrackerDir = ""
	return cfg
}

func newCluster(t *testing.T, opts clusterOpts) *testCluster {
	t.Helper()
	if opts.ingesters == 0 {
		opts.ingesters = 3
	}
	if opts.rf == 0 {
		opts.rf = 3
	}
	c := &testCluster{reg: prometheus.NewRegistry()}
	var addrs []string
	for range opts.ingesters {
		f := newFakeIngester()
		c.ingesters = append(c.ingesters, f)
		addrs = append(addrs, serve(t, f))
	}
	r := newRing(t, opts.rf, addrs...)

	var limits validation.Limits
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	limits.RegisterFlags(fs)
	if opts.limits != nil {
		opts.limits(&limits)
	}
	var clientCfg client.Config
	clientCfg.RegisterFlags(fs)
	if opts.client != nil {
		opts.client(&clientCfg)
	}
	cfg := defaultConfig()
	if opts.cfg != nil {
		opts.cfg(&cfg)
	}
	q, err := New(cfg, clientCfg, nil, validation.NewOverrides(limits, nil), r, slog.New(slog.DiscardHandler), c.reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := services.StopAndAwaitTerminated(context.Background(), q); err != nil {
			t.Error(err)
		}
	})
	c.querier = q
	return c
}

// add stores the series on every ingester, as replication factor 3 does.
func (c *testCluster) add(tenantID string, ts ...prompb.TimeSeries) {
	for _, f := range c.ingesters {
		f.add(tenantID, ts...)
	}
}

// server serves the querier's API behind the tenant middleware, as the
// lead wires it.
func (c *testCluster) server(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(tenant.HTTPMiddleware(true, c.querier.Handler()))
	t.Cleanup(s.Close)
	return s
}

func series(lbls map[string]string, samples ...prompb.Sample) prompb.TimeSeries {
	ls := labels.FromMap(lbls)
	return prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil), Samples: samples}
}

func sample(t int64, v float64) prompb.Sample { return prompb.Sample{Timestamp: t, Value: v} }
