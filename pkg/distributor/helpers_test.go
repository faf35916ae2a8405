package distributor

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

const testTenant = "team-a"

// fakeIngester is an ingester that remembers what it was sent. fail, when
// set, is the gRPC code every Push answers with.
type fakeIngester struct {
	id      string
	addr    string
	fail    atomic.Uint32 // codes.Code; OK means succeed
	msg     string        // message of the failure
	discard bool          // count pushes only (benchmarks)
	delay   atomic.Int64  // time.Duration each Push waits first
	count   atomic.Int64
	// refuse, when set, answers a push as an ingester that stored only
	// part of it; nil stores everything.
	refuse func(req *client.PushRequest) error
	// verify checks a push's signature (-distributor.sign-write-requests).
	verify bool
	// admit, when set, runs before a push is handled: benchmarks model an
	// ingester's bounded capacity with it.
	admit func(ctx context.Context, series int) error
	// streamed counts the pushes that came over a PushStream.
	streamed atomic.Int64

	mu       sync.Mutex
	series   map[string]map[string]int // tenant -> series -> samples
	hists    map[string]int            // series -> histograms
	exemplar map[string]int            // series -> exemplars
	metadata map[string]prompb.MetricMetadata
	pushes   int
	stats    map[string]*client.UserStatsResponse
}

func (f *fakeIngester) Push(ctx context.Context, req *client.PushRequest) (*client.PushResponse, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, tenant.GRPCError(err)
	}
	if f.verify {
		if err := client.VerifySignature(ctx, id, &req.WriteRequest); err != nil {
			return nil, err
		}
	}
	if f.admit != nil {
		if err := f.admit(ctx, len(req.Timeseries)); err != nil {
			return nil, err
		}
	}
	if d := time.Duration(f.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if c := codes.Code(f.fail.Load()); c != codes.OK {
		return nil, status.Error(c, f.msg)
	}
	if f.discard {
		f.count.Add(int64(len(req.Timeseries)))
		return &client.PushResponse{}, nil
	}
	if f.refuse != nil {
		if err := f.refuse(req); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushes++
	if f.series[id] == nil {
		f.series[id] = map[string]int{}
	}
	for _, ts := range req.Timeseries {
		k := seriesString(ts.Labels)
		f.series[id][k] += len(ts.Samples)
		f.hists[k] += len(ts.Histograms)
		f.exemplar[k] += len(ts.Exemplars)
	}
	for _, m := range req.Metadata {
		f.metadata[m.MetricFamilyName] = m
	}
	return &client.PushResponse{}, nil
}

func (f *fakeIngester) samples(tenantID, series string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.series[tenantID][series]
}

func (f *fakeIngester) seriesCount(tenantID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.series[tenantID])
}

func (f *fakeIngester) QueryStream(*prompb.Query, client.QueryStreamServer) error {
	return status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) QueryStreamChunks(*prompb.Query, client.QueryStreamChunksServer) error {
	return status.Error(codes.Unimplemented, "fake")
}

// PushStream answers each message as Push answers a call of its tenant
// with its signature.
func (f *fakeIngester) PushStream(stream client.PushStreamServer) error {
	return client.ServePushStream(stream, func(ctx context.Context, m *client.StreamPushMessage) (*client.PushResponse, error) {
		f.streamed.Add(1)
		md := metadata.MD{}
		if m.Signature != "" {
			md.Set(client.SignatureHeader, m.Signature)
		}
		return f.Push(tenant.Inject(metadata.NewIncomingContext(ctx, md), m.TenantID), m.Request)
	})
}

func (f *fakeIngester) LabelNamesStream(*client.LabelNamesRequest, client.StringsStreamServer) error {
	return status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) LabelValuesStream(*client.LabelValuesRequest, client.StringsStreamServer) error {
	return status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) SeriesStream(*client.SeriesRequest, client.SeriesStreamServer) error {
	return status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) LabelNames(context.Context, *client.LabelNamesRequest) (*client.StringsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) LabelValues(context.Context, *client.LabelValuesRequest) (*client.StringsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) Series(context.Context, *client.SeriesRequest) (*client.SeriesResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) Metadata(context.Context, *client.MetadataRequest) (*client.MetadataResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

func (f *fakeIngester) UserStats(ctx context.Context, _ *client.UserStatsRequest) (*client.UserStatsResponse, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, tenant.GRPCError(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.stats[id]; ok {
		return s, nil
	}
	return &client.UserStatsResponse{}, nil
}

// seriesString renders labels as the tests name series: a="b",c="d".
func seriesString(ls []prompb.Label) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.Name, l.Value)
	}
	return strings.Join(parts, ",")
}

