package ingester

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// testLimits are per-tenant limits a test can change at run time, as the
// runtime configuration file does.
type testLimits struct {
	mu        sync.Mutex
	defaults  validation.Limits
	overrides map[string]*validation.Limits
}

func newTestLimits(t testing.TB, mutate func(*validation.Limits)) *testLimits {
	t.Helper()
	var l validation.Limits
	fs := flag.NewFlagSet("limits", flag.PanicOnError)
	l.RegisterFlags(fs)
	if mutate != nil {
		mutate(&l)
	}
	return &testLimits{defaults: l, overrides: map[string]*validation.Limits{}}
}

func (tl *testLimits) set(tenantID string, mutate func(*validation.Limits)) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	l := tl.defaults
	mutate(&l)
	tl.overrides[tenantID] = &l
}

func (tl *testLimits) overridesFor() *validation.Overrides {
	return validation.NewOverrides(tl.defaults, func() map[string]*validation.Limits {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		out := make(map[string]*validation.Limits, len(tl.overrides))
		for k, v := range tl.overrides {
			out[k] = v
		}
		return out
	})
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testConfig(t testing.TB, dir string, kvClient kv.Client) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("ingester", flag.PanicOnError)
	cfg.RegisterFlags(fs, testLogger(t))
	cfg.TSDB.RegisterFlags(fs) // the root config registers these beside the ingester's
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg.TSDB.Dir = dir
	lc := &cfg.LifecyclerConfig
	// Carries the test's store to New (ringStoreOf), as the process hands
	// the ingester its KV client.
	lc.RingConfig.KVStore.Mock = kvClient
	lc.RingConfig.ReplicationFactor = 1
	lc.Addr = "127.0.0.1"
	lc.Port = 9095
	lc.ID = "ingester-1"
	lc.NumTokens = 8
	lc.MinReadyDuration = 0
	lc.HeartbeatPeriod = 100 * time.Millisecond
	return cfg
}

func ringStoreOf(cfg Config) kv.Client { return cfg.LifecyclerConfig.RingConfig.KVStore.Mock }

func newKV(t testing.TB) kv.Client {
	t.Helper()
	c, closer := consul.NewInMemoryClient(ring.GetCodec(), kitlog.New(testLogger(t)), nil)
	t.Cleanup(func() { _ = closer.Close() })
	return c
}

// harness is a running ingester behind a real gRPC server on loopback,
// called through the client package as distributors and queriers do.
type harness struct {
	t      testing.TB
	cfg    Config
	limits *testLimits
	reg    *prometheus.Registry
	ing    *Ingester
	srv    *grpc.Server
	addr   string
	conn   *client.Conn
}

func startHarness(t testing.TB, cfg Config, limits *testLimits, opts ...Option) *harness {
	t.Helper()
	h := &harness{t: t, cfg: cfg, limits: limits, reg: prometheus.NewRegistry()}
	ing, err := New(cfg, ringStoreOf(cfg), limits.overridesFor(), testLogger(t), h.reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.ing = ing
	// The start context is also the running context: it must outlive the call.
	if err := services.StartAndAwaitRunning(context.Background(), ing); err != nil {
		t.Fatal(err)
	}
	lis := testkit.Listen(t)
	h.srv = grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(grpccodec.Codec{})}, tenant.ServerInterceptors()...)...)
	client.RegisterIngesterServer(h.srv, ing)
	go func() { _ = h.srv.Serve(lis) }()
	h.addr = lis.Addr().String()
	h.conn, err = client.Dial(h.addr, client.Config{ConfigWithHealthCheck: grpcclient.ConfigWithHealthCheck{Config: grpcclient.Config{MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 100 << 20}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.stop)
	return h
}

// stop shuts the harness down as SIGTERM would; it may be called twice.
func (h *harness) stop() {
	if h.conn == nil {
		return
	}
	_ = h.conn.Close()
	h.srv.Stop()
	h.conn = nil
	if err := services.StopAndAwaitTerminated(context.Background(), h.ing); err != nil {
		h.t.Errorf("stopping ingester: %v", err)
	}
}

func ctxFor(tenantID string) context.Context {
	return tenant.Inject(context.Background(), tenantID)
}

func (h *harness) push(tenantID string, series ...prompb.TimeSeries) error {
	h.t.Helper()
	_, err := h.conn.Push(ctxFor(tenantID), &prompb.WriteRequest{Timeseries: series})
	return err
}

func (h *harness) mustPush(tenantID string, series ...prompb.TimeSeries) {
	h.t.Helper()
	if err := h.push(tenantID, series...); err != nil {
		h.t.Fatalf("push: %v", err)
	}
}

// query returns every series matching the matchers in [from, to],
// checking batches never exceed 128 series.
func (h *harness) query(tenantID string, from, to int64, ms ...*prompb.LabelMatcher) []*prompb.TimeSeries {
	h.t.Helper()
	stream, err := h.conn.QueryStream(ctxFor(tenantID), &prompb.Query{StartTimestampMs: from, EndTimestampMs: to, Matchers: ms})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*prompb.TimeSeries
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			h.t.Fatalf("query stream: %v", err)
		}
		if len(res.Timeseries) > queryStreamBatchSeries {
			h.t.Fatalf("batch of %d series, want at most %d", len(res.Timeseries), queryStreamBatchSeries)
		}
		out = append(out, res.Timeseries...)
	}
}

