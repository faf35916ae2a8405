package distributor

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// otlpMetrics is one resource (service "api" of namespace "shop" on
// "host-1", in cluster "c1") with a counter, a gauge of unit "1", a
// classic histogram, a summary and an exponential histogram, each with
// one data point at ts.
func otlpMetrics(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "api")
	res.PutStr("service.namespace", "shop")
	res.PutStr("service.instance.id", "host-1")
	res.PutStr("k8s.cluster.name", "c1")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	at := pcommon.NewTimestampFromTime(ts)

	m := ms.AppendEmpty()
	m.SetName("http.requests")
	m.SetDescription("Requests served.")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetTimestamp(at)
	dp.SetDoubleValue(42)
	dp.Attributes().PutStr("method", "GET")
	ex := dp.Exemplars().AppendEmpty()
	ex.SetTimestamp(at)
	ex.SetDoubleValue(1)
	ex.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})

	m = ms.AppendEmpty()
	m.SetName("cpu.utilization")
	m.SetUnit("1")
	dp = m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(at)
	dp.SetDoubleValue(0.25)

	m = ms.AppendEmpty()
	m.SetName("http.server.request.duration")
	m.SetUnit("s")
	hist := m.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hdp := hist.DataPoints().AppendEmpty()
	hdp.SetTimestamp(at)
	hdp.SetCount(6)
	hdp.SetSum(3.5)
	hdp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	hdp.BucketCounts().FromRaw([]uint64{1, 3, 2})

	m = ms.AppendEmpty()
	m.SetName("rpc.latency")
	m.SetUnit("ms")
	sdp := m.SetEmptySummary().DataPoints().AppendEmpty()
	sdp.SetTimestamp(at)
	sdp.SetCount(4)
	sdp.SetSum(100)
	q := sdp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(20)

	m = ms.AppendEmpty()
	m.SetName("queue.wait")
	m.SetUnit("s")
	eh := m.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	edp := eh.DataPoints().AppendEmpty()
	edp.SetTimestamp(at)
	edp.SetScale(0)
	edp.SetCount(5)
	edp.SetSum(7)
	edp.SetZeroCount(1)
	edp.Positive().SetOffset(0)
	edp.Positive().BucketCounts().FromRaw([]uint64{1, 3}) // (1,2]: 1, (2,4]: 3
	return md
}

// newOTLPCluster is a cluster whose distributor has the OTLP flags' defaults
// changed by cfg.
func newOTLPCluster(t *testing.T, cfg func(*Config)) (*cluster, http.Handler) {
	t.Helper()
	c := newCluster(t, clusterOpts{cfg: cfg})
	return c, tenant.HTTPMiddleware(true, c.d.OTLPHandler())
}