// cluster is a distributor in front of fake ingesters on a real ring.
type cluster struct {
	t         testing.TB
	d         *Distributor
	ingesters []*fakeIngester
	reg       *prometheus.Registry
	handler   http.Handler
	logs      *testkit.Buffer
	kv        kv.Client // the ingester ring's store
}

type clusterOpts struct {
	ingesters int
	rf        int
	discard   bool // ingesters only count what they get
	limits    func(*validation.Limits)
	cfg       func(*Config)
	overrides func() map[string]*validation.Limits // runtime overrides
	stale     int                                  // the last stale ingesters never heartbeat
	// zones, when set, puts ingester i in zone-<i mod zones> and turns on
	// the ring's zone awareness.
	zones int
	opts  []Option
}

// zoneOf is the zone of ingester i in a cluster of zones zones ("" for none).
func zoneOf(i, zones int) string {
	if zones == 0 {
		return ""
	}
	return fmt.Sprintf("zone-%c", 'a'+i%zones)
}

func defaultLimits() validation.Limits {
	var l validation.Limits
	fs := flag.NewFlagSet("limits", flag.PanicOnError)
	l.RegisterFlags(fs)
	return l
}

// fakeHeartbeatTimeout is the test ring's heartbeat timeout: longer than
// any test runs.
const fakeHeartbeatTimeout = 10 * 365 * 24 * time.Hour

func newCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	if o.ingesters == 0 {
		o.ingesters = 3
	}
	if o.rf == 0 {
		o.rf = 3
	}
	logs := &testkit.Buffer{}
	logger := logs.Logger()
	c := &cluster{t: t, reg: prometheus.NewRegistry(), logs: logs}

	desc := ring.NewDesc()
	tokens := ring.NewRandomTokenGeneratorWithSeed(42)
	var taken []uint32
	for i := range o.ingesters {
		f := &fakeIngester{
			id:       fmt.Sprintf("ingester-%d", i),
			series:   map[string]map[string]int{},
			hists:    map[string]int{},
			exemplar: map[string]int{},
			metadata: map[string]prompb.MetricMetadata{},
			stats:    map[string]*client.UserStatsResponse{},
			discard:  o.discard,
		}
		lis := testkit.Listen(t)
		srv := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(grpccodec.Codec{})}, tenant.ServerInterceptors()...)...)
		client.RegisterIngesterServer(srv, f)
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		f.addr = lis.Addr().String()
		c.ingesters = append(c.ingesters, f)
		tk := tokens.GenerateTokens(64, taken)
		taken = append(taken, tk...)
		sort.Slice(tk, func(a, b int) bool { return tk[a] < tk[b] })
		inst := desc.AddIngester(f.id, f.addr, zoneOf(i, o.zones), tk, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
		if i >= o.ingesters-o.stale {
			inst.Timestamp = 0 // beyond fakeHeartbeatTimeout
			desc.Ingesters[f.id] = inst
		}
	}

	kvClient, closer := consul.NewInMemoryClient(ring.GetCodec(), kitlog.New(logger), nil)
	t.Cleanup(func() { _ = closer.Close() })
	if err := kvClient.CAS(context.Background(), "ring", func(any) (any, bool, error) { return desc, false, nil }); err != nil {
		t.Fatal(err)
	}
	// The fake ingesters never heartbeat: their registration must stay
	// healthy however long a test or a fuzz run lasts.
	ringCfg := ring.Config{HeartbeatTimeout: fakeHeartbeatTimeout, ReplicationFactor: o.rf, ZoneAwarenessEnabled: o.zones > 0}
	r, err := ring.NewWithStoreClientAndStrategy(ringCfg, "ingester", "ring", kvClient, ring.NewDefaultReplicationStrategy(), nil, kitlog.New(logger))
	if err != nil {
		t.Fatal(err)
	}
	startService(t, r)
	testkit.Eventually(t, 5*time.Second, fmt.Sprintf("the ring to hold %d instances", o.ingesters), func() bool { return r.InstancesCount() == o.ingesters })

	limits := defaultLimits()
	if o.limits != nil {
		o.limits(&limits)
	}
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("distributor", flag.PanicOnError))
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	var clientCfg client.Config
	clientCfg.RegisterFlags(flag.NewFlagSet("client", flag.PanicOnError))
	overrides := validation.NewOverrides(limits, o.overrides)
	d, err := New(cfg, clientCfg, nil, overrides, r, logger, c.reg, o.opts...)
	if err != nil {
		t.Fatal(err)
	}
	startService(t, d)
	c.d = d
	c.kv = kvClient
	c.handler = tenant.HTTPMiddleware(true, d.PushHandler())
	return c
}