func series(name string, kv ...string) []prompb.Label {
	ls := []prompb.Label{{Name: model.MetricNameLabel, Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

func floats(ls []prompb.Label, tv ...float64) prompb.TimeSeries {
	ts := prompb.TimeSeries{Labels: ls}
	for i := 0; i+1 < len(tv); i += 2 {
		ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: int64(tv[i]), Value: tv[i+1]})
	}
	return ts
}

func sameSample(a, b prompb.Sample) bool { return a.Timestamp == b.Timestamp && a.Value == b.Value }

func eq(name, value string) *prompb.LabelMatcher {
	return &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: name, Value: value}
}

func labelsString(ls []prompb.Label) string {
	var b labels.ScratchBuilder
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels().String()
}

// base is a recent, minute-aligned timestamp: the TSDB head only accepts
// samples near the newest one it holds.
var base = time.Now().Truncate(time.Minute).UnixMilli()

func TestPushQueryStreamOverGRPC(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))

	var reqSeries []prompb.TimeSeries
	for i := range 300 { // more than two batches
		ls := series("requests_total", "pod", string(rune('a'+i%26))+strings.Repeat("x", i/26))
		reqSeries = append(reqSeries, floats(ls, float64(base), float64(i), float64(base+15000), float64(i)+0.5))
	}
	reqSeries = append(reqSeries, floats(series("up", "job", "api"), float64(base), 1, float64(base+15000), 0))
	h.mustPush("team-a", reqSeries...)

	got := h.query("team-a", base, base+15000, eq(model.MetricNameLabel, "up"))
	if len(got) != 1 {
		t.Fatalf("got %d series, want 1: %v", len(got), got)
	}
	if s := labelsString(got[0].Labels); s != `{__name__="up", job="api"}` {
		t.Errorf("labels %s", s)
	}
	want := []prompb.Sample{{Timestamp: base, Value: 1}, {Timestamp: base + 15000, Value: 0}}
	if len(got[0].Samples) != 2 || !sameSample(got[0].Samples[0], want[0]) || !sameSample(got[0].Samples[1], want[1]) {
		t.Errorf("samples %v, want %v", got[0].Samples, want)
	}

	// The time range is inclusive and applied.
	if got := h.query("team-a", base+1, base+15000, eq(model.MetricNameLabel, "up")); len(got) != 1 || len(got[0].Samples) != 1 || got[0].Samples[0].Value != 0 {
		t.Errorf("range query: %v", got)
	}

	all := h.query("team-a", base, base+15000, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: model.MetricNameLabel, Value: "requests_.*"})
	if len(all) != 300 {
		t.Fatalf("got %d series, want 300", len(all))
	}
	for i := 1; i < len(all); i++ {
		if labelsString(all[i-1].Labels) >= labelsString(all[i].Labels) {
			t.Fatalf("series not sorted: %s before %s", labelsString(all[i-1].Labels), labelsString(all[i].Labels))
		}
	}
	for _, s := range all {
		if len(s.Samples) != 2 || s.Samples[1].Value != s.Samples[0].Value+0.5 {
			t.Fatalf("series %s: samples %v", labelsString(s.Labels), s.Samples)
		}
	}

	if v := testutil.ToFloat64(h.ing.metrics.ingestedSamples); v != 602 {
		t.Errorf("cortex_ingester_ingested_samples_total = %v, want 602", v)
	}
	if v := testutil.ToFloat64(h.ing.metrics.memSeries); v != 301 {
		t.Errorf("cortex_ingester_memory_series = %v, want 301", v)
	}
	if v := testutil.ToFloat64(h.ing.metrics.memUsers); v != 1 {
		t.Errorf("cortex_ingester_memory_users = %v, want 1", v)
	}

	// A cancelled call is refused, not served.
	ctx, cancel := context.WithCancel(ctxFor("team-a"))
	cancel()
	if stream, err := h.conn.QueryStream(ctx, &prompb.Query{EndTimestampMs: base + 15000}); err == nil {
		if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
			t.Errorf("cancelled query: %v, want Canceled", err)
		}
	}
}

func TestMissingTenantIsUnauthenticated(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	// A raw connection without the tenant client interceptors, which would
	// refuse to send a call without a tenant.
	cc, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := client.NewIngesterClient(cc)
	ctx := context.Background()
	_, err = c.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{floats(series("up"), float64(base), 1)}})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("push without tenant: %v, want Unauthenticated", err)
	}
	if _, err := c.LabelNames(ctx, &client.LabelNamesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("label names without tenant: %v, want Unauthenticated", err)
	}
	stream, err := c.QueryStream(ctx, &prompb.Query{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("query without tenant: %v, want Unauthenticated", err)
	}
}