func otlpProto(t testing.TB, md pmetric.Metrics) []byte {
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postOTLP(h http.Handler, body []byte, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/otlp/v1/metrics", bytes.NewReader(body))
	req.Header.Set(tenant.HeaderName, testTenant)
	req.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// storedSeries lists the series the ingesters hold for the test tenant.
func (c *cluster) storedSeries() []string {
	seen := map[string]bool{}
	for _, f := range c.ingesters {
		f.mu.Lock()
		for s := range f.series[testTenant] {
			seen[s] = true
		}
		f.mu.Unlock()
	}
	var out []string
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// waitSeries waits until the series, of samples or histograms, is on all
// three ingesters: replicas beyond the quorum may still be in flight when
// the push answered.
func (c *cluster) waitSeries(series string) {
	c.t.Helper()
	testkit.EventuallyNil(c.t, 5*time.Second, fmt.Sprintf("series %s on 3 ingesters", series), func() error {
		n := 0
		for _, f := range c.ingesters {
			f.mu.Lock()
			if _, ok := f.series[testTenant][series]; ok {
				n++
			}
			f.mu.Unlock()
		}
		if n != 3 {
			return fmt.Errorf("it is on %d", n)
		}
		return nil
	})
}

func (c *cluster) histograms(series string) int {
	n := 0
	for _, f := range c.ingesters {
		f.mu.Lock()
		n = max(n, f.hists[series])
		f.mu.Unlock()
	}
	return n
}

func (c *cluster) exemplars(series string) int {
	n := 0
	for _, f := range c.ingesters {
		f.mu.Lock()
		n = max(n, f.exemplar[series])
		f.mu.Unlock()
	}
	return n
}

func (c *cluster) storedMetadata(family string) (prompb.MetricMetadata, bool) {
	for _, f := range c.ingesters {
		f.mu.Lock()
		m, ok := f.metadata[family]
		f.mu.Unlock()
		if ok {
			return m, true
		}
	}
	return prompb.MetricMetadata{}, false
}

const otlpJobInstance = `instance="host-1",job="shop/api"`

func TestOTLPTranslatesNamesAndResource(t *testing.T) {
	c, h := newOTLPCluster(t, nil)
	rec := postOTLP(h, otlpProto(t, otlpMetrics(time.Now())), nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("push: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/x-protobuf" {
		t.Errorf("Content-Type of the answer: %q", ct)
	}
	want := []string{
		`__name__="cpu_utilization_ratio",` + otlpJobInstance,
		`__name__="http_requests_total",` + otlpJobInstance + `,method="GET"`,
		`__name__="http_server_request_duration_seconds_bucket",` + otlpJobInstance + `,le="+Inf"`,
		`__name__="http_server_request_duration_seconds_bucket",` + otlpJobInstance + `,le="0.1"`,
		`__name__="http_server_request_duration_seconds_bucket",` + otlpJobInstance + `,le="1"`,
		`__name__="http_server_request_duration_seconds_count",` + otlpJobInstance,
		`__name__="http_server_request_duration_seconds_sum",` + otlpJobInstance,
		`__name__="queue_wait_seconds",` + otlpJobInstance,
		`__name__="rpc_latency_milliseconds",` + otlpJobInstance + `,quantile="0.5"`,
		`__name__="rpc_latency_milliseconds_count",` + otlpJobInstance,
		`__name__="rpc_latency_milliseconds_sum",` + otlpJobInstance,
		`__name__="target_info",` + otlpJobInstance + `,k8s_cluster_name="c1"`,
	}
	for _, s := range want {
		c.waitSeries(s)
	}
	if got := c.storedSeries(); !slices.Equal(got, want) {
		t.Errorf("series stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := c.exemplars(`__name__="http_requests_total",` + otlpJobInstance + `,method="GET"`); n != 1 {
		t.Errorf("http_requests_total has %d exemplars, want 1", n)
	}
	if n := c.histograms(`__name__="queue_wait_seconds",` + otlpJobInstance); n != 1 {
		t.Errorf("queue_wait_seconds has %d native histograms, want 1", n)
	}
	m, ok := c.storedMetadata("http_requests_total")
	if !ok || m.Type != prompb.MetricMetadata_COUNTER || m.Help != "Requests served." {
		t.Errorf("metadata of http_requests_total: %+v (found %v)", m, ok)
	}
	if got := c.metric("cortex_distributor_received_samples_total", "user", testTenant); got != 12 {
		t.Errorf("received samples: %v, want 12 (11 floats and 1 native histogram)", got)
	}
}

func TestOTLPNativeHistogramsAndExemplars(t *testing.T) {
	c, _ := newOTLPCluster(t, nil)
	ts := time.UnixMilli(1_700_000_000_000)
	or := &otlpRequest{}
	or.raw.Write(otlpProto(t, otlpMetrics(ts)))
	if err := c.d.translateOTLP(context.Background(), testTenant, otlpContentTypeProtobuf, or); err != nil {
		t.Fatal(err)
	}
	var got *prompb.TimeSeries
	for i := range or.wr.Timeseries {
		if or.wr.Timeseries[i].Labels[0].Value == "queue_wait_seconds" {
			got = &or.wr.Timeseries[i]
		}
	}
	for i := range or.wr.Timeseries {
		ts := &or.wr.Timeseries[i]
		if ts.Labels[0].Value != "http_requests_total" {
			continue
		}
		if len(ts.Exemplars) != 1 || seriesString(ts.Exemplars[0].Labels) != `trace_id="0102030405060708090a0b0c0d0e0f10"` || ts.Exemplars[0].Value != 1 || ts.Exemplars[0].Timestamp != ts.Samples[0].Timestamp {
			t.Errorf("exemplars of http_requests_total: %+v", ts.Exemplars)
		}
	}
	if got == nil || len(got.Histograms) != 1 || len(got.Samples) != 0 {
		t.Fatalf("queue_wait_seconds: %+v", got)
	}
	h := got.Histograms[0].ToIntHistogram()
	if h.Schema != 0 || h.Count != 5 || h.Sum != 7 || h.ZeroCount != 1 || got.Histograms[0].Timestamp != ts.UnixMilli() {
		t.Errorf("native histogram: %v at %d", h, got.Histograms[0].Timestamp)
	}
	// OTLP's bucket at offset 0 is (1,2]: Prometheus' bucket index 1.
	var buckets []string
	for it := h.PositiveBucketIterator(); it.Next(); {
		b := it.At()
		buckets = append(buckets, b.String())
	}
	if want := []string{"(1,2]:1", "(2,4]:3"}; !slices.Equal(buckets, want) {
		t.Errorf("buckets %v, want %v", buckets, want)
	}
	if err := h.Validate(); err != nil {
		t.Errorf("invalid native histogram: %v", err)
	}
}

func TestOTLPFlags(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         func(*Config)
		counterAttr string   // an attribute of the counter's data point, of value "from-data-point"
		want        []string // among the stored series
		wantNot     []string
	}{
		{
			name:    "promote-resource-attributes",
			cfg:     func(c *Config) { c.PromoteResourceAttributes = []string{"k8s.cluster.name"} },
			want:    []string{`__name__="cpu_utilization_ratio",` + otlpJobInstance + `,k8s_cluster_name="c1"`},
			wantNot: []string{`__name__="cpu_utilization_ratio",` + otlpJobInstance},
		},
		{
			// The counter's own k8s.cluster.name gives way to the resource's.
			name:        "convert-all-attributes",
			cfg:         func(c *Config) { c.OTLP.ConvertAllAttributes = true },
			counterAttr: "k8s.cluster.name",
			want:        []string{`__name__="http_requests_total",` + otlpJobInstance + `,k8s_cluster_name="c1",method="GET",service_instance_id="host-1",service_name="api",service_namespace="shop"`},
			wantNot: []string{
				`__name__="http_requests_total",` + otlpJobInstance + `,k8s_cluster_name="from-data-point",method="GET",service_instance_id="host-1",service_name="api",service_namespace="shop"`,
			},
		},
		{
			name:    "disable-target-info",
			cfg:     func(c *Config) { c.OTLP.DisableTargetInfo = true },
			want:    []string{`__name__="cpu_utilization_ratio",` + otlpJobInstance},
			wantNot: []string{`__name__="target_info",` + otlpJobInstance + `,k8s_cluster_name="c1"`},
		},
		{
			name: "add-metric-suffixes=false",
			cfg:  func(c *Config) { c.OTLP.AddMetricSuffixes = false },
			want: []string{
				`__name__="cpu_utilization",` + otlpJobInstance,
				`__name__="http_requests",` + otlpJobInstance + `,method="GET"`,
				`__name__="http_server_request_duration_bucket",` + otlpJobInstance + `,le="1"`,
				`__name__="queue_wait",` + otlpJobInstance,
			},
			wantNot: []string{`__name__="cpu_utilization_ratio",` + otlpJobInstance},
		},
		{
			name: "enable-type-and-unit-labels",
			cfg:  func(c *Config) { c.OTLP.EnableTypeAndUnitLabels = true },
			want: []string{
				`__name__="http_requests_total",__type__="counter",` + otlpJobInstance + `,method="GET"`,
				`__name__="queue_wait_seconds",__type__="histogram",__unit__="seconds",` + otlpJobInstance,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, h := newOTLPCluster(t, tc.cfg)
			md := otlpMetrics(time.Now())
			if tc.counterAttr != "" {
				counter := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints().At(0)
				counter.Attributes().PutStr(tc.counterAttr, "from-data-point")
			}
			rec := postOTLP(h, otlpProto(t, md), nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("push: %d %s", rec.Code, rec.Body)
			}
			for _, s := range tc.want {
				c.waitSeries(s)
			}
			for _, s := range tc.wantNot {
				if slices.Contains(c.storedSeries(), s) {
					t.Errorf("%s is stored", s)
				}
			}
		})
	}
}

func TestOTLPConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"-distributor.otlp-max-recv-msg-size=0"}, "-distributor.otlp-max-recv-msg-size must be between 1 and 1073741824 (1 GiB), got 0"},
		{[]string{"-distributor.otlp.convert-all-attributes", "-distributor.promote-resource-attributes=k8s.pod.name"}, "-distributor.promote-resource-attributes (k8s.pod.name) cannot be used with -distributor.otlp.convert-all-attributes=true"},
		{[]string{"-distributor.promote-resource-attributes=a,,b"}, `-distributor.promote-resource-attributes "a,,b" has an empty attribute name`},
	} {
		var cfg Config
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.err)
		}
	}
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	if cfg.OTLPMaxRecvMsgSize != 100<<20 || !cfg.OTLP.AddMetricSuffixes || cfg.OTLP.ConvertAllAttributes || cfg.OTLP.DisableTargetInfo || cfg.OTLP.AllowDeltaTemporality || cfg.OTLP.EnableTypeAndUnitLabels {
		t.Errorf("defaults: %+v", cfg)
	}
}