func startService(t testing.TB, s services.Service) {
	t.Helper()
	if err := services.StartAndAwaitRunning(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), s) })
}

// pushRaw posts body with the given headers and returns the response.
func (c *cluster) pushRaw(body []byte, header map[string]string) *http.Response {
	return serve(c.handler, body, header)
}

// serve posts a remote-write body to h; header entries override the
// defaults, and an empty value removes the header.
func serve(h http.Handler, body []byte, header map[string]string) *http.Response {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
	req.Header.Set(tenant.HeaderName, testTenant)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// push sends a remote write 1.0 request.
func (c *cluster) push(req *prompb.WriteRequest) *http.Response {
	c.t.Helper()
	return c.pushRaw(encodeV1(c.t, req), nil)
}

// pushV2 sends a remote write 2.0 request.
func (c *cluster) pushV2(req *writev2.Request) *http.Response {
	c.t.Helper()
	b, err := req.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	return c.pushRaw(snappy.Encode(nil, b), map[string]string{
		"Content-Type":                      "application/x-protobuf;proto=io.prometheus.write.v2.Request",
		"X-Prometheus-Remote-Write-Version": "2.0.0",
	})
}

// metric sums the children of a counter or gauge on the cluster's
// registry whose labels include the given name/value pairs.
func (c *cluster) metric(name string, labels ...string) float64 {
	c.t.Helper()
	return testkit.MetricSum(c.t, c.reg, name, labels...)
}

// waitMetric waits for a metric to reach want: ingester calls beyond the
// quorum may still be in flight when the push answered.
func (c *cluster) waitMetric(want float64, name string, labels ...string) {
	c.t.Helper()
	testkit.EventuallyNil(c.t, 5*time.Second, fmt.Sprintf("%s%v = %v", name, labels, want), func() error {
		if got := c.metric(name, labels...); got != want {
			return fmt.Errorf("it is %v", got)
		}
		return nil
	})
}

// stored returns how many ingesters hold the series, and the samples each has.
func (c *cluster) stored(series string) (replicas int, samples []int) {
	for _, f := range c.ingesters {
		if n := f.samples(testTenant, series); n > 0 {
			replicas++
			samples = append(samples, n)
		}
	}
	return replicas, samples
}

// waitStored waits until the series is on n ingesters: replicas beyond the
// quorum may still be in flight when the push answered.
func (c *cluster) waitStored(series string, n int) {
	c.t.Helper()
	testkit.EventuallyNil(c.t, 5*time.Second, fmt.Sprintf("series %s on %d ingesters", series, n), func() error {
		if got, _ := c.stored(series); got != n {
			return fmt.Errorf("it is on %d", got)
		}
		return nil
	})
}

func encodeV1(t testing.TB, req *prompb.WriteRequest) []byte {
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// series builds a series from name/value pairs and samples at ts.
func series(ts []int64, kv ...string) prompb.TimeSeries {
	var s prompb.TimeSeries
	for i := 0; i+1 < len(kv); i += 2 {
		s.Labels = append(s.Labels, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	for i, t := range ts {
		s.Samples = append(s.Samples, prompb.Sample{Timestamp: t, Value: float64(i)})
	}
	return s
}

func nowMs() int64 { return time.Now().UnixMilli() }