func TestHistogramsAndExemplars(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, enableNativeHistograms))

	ih := tsdbutil.GenerateTestHistogram(3)
	fh := tsdbutil.GenerateTestFloatHistogram(5)
	h.mustPush("t",
		prompb.TimeSeries{Labels: series("latency_seconds", "kind", "int"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(base, ih)}},
		prompb.TimeSeries{Labels: series("latency_seconds", "kind", "float"), Histograms: []prompb.Histogram{prompb.FromFloatHistogram(base, fh)}},
		prompb.TimeSeries{
			Labels:  series("http_requests_total", "code", "200"),
			Samples: []prompb.Sample{{Timestamp: base, Value: 7}},
			Exemplars: []prompb.Exemplar{
				{Labels: []prompb.Label{{Name: "trace_id", Value: "def"}}, Value: 2, Timestamp: base},
				{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: base - 1000},
			},
		},
	)

	check := func(h *harness) {
		t.Helper()
		got := h.query("t", base, base, eq(model.MetricNameLabel, "latency_seconds"))
		if len(got) != 2 {
			t.Fatalf("got %d histogram series, want 2", len(got))
		}
		// Sorted by labels: kind="float" first.
		if len(got[0].Histograms) != 1 || !got[0].Histograms[0].IsFloatHistogram() {
			t.Fatalf("float histogram series: %+v", got[0])
		}
		gotFH := got[0].Histograms[0].ToFloatHistogram()
		gotFH.CounterResetHint = fh.CounterResetHint
		if !gotFH.Equals(fh) || got[0].Histograms[0].Timestamp != base {
			t.Errorf("float histogram round trip:\n got %v\nwant %v", gotFH, fh)
		}
		if len(got[1].Histograms) != 1 || got[1].Histograms[0].IsFloatHistogram() {
			t.Fatalf("integer histogram series: %+v", got[1])
		}
		gotIH := got[1].Histograms[0].ToIntHistogram()
		gotIH.CounterResetHint = ih.CounterResetHint
		if !gotIH.Equals(ih) {
			t.Errorf("integer histogram round trip:\n got %v\nwant %v", gotIH, ih)
		}

		eq, err := h.ing.getTSDB("t").db.ExemplarQuerier(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		res, err := eq.Select(base-60000, base+60000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "http_requests_total")})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || len(res[0].Exemplars) != 2 {
			t.Fatalf("exemplars: %+v", res)
		}
		if e := res[0].Exemplars[0]; e.Labels.Get("trace_id") != "abc" || e.Value != 1 || e.Ts != base-1000 {
			t.Errorf("first exemplar %+v", e)
		}
		if e := res[0].Exemplars[1]; e.Labels.Get("trace_id") != "def" || e.Value != 2 || e.Ts != base {
			t.Errorf("second exemplar %+v", e)
		}
	}
	check(h)
	if v := testutil.ToFloat64(h.ing.metrics.ingestedExemplars); v != 2 {
		t.Errorf("cortex_ingester_ingested_exemplars_total = %v, want 2", v)
	}

	// Histograms and exemplars come back from the WAL after a restart.
	h.stop()
	check(startHarness(t, h.cfg, h.limits))
}

// mustSet parses s into a flag value, as the flag or the runtime
// configuration would.
func mustSet(t *testing.T, v flag.Value, s string) {
	t.Helper()
	if err := v.Set(s); err != nil {
		t.Fatal(err)
	}
}

func TestOutOfOrderWindow(t *testing.T) {
	limits := newTestLimits(t, nil)
	limits.set("ooo", func(l *validation.Limits) { mustSet(t, &l.OutOfOrderTimeWindow, "10m") })
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), limits)

	a := series("temp", "room", "a")
	b := series("temp", "room", "b")
	h.mustPush("ooo", floats(a, float64(base), 1), floats(b, float64(base), 1))
	// Five minutes back: inside the window, accepted.
	h.mustPush("ooo", floats(a, float64(base-5*60000), 2))
	// Thirty minutes back is refused, naming the series and the window;
	// the valid series of the same request is stored.
	err := h.push("ooo", floats(b, float64(base+1000), 3), floats(a, float64(base-30*60000), 4))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("too old sample: %v, want InvalidArgument", err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{`{__name__="temp", room="a"}`, "too old", "10m0s", "-ingester.out-of-order-time-window"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	got := h.query("ooo", 0, 0, eq(model.MetricNameLabel, "temp"))
	if len(got) != 2 {
		t.Fatalf("got %d series", len(got))
	}
	if s := got[0].Samples; len(s) != 2 || !sameSample(s[0], prompb.Sample{Timestamp: base - 5*60000, Value: 2}) || !sameSample(s[1], prompb.Sample{Timestamp: base, Value: 1}) {
		t.Errorf("room a: %v", s)
	}
	if s := got[1].Samples; len(s) != 2 || !sameSample(s[1], prompb.Sample{Timestamp: base + 1000, Value: 3}) {
		t.Errorf("room b: %v", s)
	}
	if v := testutil.ToFloat64(h.ing.metrics.discarded.WithLabelValues(reasonSampleTooOld, "ooo")); v != 1 {
		t.Errorf("discarded too old = %v, want 1", v)
	}

	// Without a window, any out-of-order sample is refused.
	h.mustPush("strict", floats(a, float64(base), 1))
	err = h.push("strict", floats(a, float64(base-1000), 2), floats(a, float64(base), 3))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("out-of-order sample: %v, want InvalidArgument", err)
	}
	msg = status.Convert(err).Message()
	for _, want := range []string{`{__name__="temp", room="a"}`, "out-of-order", "(and 1 more refused"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}

	// Raising the window at run time applies to the open TSDB.
	limits.set("strict", func(l *validation.Limits) { mustSet(t, &l.OutOfOrderTimeWindow, "1h") })
	h.ing.applyTSDBConfigs()
	h.mustPush("strict", floats(a, float64(base-1000), 2))
	if got := h.query("strict", 0, 0, eq("room", "a")); len(got) != 1 || len(got[0].Samples) != 2 {
		t.Errorf("after raising the window: %v", got)
	}
}