// deltaMetrics is a counter of delta temporality beside a gauge.
func deltaMetrics(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "api")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	m := ms.AppendEmpty()
	m.SetName("jobs.done")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetIntValue(3)
	m = ms.AppendEmpty()
	m.SetName("queue.size")
	dp = m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetIntValue(7)
	return md
}

func TestOTLPDeltaTemporality(t *testing.T) {
	c, h := newOTLPCluster(t, nil)
	rec := postOTLP(h, otlpProto(t, deltaMetrics(time.Now())), nil)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("delta counter: %d %s, want 400", rec.Code, rec.Body)
	}
	want := `translating OTLP metrics: invalid temporality and type combination for metric "jobs.done"; delta temporality is accepted only with -distributor.otlp.allow-delta-temporality=true`
	if got := strings.TrimSpace(rec.Body.String()); got != want {
		t.Errorf("answer:\n%s\nwant:\n%s", got, want)
	}
	if got := c.storedSeries(); len(got) != 0 {
		t.Errorf("a refused request wrote %v", got)
	}

	c, h = newOTLPCluster(t, func(c *Config) { c.OTLP.AllowDeltaTemporality = true })
	if rec := postOTLP(h, otlpProto(t, deltaMetrics(time.Now())), nil); rec.Code != http.StatusOK {
		t.Fatalf("delta counter with -distributor.otlp.allow-delta-temporality: %d %s", rec.Code, rec.Body)
	}
	c.waitStored(`__name__="jobs_done_total",job="api"`, 3)
	c.waitStored(`__name__="queue_size",job="api"`, 3)
}

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOTLPEncodings(t *testing.T) {
	c, h := newOTLPCluster(t, nil)
	md := otlpMetrics(time.Now())
	js, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		header map[string]string
		answer string
	}{
		{"protobuf+gzip", gzipped(t, otlpProto(t, md)), map[string]string{"Content-Encoding": "gzip"}, ""},
		{"json", js, map[string]string{"Content-Type": "application/json"}, "{}"},
		{"json+gzip", gzipped(t, js), map[string]string{"Content-Type": "application/json; charset=utf-8", "Content-Encoding": "gzip"}, "{}"},
	} {
		rec := postOTLP(h, tc.body, tc.header)
		if rec.Code != http.StatusOK || rec.Body.String() != tc.answer {
			t.Errorf("%s: %d %q, want 200 %q", tc.name, rec.Code, rec.Body, tc.answer)
		}
	}
	// One sample per request on each of the three replicas.
	series := `__name__="http_requests_total",` + otlpJobInstance + `,method="GET"`
	testkit.EventuallyNil(t, 5*time.Second, "3 samples of http_requests_total on 3 ingesters", func() error {
		if _, samples := c.stored(series); !slices.Equal(samples, []int{3, 3, 3}) {
			return fmt.Errorf("samples per ingester: %v", samples)
		}
		return nil
	})
}