func TestSeriesLimits(t *testing.T) {
	limits := newTestLimits(t, nil)
	limits.set("user-limit", func(l *validation.Limits) { l.MaxSeriesPerUser = 2 })
	limits.set("metric-limit", func(l *validation.Limits) { l.MaxSeriesPerMetric = 1 })
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), limits)

	err := h.push("user-limit",
		floats(series("a"), float64(base), 1),
		floats(series("b"), float64(base), 2),
		floats(series("c", "x", "y"), float64(base), 3, float64(base+1), 4),
		floats(series("a"), float64(base+1), 5),
	)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("over per-user limit: %v, want InvalidArgument", err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{`{__name__="c", x="y"}`, "per-user series limit of 2", "-ingester.max-series-per-user", "(and 1 more"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if got := h.query("user-limit", 0, 0, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: model.MetricNameLabel, Value: ".+"}); len(got) != 2 || len(got[0].Samples) != 2 || len(got[1].Samples) != 1 {
		t.Errorf("stored: %v", got)
	}
	if v := testutil.ToFloat64(h.ing.metrics.discarded.WithLabelValues(reasonPerUserSeriesLimit, "user-limit")); v != 2 {
		t.Errorf("discarded per_user_series_limit = %v, want 2", v)
	}
	// Existing series still take samples at the limit.
	h.mustPush("user-limit", floats(series("b"), float64(base+1), 6))

	err = h.push("metric-limit",
		floats(series("cpu", "core", "0"), float64(base), 1),
		floats(series("cpu", "core", "1"), float64(base), 2),
		floats(series("mem"), float64(base), 3),
	)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("over per-metric limit: %v, want InvalidArgument", err)
	}
	msg = status.Convert(err).Message()
	for _, want := range []string{`{__name__="cpu", core="1"}`, `per-metric series limit of 1 exceeded for metric "cpu"`, "-ingester.max-series-per-metric"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "more refused") {
		t.Errorf("error %q counts other refusals, there are none", msg)
	}
	if got := h.query("metric-limit", 0, 0, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: model.MetricNameLabel, Value: ".+"}); len(got) != 2 {
		t.Errorf("stored: %v", got)
	}
	if v := testutil.ToFloat64(h.ing.metrics.discarded.WithLabelValues(reasonPerMetricSeriesLimit, "metric-limit")); v != 1 {
		t.Errorf("discarded per_metric_series_limit = %v, want 1", v)
	}
}

func TestRestartReplaysWAL(t *testing.T) {
	dir := t.TempDir()
	kvClient := newKV(t)
	limits := newTestLimits(t, func(l *validation.Limits) { l.MaxSeriesPerUser = 3 })
	h := startHarness(t, testConfig(t, dir, kvClient), limits)

	var want []prompb.TimeSeries
	for i := range 3 {
		ts := floats(series("m", "i", string(rune('0'+i))))
		for j := range 50 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: base + int64(j)*1000, Value: float64(i*100 + j)})
		}
		want = append(want, ts)
	}
	for j := range 50 { // one request per sample round, as Prometheus sends them
		var req []prompb.TimeSeries
		for _, ts := range want {
			req = append(req, prompb.TimeSeries{Labels: ts.Labels, Samples: ts.Samples[j : j+1]})
		}
		h.mustPush("t1", req...)
	}
	h.mustPush("t2", floats(series("other"), float64(base), 42))

	// A copy of the data directory taken while the ingester runs is what
	// kill -9 would leave behind: every acknowledged sample must be in it.
	crashDir := t.TempDir()
	copyDir(t, dir, crashDir)

	check := func(h *harness) {
		t.Helper()
		got := h.query("t1", 0, 0, eq(model.MetricNameLabel, "m"))
		if len(got) != len(want) {
			t.Fatalf("got %d series after restart, want %d", len(got), len(want))
		}
		for i := range want {
			if len(got[i].Samples) != len(want[i].Samples) {
				t.Fatalf("series %d: %d samples, want %d", i, len(got[i].Samples), len(want[i].Samples))
			}
			for j := range want[i].Samples {
				if !sameSample(got[i].Samples[j], want[i].Samples[j]) {
					t.Fatalf("series %d sample %d: %v, want %v", i, j, got[i].Samples[j], want[i].Samples[j])
				}
			}
		}
		if got := h.query("t2", 0, 0, eq(model.MetricNameLabel, "other")); len(got) != 1 || got[0].Samples[0].Value != 42 {
			t.Errorf("t2 after restart: %v", got)
		}
		if v := testutil.ToFloat64(h.ing.metrics.memUsers); v != 2 {
			t.Errorf("cortex_ingester_memory_users = %v, want 2", v)
		}
		if v := testutil.ToFloat64(h.ing.metrics.memSeries); v != 4 {
			t.Errorf("cortex_ingester_memory_series = %v, want 4", v)
		}
		// The replayed series count toward the limit.
		err := h.push("t1", floats(series("new"), float64(base+60000), 1))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "per-user series limit of 3") {
			t.Errorf("push over limit after restart: %v", err)
		}
	}

	h.stop()
	h2 := startHarness(t, h.cfg, limits)
	check(h2)
	h2.stop()

	check(startHarness(t, testConfig(t, crashDir, newKV(t)), limits))

	// Nothing but tenant TSDBs is opened or touched.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o700); err != nil {
		t.Fatal(err)
	}
	h3 := startHarness(t, testConfig(t, dir, kvClient), limits)
	if n := len(h3.ing.allTSDBs()); n != 2 {
		t.Errorf("%d TSDBs open, want 2", n)
	}
	h3.stop()
	if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "mine" {
		t.Errorf("foreign file changed: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		t.Errorf("foreign directory: %v", err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o750)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLabelsSeriesMetadataUserStats(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.Limiter.SkipMetadataLimits = false // the limit below applies in the ingester
	h := startHarness(t, cfg, newTestLimits(t, nil))
	ctx := ctxFor("t")
	_, err := h.conn.Push(ctx, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			floats(series("http_requests_total", "job", "api", "code", "200"), float64(base), 1),
			floats(series("http_requests_total", "job", "api", "code", "500"), float64(base), 1),
			floats(series("http_requests_total", "job", "web", "code", "200"), float64(base), 1),
			floats(series("up", "job", "db"), float64(base+60000), 1),
		},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests.", Unit: ""},
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "Up."},
			{Type: prompb.MetricMetadata_GAUGEHISTOGRAM, MetricFamilyName: "queue_depth", Help: "Depth.", Unit: "items"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	set := func(ms ...*client.LabelMatcher) *client.MatcherSet { return &client.MatcherSet{Matchers: ms} }
	m := func(typ client.LabelMatcher_Type, name, value string) *client.LabelMatcher {
		return &client.LabelMatcher{Type: typ, Name: name, Value: value}
	}

	names, err := h.conn.LabelNames(ctx, &client.LabelNamesRequest{StartMs: base, EndMs: base + 60000})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names.Values, ","); got != "__name__,code,job" {
		t.Errorf("label names %s", got)
	}
	names, err = h.conn.LabelNames(ctx, &client.LabelNamesRequest{StartMs: base, EndMs: base + 60000, MatcherSets: []*client.MatcherSet{set(m(client.LabelMatcher_EQ, "__name__", "up"))}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names.Values, ","); got != "__name__,job" {
		t.Errorf("label names of up: %s", got)
	}
	names, err = h.conn.LabelNames(ctx, &client.LabelNamesRequest{StartMs: base, EndMs: base + 60000, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names.Values, ","); got != "__name__,code" {
		t.Errorf("label names limit 2: %s", got)
	}

	values, err := h.conn.LabelValues(ctx, &client.LabelValuesRequest{Name: "job", StartMs: base, EndMs: base + 60000})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(values.Values, ","); got != "api,db,web" {
		t.Errorf("job values %s", got)
	}
	values, err = h.conn.LabelValues(ctx, &client.LabelValuesRequest{Name: "job", StartMs: base, EndMs: base + 60000, MatcherSets: []*client.MatcherSet{
		set(m(client.LabelMatcher_EQ, "code", "500")),
		set(m(client.LabelMatcher_RE, "__name__", "u.")),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(values.Values, ","); got != "api,db" {
		t.Errorf("job values of two matcher sets: %s", got)
	}
	// The time range applies: before base+60000 there is no "up".
	values, err = h.conn.LabelValues(ctx, &client.LabelValuesRequest{Name: "job", StartMs: base, EndMs: base + 1000, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(values.Values, ","); got != "api" {
		t.Errorf("job values in range with limit 1: %s", got)
	}
	if _, err := h.conn.LabelValues(ctx, &client.LabelValuesRequest{Name: "job", MatcherSets: []*client.MatcherSet{set(m(client.LabelMatcher_RE, "job", "("))}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad regexp: %v, want InvalidArgument", err)
	}

	sr, err := h.conn.Series(ctx, &client.SeriesRequest{StartMs: base, EndMs: base + 60000, MatcherSets: []*client.MatcherSet{
		set(m(client.LabelMatcher_EQ, "job", "api")),
		set(m(client.LabelMatcher_EQ, "code", "200")),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sr.Series {
		var parts []string
		for _, l := range s.Labels {
			parts = append(parts, l.Name+"="+l.Value)
		}
		got = append(got, strings.Join(parts, ","))
	}
	wantSeries := []string{
		"__name__=http_requests_total,code=200,job=api",
		"__name__=http_requests_total,code=200,job=web",
		"__name__=http_requests_total,code=500,job=api",
	}
	if strings.Join(got, " ") != strings.Join(wantSeries, " ") {
		t.Errorf("series:\n got %v\nwant %v", got, wantSeries)
	}
	sr, err = h.conn.Series(ctx, &client.SeriesRequest{StartMs: base, EndMs: base + 60000, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Series) != 2 {
		t.Errorf("all series with limit 2: %d", len(sr.Series))
	}

	md, err := h.conn.Metadata(ctx, &client.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var mds []string
	for _, x := range md.Metadata {
		mds = append(mds, x.MetricFamilyName+"/"+x.Type+"/"+x.Help+"/"+x.Unit)
	}
	if got := strings.Join(mds, " "); got != "http_requests_total/counter/Requests./ queue_depth/gaugehistogram/Depth./items up/gauge/Up./" {
		t.Errorf("metadata %s", got)
	}
	md, err = h.conn.Metadata(ctx, &client.MetadataRequest{Metric: "up"})
	if err != nil || len(md.Metadata) != 1 || md.Metadata[0].Type != "gauge" {
		t.Errorf("metadata of up: %v, %v", md, err)
	}
	md, err = h.conn.Metadata(ctx, &client.MetadataRequest{Limit: 1})
	if err != nil || len(md.Metadata) != 1 {
		t.Errorf("metadata limit 1: %v, %v", md, err)
	}
	// Metadata not refreshed within the retain period is forgotten.
	h.ing.getTSDB("t").metadata.purge(time.Now().Add(time.Minute))
	if md, err = h.conn.Metadata(ctx, &client.MetadataRequest{}); err != nil || len(md.Metadata) != 0 {
		t.Errorf("metadata after purge: %v, %v", md, err)
	}

	h.ing.getTSDB("t").rate.tick()
	stats, err := h.conn.UserStats(ctx, &client.UserStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.NumSeries != 4 {
		t.Errorf("num series %d, want 4", stats.NumSeries)
	}
	if want := 4 / h.cfg.RateUpdatePeriod.Seconds(); stats.IngestionRate != want || stats.ApiIngestionRate != want {
		t.Errorf("ingestion rate %v / %v, want %v", stats.IngestionRate, stats.ApiIngestionRate, want)
	}
	h.ing.getTSDB("t").rate.tick() // nothing new: the average decays by alpha
	if stats, _ = h.conn.UserStats(ctx, &client.UserStatsRequest{}); math.Abs(stats.IngestionRate-0.8*4/h.cfg.RateUpdatePeriod.Seconds()) > 1e-12 {
		t.Errorf("decayed ingestion rate %v", stats.IngestionRate)
	}
}

func TestTenantIsolation(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	_, err := h.conn.Push(ctxFor("a"), &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{floats(series("secret", "k", "v"), float64(base), 1)},
		Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "secret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.mustPush("b", floats(series("public"), float64(base), 2))

	ctx := ctxFor("b")
	if got := h.query("b", 0, 0, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: model.MetricNameLabel, Value: ".+"}); len(got) != 1 || labelsString(got[0].Labels) != `{__name__="public"}` {
		t.Errorf("tenant b query: %v", got)
	}
	names, err := h.conn.LabelNames(ctx, &client.LabelNamesRequest{})
	if err != nil || strings.Join(names.Values, ",") != "__name__" {
		t.Errorf("tenant b label names: %v, %v", names, err)
	}
	values, err := h.conn.LabelValues(ctx, &client.LabelValuesRequest{Name: "__name__"})
	if err != nil || strings.Join(values.Values, ",") != "public" {
		t.Errorf("tenant b label values: %v, %v", values, err)
	}
	sr, err := h.conn.Series(ctx, &client.SeriesRequest{})
	if err != nil || len(sr.Series) != 1 {
		t.Errorf("tenant b series: %v, %v", sr, err)
	}
	md, err := h.conn.Metadata(ctx, &client.MetadataRequest{})
	if err != nil || len(md.Metadata) != 0 {
		t.Errorf("tenant b metadata: %v, %v", md, err)
	}
	stats, err := h.conn.UserStats(ctx, &client.UserStatsRequest{})
	if err != nil || stats.NumSeries != 1 {
		t.Errorf("tenant b stats: %v, %v", stats, err)
	}

	// A tenant that never pushed sees nothing and gets no TSDB.
	ctx = ctxFor("c")
	if got := h.query("c", 0, 0, eq(model.MetricNameLabel, "secret")); len(got) != 0 {
		t.Errorf("tenant c query: %v", got)
	}
	if names, err := h.conn.LabelNames(ctx, &client.LabelNamesRequest{}); err != nil || len(names.Values) != 0 {
		t.Errorf("tenant c label names: %v, %v", names, err)
	}
	if stats, err := h.conn.UserStats(ctx, &client.UserStatsRequest{}); err != nil || stats.NumSeries != 0 {
		t.Errorf("tenant c stats: %v, %v", stats, err)
	}
	if h.ing.getTSDB("c") != nil {
		t.Error("reads opened a TSDB for tenant c")
	}
}

func TestRingLifecycle(t *testing.T) {
	kvClient := newKV(t)
	cfg := testConfig(t, t.TempDir(), kvClient)
	h := startHarness(t, cfg, newTestLimits(t, nil))

	testkit.EventuallyNil(t, 10*time.Second, "the ingester to be ready", func() error { return h.ing.CheckReady(context.Background()) })
	desc := ringDesc(t, kvClient)
	inst, ok := desc.Ingesters[cfg.LifecyclerConfig.ID]
	if !ok || inst.State != ring.ACTIVE || inst.Addr != "127.0.0.1:9095" || len(inst.Tokens) != cfg.LifecyclerConfig.NumTokens {
		t.Fatalf("ring entry %+v", inst)
	}
	testkit.Eventually(t, 10*time.Second, "heartbeats counted under Cortex's metric name", func() bool {
		return testkit.MetricSum(t, h.reg, "cortex_member_consul_heartbeats_total", "name", "ingester") >= 1
	})

	// Leaving on shutdown unregisters the instance.
	h.stop()
	if _, ok := ringDesc(t, kvClient).Ingesters[cfg.LifecyclerConfig.ID]; ok {
		t.Error("instance still in the ring after shutdown")
	}
	if err := h.ing.CheckReady(context.Background()); err == nil {
		t.Error("ready after shutdown")
	}
	if _, err := h.ing.Push(ctxFor("t"), &client.PushRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("push after shutdown: %v, want Unavailable", err)
	}
}

func ringDesc(t *testing.T, c kv.Client) *ring.Desc {
	t.Helper()
	v, err := c.Get(context.Background(), RingKey)
	if err != nil {
		t.Fatal(err)
	}
	return ring.GetOrCreateRingDesc(v)
}

func TestIdleHeadCompactionAndTSDBMetrics(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	h := startHarness(t, cfg, newTestLimits(t, nil))

	// Three hours of samples span two 2h blocks.
	start := base - 3*3600*1000
	for ts := start; ts <= base; ts += 10 * 60 * 1000 {
		h.mustPush("idle", floats(series("m"), float64(ts), float64(ts)))
	}
	h.mustPush("busy", floats(series("m"), float64(base), 1))

	u := h.ing.getTSDB("idle")
	u.lastPush.Store(time.Now().Add(-2 * cfg.TSDB.HeadCompactionIdleTimeout).UnixNano())
	h.ing.compactHeads(context.Background())

	if n := len(u.db.Blocks()); n < 2 {
		t.Fatalf("%d blocks after idle compaction, want at least 2", n)
	}
	if n := u.db.Head().NumSeries(); n != 0 {
		t.Errorf("%d series left in the idle head", n)
	}
	if n := h.ing.getTSDB("busy").db.Head().NumSeries(); n != 1 {
		t.Errorf("busy head has %d series, want 1", n)
	}
	if v := testutil.ToFloat64(h.ing.metrics.memSeries); v != 1 {
		t.Errorf("cortex_ingester_memory_series = %v, want 1", v)
	}
	if v := testutil.ToFloat64(h.ing.metrics.seriesRemoved.WithLabelValues("idle")); v != 1 {
		t.Errorf("cortex_ingester_memory_series_removed_total{user=idle} = %v, want 1", v)
	}
	got := h.query("idle", 0, 0, eq(model.MetricNameLabel, "m"))
	if len(got) != 1 || len(got[0].Samples) != 19 || got[0].Samples[0].Timestamp != start || got[0].Samples[18].Timestamp != base {
		t.Errorf("idle tenant's samples from blocks: %v", got)
	}

	// TSDB metrics are summed across tenants under Cortex's names.
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "prometheus_") {
			t.Errorf("TSDB metric %s exported under its Prometheus name", mf.GetName())
		}
		if len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			found[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if v, ok := found["cortex_ingester_tsdb_head_series"]; !ok || v != 1 {
		t.Errorf("cortex_ingester_tsdb_head_series = %v (present %v), want 1", v, ok)
	}
	if v := found["cortex_ingester_tsdb_head_series_created_total"]; v != 2 {
		t.Errorf("cortex_ingester_tsdb_head_series_created_total = %v, want 2", v)
	}
	if v := found["cortex_ingester_tsdb_blocks_loaded"]; v < 2 {
		t.Errorf("cortex_ingester_tsdb_blocks_loaded = %v, want at least 2", v)
	}
}

func TestPerSampleErrors(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, enableNativeHistograms))
	a := series("x", "k", "a")
	h.mustPush("t", floats(a, float64(base), 1))

	// Same timestamp, same value: accepted silently, as a retried request is.
	h.mustPush("t", floats(a, float64(base), 1))
	err := h.push("t", floats(a, float64(base), 2))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "duplicate sample for timestamp") || !strings.Contains(err.Error(), `{__name__="x", k="a"}`) {
		t.Errorf("new value for timestamp: %v", err)
	}
	if v := testutil.ToFloat64(h.ing.metrics.discarded.WithLabelValues(reasonNewValueForTimestamp, "t")); v != 1 {
		t.Errorf("discarded new-value-for-timestamp = %v, want 1", v)
	}

	bad := prompb.FromIntHistogram(base, tsdbutil.GenerateTestHistogram(1))
	bad.Count = &prompb.Histogram_CountInt{CountInt: 1} // fewer than its buckets hold
	err = h.push("t", prompb.TimeSeries{Labels: series("h"), Histograms: []prompb.Histogram{bad}}, floats(series("ok"), float64(base), 1))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "invalid native histogram") || !strings.Contains(err.Error(), `{__name__="h"}`) {
		t.Errorf("invalid histogram: %v", err)
	}
	if got := h.query("t", 0, 0, eq(model.MetricNameLabel, "ok")); len(got) != 1 {
		t.Errorf("valid series beside an invalid histogram not stored: %v", got)
	}
	if v := testutil.ToFloat64(h.ing.metrics.ingestedSamplesFail); v != 2 {
		t.Errorf("cortex_ingester_ingested_samples_failures_total = %v, want 2", v)
	}
}

func TestConcurrentPushesAndQueries(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	const writers, rounds, perReq = 4, 30, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*2)
	for w := range writers {
		wg.Add(2)
		go func() { // writers share tenants and series: each writes its own timestamps
			defer wg.Done()
			for r := range rounds {
				var req []prompb.TimeSeries
				for s := range perReq {
					req = append(req, floats(series("c", "s", string(rune('a'+s))), float64(base+int64(r*writers+w)), 1))
				}
				if err := h.push([]string{"x", "y"}[w%2], req...); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range rounds {
				stream, err := h.conn.QueryStream(ctxFor("x"), &prompb.Query{Matchers: []*prompb.LabelMatcher{eq(model.MetricNameLabel, "c")}})
				if err != nil {
					errs <- err
					continue
				}
				for {
					if _, err := stream.Recv(); err != nil {
						if !errors.Is(err, io.EOF) {
							errs <- err
						}
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// Writers race on the same series: a later timestamp committed
		// first makes an earlier one out of order, which is a refusal, not
		// a failure.
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("concurrent call: %v", err)
		}
	}
	got := h.query("x", 0, 0, eq(model.MetricNameLabel, "c"))
	if len(got) != perReq {
		t.Fatalf("%d series, want %d", len(got), perReq)
	}
	stored := 0
	for _, s := range got {
		stored += len(s.Samples)
	}
	if stored == 0 {
		t.Error("nothing stored")
	}
	if n := testutil.ToFloat64(h.ing.metrics.memUsers); n != 2 {
		t.Errorf("cortex_ingester_memory_users = %v, want 2", n)
	}
}

func TestFlagsAndConfig(t *testing.T) {
	// The ingester's flags live beside the limits' and the ingester
	// client's in one process: none may collide.
	fs := flag.NewFlagSet("cortex", flag.ContinueOnError)
	var (
		cfg    Config
		limits validation.Limits
		cc     client.Config
	)
	cfg.RegisterFlags(fs, testLogger(t))
	cfg.TSDB.RegisterFlags(fs)
	limits.RegisterFlags(fs)
	cc.RegisterFlags(fs)
	if err := fs.Parse([]string{"-blocks-storage.tsdb.block-ranges-period=2h,12h", "-ring.store=inmemory"}); err != nil {
		t.Fatal(err)
	}
	if len(cfg.TSDB.BlockRanges) != 2 || cfg.TSDB.BlockRanges[1] != 12*time.Hour {
		t.Errorf("block ranges %v", cfg.TSDB.BlockRanges)
	}
	for name, want := range map[string]string{
		"blocks-storage.tsdb.dir":                      "./tsdb/",
		"blocks-storage.tsdb.retention-period":         "6h0m0s",
		"blocks-storage.tsdb.head-compaction-interval": "1m0s",
		"blocks-storage.tsdb.wal-compression-enabled":  "false",
		"blocks-storage.tsdb.ship-interval":            "1m0s",
		"blocks-storage.tsdb.ship-concurrency":         "10",
		"blocks-storage.tsdb.flush-blocks-on-shutdown": "false",
		"ingester.num-tokens":                          "128",
		"ingester.unregister-on-shutdown":              "true",
		"distributor.replication-factor":               "3",
		"ring.store":                                   "inmemory",
	} {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("-%s not registered", name)
			continue
		}
		if f.Value.String() != want {
			t.Errorf("-%s = %s, want %s", name, f.Value, want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	cfg.TSDB.BlockRanges = DurationList{2 * time.Hour, 3 * time.Hour}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "multiple") {
		t.Errorf("ranges not multiples: %v", err)
	}

	var fromYAML struct {
		Ranges DurationList `yaml:"block_ranges_period"`
	}
	if err := yaml.Unmarshal([]byte("block_ranges_period: [2h, 24h]"), &fromYAML); err != nil || len(fromYAML.Ranges) != 2 || fromYAML.Ranges[1] != 24*time.Hour {
		t.Errorf("YAML list: %v, %v", fromYAML.Ranges, err)
	}
	if err := yaml.Unmarshal([]byte("block_ranges_period: 2h,4h"), &fromYAML); err != nil || len(fromYAML.Ranges) != 2 || fromYAML.Ranges[1] != 4*time.Hour {
		t.Errorf("YAML string: %v, %v", fromYAML.Ranges, err)
	}
	out, err := yaml.Marshal(fromYAML)
	if err != nil || !strings.Contains(string(out), "- 2h0m0s") {
		t.Errorf("YAML out: %s, %v", out, err)
	}
}

// blockingCAS holds its blockAt-th CAS call until the call's context ends,
// as a KV store that stops answering for a while would; the calls before
// and after it go through.
type blockingCAS struct {
	kv.Client
	calls   atomic.Int32
	blockAt int32
}

func (b *blockingCAS) CAS(ctx context.Context, key string, f func(in any) (out any, retry bool, err error)) error {
	if b.calls.Add(1) == b.blockAt {
		<-ctx.Done()
		return ctx.Err()
	}
	return b.Client.CAS(ctx, key, f)
}

// TestStopWhileJoiningTheRing: a SIGTERM while the lifecycler is still
// writing its tokens stops the ingester promptly and without an error.
func TestStopWhileJoiningTheRing(t *testing.T) {
	store := &blockingCAS{Client: newKV(t), blockAt: 2} // the registration passes, the join hangs
	ing, err := New(testConfig(t, t.TempDir(), store), store, newTestLimits(t, nil).overridesFor(), testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), ing); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the lifecycler to try to join the ring", func() bool { return store.calls.Load() >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ing.StopAsync()
	if err := ing.AwaitTerminated(ctx); err != nil {
		t.Fatalf("stopping while joining the ring: %v (state %s)", err, ing.State())
	}
}