func TestOTLPRefusesBadRequests(t *testing.T) {
	c, h := newOTLPCluster(t, func(c *Config) { c.OTLPMaxRecvMsgSize = 4096 })
	body := otlpProto(t, otlpMetrics(time.Now()))
	// A gzip body of a few hundred bytes that inflates to 1 MiB.
	bomb := gzipped(t, make([]byte, 1<<20))
	for _, tc := range []struct {
		name   string
		body   []byte
		header map[string]string
		code   int
		answer string
	}{
		{"too large", make([]byte, 5000), nil, http.StatusRequestEntityTooLarge, "request body (5000 bytes) is larger than -distributor.otlp-max-recv-msg-size (4096 bytes)"},
		{"gzip bomb", bomb, map[string]string{"Content-Encoding": "gzip"}, http.StatusRequestEntityTooLarge, "decompressed request body is larger than -distributor.otlp-max-recv-msg-size (4096 bytes)"},
		{"not gzip", body, map[string]string{"Content-Encoding": "gzip"}, http.StatusBadRequest, "decompressing gzip request body: gzip: invalid header"},
		{"snappy", body, map[string]string{"Content-Encoding": "snappy"}, http.StatusUnsupportedMediaType, `unsupported Content-Encoding "snappy": OTLP bodies must be gzip-compressed or uncompressed`},
		{"no content type", body, map[string]string{"Content-Type": ""}, http.StatusUnsupportedMediaType, "missing Content-Type: OTLP bodies are application/x-protobuf or application/json"},
		{"text", body, map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType, `unsupported Content-Type "text/plain": OTLP bodies are application/x-protobuf or application/json`},
		{"bad protobuf", []byte{0x0a, 0xff}, nil, http.StatusBadRequest, "decoding OTLP application/x-protobuf request: "},
		{"no tenant", body, map[string]string{tenant.HeaderName: ""}, http.StatusUnauthorized, "no org id"},
	} {
		rec := postOTLP(h, tc.body, tc.header)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.answer) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, rec.Code, rec.Body, tc.code, tc.answer)
		}
	}
	if got := c.storedSeries(); len(got) != 0 {
		t.Errorf("refused requests wrote %v", got)
	}
}

// TestOTLPValidation shows that OTLP goes through remote write's
// validation: an invalid series is refused, naming it, and the rest is
// written.
func TestOTLPValidation(t *testing.T) {
	c, h := newOTLPCluster(t, nil)
	md := otlpMetrics(time.Now())
	dp := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(1).Gauge().DataPoints().At(0)
	dp.Attributes().PutStr("path", strings.Repeat("x", 3000))
	rec := postOTLP(h, otlpProto(t, md), nil)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "cpu_utilization_ratio") || !strings.Contains(rec.Body.String(), "label value too long") {
		t.Errorf("series with a long label value: %d %q", rec.Code, rec.Body)
	}
	c.waitStored(`__name__="http_requests_total",`+otlpJobInstance+`,method="GET"`, 3)
	if got := c.metric("cortex_discarded_samples_total", "reason", "label_value_too_long", "user", testTenant); got != 1 {
		t.Errorf("discarded samples: %v, want 1", got)
	}
}

// TestOTLPTargetInfoExpansionIsBounded: data points years apart would
// give target_info a sample every 2.5 minutes between them.
func TestOTLPTargetInfoExpansionIsBounded(t *testing.T) {
	c, h := newOTLPCluster(t, nil)
	md := otlpMetrics(time.Now())
	dp := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(1).Gauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now().AddDate(-10, 0, 0)))
	rec := postOTLP(h, otlpProto(t, md), nil)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "the OTLP request translates to more than") {
		t.Errorf("data points 10 years apart: %d %q", rec.Code, rec.Body)
	}
	if got := c.storedSeries(); len(got) != 0 {
		t.Errorf("refused request wrote %v", got)
	}
}

func TestOTLPConfigYAML(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	doc := `
otlp_max_recv_msg_size: 1024
promote_resource_attributes: [k8s.cluster.name, k8s.pod.name]
otlp:
  disable_target_info: true
  add_metric_suffixes: false
  allow_delta_temporality: true
  enable_type_and_unit_labels: true
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := OTLPConfig{DisableTargetInfo: true, AllowDeltaTemporality: true, EnableTypeAndUnitLabels: true}
	if cfg.OTLPMaxRecvMsgSize != 1024 || !slices.Equal(cfg.PromoteResourceAttributes, []string{"k8s.cluster.name", "k8s.pod.name"}) || cfg.OTLP != want {
		t.Errorf("decoded %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

// TestOTLPRateLimit: OTLP counts against the tenant's ingestion rate as
// remote write does, and a request over it gets 429 with Retry-After.
func TestOTLPRateLimit(t *testing.T) {
	c := newCluster(t, clusterOpts{limits: func(l *validation.Limits) {
		l.IngestionRate = 10
		l.IngestionBurstSize = 20
	}})
	h := tenant.HTTPMiddleware(true, c.d.OTLPHandler())
	body := otlpProto(t, otlpMetrics(time.Now()))
	if rec := postOTLP(h, body, nil); rec.Code != http.StatusOK {
		t.Fatalf("first request: %d %s", rec.Code, rec.Body)
	}
	rec := postOTLP(h, body, nil)
	// 12 samples (11 floats and a native histogram), 1 exemplar and the
	// metadata of 6 metric families.
	want := "ingestion rate limit (10) exceeded while adding 12 samples and 6 metadata"
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("second request: %d %q, want 429 %q", rec.Code, rec.Body, want)
	}
	if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After = %q, want whole seconds >= 1", rec.Header().Get("Retry-After"))
	}
	if got := c.metric("cortex_discarded_samples_total", "reason", "rate_limited", "user", testTenant); got != 12 {
		t.Errorf("rate_limited discards = %v, want 12", got)
	}
}
