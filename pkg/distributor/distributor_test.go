package distributor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/remotewrite/rwtest"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

func manySeries(n int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	now := nowMs()
	for i := range n {
		req.Timeseries = append(req.Timeseries, series([]int64{now}, "__name__", "test_metric", "instance", fmt.Sprintf("host-%d", i), "job", "node"))
	}
	return req
}

func TestPushReplicatesEverySeriesToThreeIngesters(t *testing.T) {
	c := newCluster(t, clusterOpts{ingesters: 3, rf: 3})
	req := manySeries(50)
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", r.StatusCode, body(t, r))
	}
	for _, ts := range manySeries(50).Timeseries {
		c.waitStored(seriesString(ts.Labels), 3)
	}
	for _, f := range c.ingesters {
		c.waitMetric(1, "cortex_distributor_ingester_appends_total", "ingester", f.addr, "type", "samples")
	}
}

func TestPushShardsAcrossTheRing(t *testing.T) {
	c := newCluster(t, clusterOpts{ingesters: 6, rf: 3})
	if r := c.push(manySeries(300)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", r.StatusCode, body(t, r))
	}
	for _, ts := range manySeries(300).Timeseries {
		c.waitStored(seriesString(ts.Labels), 3)
	}
	total := 0
	for _, f := range c.ingesters {
		n := f.seriesCount(testTenant)
		if n == 0 || n == 300 {
			t.Errorf("%s holds %d of 300 series: not sharded", f.id, n)
		}
		total += n
	}
	if total != 900 {
		t.Errorf("replicas stored = %d, want 900", total)
	}
}

func TestPushShardByMetricName(t *testing.T) {
	c := newCluster(t, clusterOpts{ingesters: 6, rf: 3, cfg: func(cfg *Config) { cfg.ShardByAllLabels = false }})
	if r := c.push(manySeries(100)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", r.StatusCode, body(t, r))
	}
	for _, ts := range manySeries(100).Timeseries {
		c.waitStored(seriesString(ts.Labels), 3)
	}
	holders := 0
	for _, f := range c.ingesters {
		switch f.seriesCount(testTenant) {
		case 100:
			holders++
		case 0:
		default:
			t.Errorf("%s holds part of one metric's series", f.id)
		}
	}
	if holders != 3 {
		t.Errorf("%d ingesters hold the metric, want 3", holders)
	}
}

func TestPushQuorum(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.ingesters[0].fail.Store(uint32(codes.Unavailable))
	c.ingesters[0].msg = "ingester is shutting down"
	req := manySeries(10)
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("one ingester down: got %d %s, want 204 (quorum 2 of 3)", r.StatusCode, body(t, r))
	}
	for _, ts := range manySeries(10).Timeseries {
		c.waitStored(seriesString(ts.Labels), 2)
	}

	c.ingesters[1].fail.Store(uint32(codes.Unavailable))
	c.ingesters[1].msg = "ingester is shutting down"
	r := c.push(manySeries(10))
	b := body(t, r)
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("two ingesters down: got %d %s, want 503", r.StatusCode, b)
	}
	for _, want := range []string{"quorum 2", "2 failed", "ingester is shutting down", c.ingesters[0].addr} {
		if !strings.Contains(b, want) {
			t.Errorf("body %q does not mention %q", b, want)
		}
	}
	c.waitMetric(2, "cortex_distributor_ingester_append_failures_total", "ingester", c.ingesters[0].addr, "status", "5xx")
}

// A push whose client closes the request before a quorum answered names
// the client, not -distributor.remote-timeout, which did not expire.
func TestPushClosedByClient(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.RemoteTimeout = time.Minute }})
	for _, f := range c.ingesters[:2] {
		f.delay.Store(int64(time.Minute))
	}
	// The HTTP server cancels a request's context when its client goes.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(encodeV1(t, manySeries(3)))).WithContext(ctx)
	req.Header.Set(tenant.HeaderName, testTenant)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	rec := httptest.NewRecorder()
	c.handler.ServeHTTP(rec, req)
	if b := rec.Body.String(); rec.Code != StatusClientClosedRequest || !strings.Contains(b, "before the client closed the request") || strings.Contains(b, "remote-timeout") {
		t.Fatalf("push closed by its client: %d %q, want 499 saying the client closed it", rec.Code, b)
	}
}

func TestPushTimeout(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.RemoteTimeout = 200 * time.Millisecond }})
	for _, f := range c.ingesters[:2] {
		f.delay.Store(int64(time.Minute))
	}
	start := time.Now()
	r := c.push(manySeries(3))
	b := body(t, r)
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b, "-distributor.remote-timeout (200ms)") {
		t.Fatalf("got %d %q, want 503 naming the timeout", r.StatusCode, b)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("push took %s with a 200ms timeout", took)
	}
}

func TestPushIngesterRefusesData(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	for _, f := range c.ingesters {
		f.msg = `out of order sample for series {__name__="test_metric"}`
		f.fail.Store(uint32(codes.InvalidArgument))
	}
	r := c.push(manySeries(3))
	b := body(t, r)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(b, "out of order sample for series") {
		t.Fatalf("got %d %q, want 400 with the ingester's message", r.StatusCode, b)
	}
	c.waitMetric(3, "cortex_distributor_ingester_append_failures_total", "status", "4xx")

	// A single replica refusing is outvoted by the quorum.
	c.ingesters[1].fail.Store(uint32(codes.OK))
	c.ingesters[2].fail.Store(uint32(codes.OK))
	if r := c.push(manySeries(3)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("one refusing replica: got %d %s, want 204", r.StatusCode, body(t, r))
	}
}

func TestValidation(t *testing.T) {
	now := nowMs()
	long := strings.Repeat("x", 3000)
	good := series([]int64{now}, "__name__", "good", "job", "j")
	for _, tc := range []struct {
		name      string
		limits    func(*validation.Limits)
		bad       prompb.TimeSeries
		meta      []prompb.MetricMetadata
		want      string
		metric    string // discarded counter
		reason    string
		discarded float64
	}{
		{
			name: "label value too long",
			bad:  series([]int64{now, now}, "__name__", "foo", "bar", long),
			want: `label value too long for metric (actual: 3000, limit: 2048) metric: "foo{bar=\"xxx`, metric: "cortex_discarded_samples_total", reason: "label_value_too_long", discarded: 2,
		},
		{
			name:   "label name too long",
			limits: func(l *validation.Limits) { l.MaxLabelNameLength = 10 },
			bad:    series([]int64{now}, "__name__", "foo", "a_long_label_name", "v"),
			want:   `label name too long (actual: 17, limit: 10) metric: "foo{a_long_label_name=\"v\"}" label name: "a_long_label_name"`, metric: "cortex_discarded_samples_total", reason: "label_name_too_long", discarded: 1,
		},
		{
			name:   "too many labels",
			limits: func(l *validation.Limits) { l.MaxLabelNamesPerSeries = 3 },
			bad:    series([]int64{now}, "__name__", "foo", "a", "1", "b", "2", "c", "3"),
			want:   `series has too many labels (actual: 4, limit: 3) series: "foo{a=\"1\", b=\"2\", c=\"3\"}"`, metric: "cortex_discarded_samples_total", reason: "max_label_names_per_series", discarded: 1,
		},
		{
			name: "missing metric name",
			bad:  series([]int64{now}, "job", "j"),
			want: `sample missing metric name, series: "{job=\"j\"}"`, metric: "cortex_discarded_samples_total", reason: "missing_metric_name", discarded: 1,
		},
		{
			name: "invalid metric name",
			bad:  series([]int64{now}, "__name__", "bad\xff"),
			want: `sample invalid metric name (not valid UTF-8): "bad\xff"`, metric: "cortex_discarded_samples_total", reason: "metric_name_invalid", discarded: 1,
		},
		{
			name: "invalid label name",
			bad:  series([]int64{now}, "__name__", "foo", "bad\xffname", "v"),
			want: `sample invalid label: "bad\xffname"`, metric: "cortex_discarded_samples_total", reason: "label_invalid", discarded: 1,
		},
		{
			name: "invalid label value",
			bad:  series([]int64{now}, "__name__", "foo", "l", "\xff"),
			want: `sample invalid label value (not valid UTF-8) for label "l"`, metric: "cortex_discarded_samples_total", reason: "label_invalid", discarded: 1,
		},
		{
			name: "duplicate label names",
			bad:  series([]int64{now}, "__name__", "foo", "job", "a", "job", "b"),
			want: `duplicate label name: "job" metric "foo{job=\"a\", job=\"b\"}"`, metric: "cortex_discarded_samples_total", reason: "duplicate_label_names", discarded: 1,
		},
		{
			name: "too far in the future",
			bad:  series([]int64{now + time.Hour.Milliseconds()}, "__name__", "foo"),
			want: fmt.Sprintf(`timestamp too new: %d metric: "foo" (samples more than 10m in the future are rejected)`, now+time.Hour.Milliseconds()), metric: "cortex_discarded_samples_total", reason: "too_far_in_future", discarded: 1,
		},
		{
			name: "too old",
			limits: func(l *validation.Limits) {
				l.RejectOldSamples = true
				l.RejectOldSamplesMaxAge = model.Duration(time.Hour)
			},
			bad:  series([]int64{now - 2*time.Hour.Milliseconds()}, "__name__", "foo"),
			want: fmt.Sprintf(`timestamp too old: %d metric: "foo" (samples older than 1h are rejected)`, now-2*time.Hour.Milliseconds()), metric: "cortex_discarded_samples_total", reason: "greater_than_max_sample_age", discarded: 1,
		},
		{
			name: "exemplar without timestamp",
			bad: prompb.TimeSeries{
				Labels:    []prompb.Label{{Name: "__name__", Value: "foo"}},
				Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "1"}}, Value: 1}},
			},
			want: `exemplar missing timestamp, timestamp: 0 series: "foo" labels: "{trace_id=\"1\"}"`, metric: "cortex_discarded_exemplars_total", reason: "exemplar_timestamp_invalid", discarded: 1,
		},
		{
			name:   "metadata too long",
			limits: func(l *validation.Limits) { l.MaxMetadataLength = 10 },
			meta:   []prompb.MetricMetadata{{MetricFamilyName: "foo", Help: "a help text longer than ten"}},
			want:   `metadata 'HELP' value too long (actual: 27, limit: 10): "a help text longer than ten" metric "foo"`, metric: "cortex_discarded_metadata_total", reason: "help_too_long", discarded: 1,
		},
		{
			name: "metadata without name",
			meta: []prompb.MetricMetadata{{Help: "h"}},
			want: `metadata missing metric name`, metric: "cortex_discarded_metadata_total", reason: "missing_metric_name", discarded: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{limits: tc.limits})
			req := &prompb.WriteRequest{Metadata: tc.meta}
			if tc.bad.Labels != nil {
				req.Timeseries = append(req.Timeseries, tc.bad)
			}
			req.Timeseries = append(req.Timeseries, good)
			r := c.push(req)
			b := body(t, r)
			if r.StatusCode != http.StatusBadRequest {
				t.Fatalf("got %d %q, want 400", r.StatusCode, b)
			}
			if !strings.Contains(b, tc.want) {
				t.Errorf("body %q\ndoes not contain %q", b, tc.want)
			}
			if got := c.metric(tc.metric, "reason", tc.reason, "user", testTenant); got != tc.discarded {
				t.Errorf("%s{reason=%q} = %v, want %v", tc.metric, tc.reason, got, tc.discarded)
			}
			// The valid part of the request is still written.
			c.waitStored(seriesString(good.Labels), 3)
		})
	}
}

func TestValidationNormalizesLabels(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	now := nowMs()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series([]int64{now}, "job", "j", "__name__", "unsorted", "empty", "", "a", "1"),
	}}
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("got %d %s", r.StatusCode, body(t, r))
	}
	// Sorted, and the empty label gone: the same series as written sorted.
	c.waitStored(`__name__="unsorted",a="1",job="j"`, 3)
}

func TestValidationKeepsGoodSamplesOfASeries(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	now := nowMs()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series([]int64{now - 2, now + time.Hour.Milliseconds(), now}, "__name__", "mixed"),
	}}
	r := c.push(req)
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("got %d, want 400", r.StatusCode)
	}
	c.waitStored(`__name__="mixed"`, 3)
	if _, samples := c.stored(`__name__="mixed"`); samples[0] != 2 {
		t.Errorf("stored %v samples, want the 2 in range", samples)
	}
	if got := c.metric("cortex_distributor_received_samples_total", "user", testTenant); got != 2 {
		t.Errorf("received samples = %v, want 2", got)
	}
	if got := c.metric("cortex_distributor_samples_in_total", "user", testTenant); got != 3 {
		t.Errorf("samples in = %v, want 3", got)
	}
}

func TestRateLimit(t *testing.T) {
	var overrides atomic.Pointer[map[string]*validation.Limits]
	c := newCluster(t, clusterOpts{
		limits: func(l *validation.Limits) {
			l.IngestionRate = 10
			l.IngestionBurstSize = 20
		},
		overrides: func() map[string]*validation.Limits {
			if m := overrides.Load(); m != nil {
				return *m
			}
			return nil
		},
	})

	if r := c.push(manySeries(15)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("first push: %d %s", r.StatusCode, body(t, r))
	}
	second := manySeries(15)
	for i := range second.Timeseries {
		second.Timeseries[i].Labels[0].Value = "second_metric"
	}
	r := c.push(second)
	b := body(t, r)
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second push: got %d %q, want 429", r.StatusCode, b)
	}
	if want := "ingestion rate limit (10) exceeded while adding 15 samples and 0 metadata"; !strings.Contains(b, want) {
		t.Errorf("body %q does not contain %q", b, want)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After = %q, want whole seconds >= 1", r.Header.Get("Retry-After"))
	}
	for _, f := range c.ingesters {
		if n := f.seriesCount(testTenant); n > 15 {
			t.Errorf("%s holds %d series: the limited request was stored", f.id, n)
		}
	}
	if got := c.metric("cortex_discarded_samples_total", "reason", "rate_limited", "user", testTenant); got != 15 {
		t.Errorf("rate_limited discards = %v, want 15", got)
	}

	// A runtime override raising the tenant's limit applies at once.
	l := defaultLimits()
	l.IngestionRate, l.IngestionBurstSize = 1000, 1000
	overrides.Store(&map[string]*validation.Limits{testTenant: &l})
	if r := c.push(second); r.StatusCode != http.StatusNoContent {
		t.Fatalf("after raising the limit: %d %s", r.StatusCode, body(t, r))
	}
}

func TestRateLimitLargerThanBurst(t *testing.T) {
	c := newCluster(t, clusterOpts{limits: func(l *validation.Limits) {
		l.IngestionRate = 5
		l.IngestionBurstSize = 10
	}})
	r := c.push(manySeries(11))
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d (Retry-After %q), want 429 with Retry-After", r.StatusCode, r.Header.Get("Retry-After"))
	}
}

func TestPushHTTPErrors(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MaxRecvMsgSize = 4096 }})
	valid := encodeV1(t, manySeries(2))
	big := manySeries(1)
	big.Timeseries[0].Labels[1].Value = strings.Repeat("a", 8000) // compresses to well under 4 KiB
	for _, tc := range []struct {
		name   string
		body   []byte
		header map[string]string
		code   int
		want   string
	}{
		{"text content type", valid, map[string]string{"Content-Type": "text/plain"}, 415, `unsupported Content-Type "text/plain"`},
		{"unknown proto", valid, map[string]string{"Content-Type": "application/x-protobuf;proto=foo.Bar"}, 415, "proto must be"},
		{"gzip", valid, map[string]string{"Content-Encoding": "gzip"}, 415, `unsupported Content-Encoding "gzip"`},
		{"no content type or encoding", valid, map[string]string{"Content-Type": "", "Content-Encoding": ""}, 204, ""},
		{"v1 named", valid, map[string]string{"Content-Type": "application/x-protobuf; proto=prometheus.WriteRequest"}, 204, ""},
		{"too large", make([]byte, 5000), nil, 413, "request body (5000 bytes) is larger than -distributor.max-recv-msg-size (4096 bytes)"},
		{"too large decompressed", encodeV1(t, big), nil, 413, "decompressed request body"},
		{"not snappy", []byte("hello, this is not snappy"), nil, 400, "decompressing snappy request body"},
		{"not protobuf", snappy.Encode(nil, []byte{0x0a, 0x10, 0x00}), nil, 400, "decoding remote write 1.0 request: unexpected EOF"},
		{"not protobuf v2", snappy.Encode(nil, []byte{0x22, 0x10, 0x00}), map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}, 400, "decoding remote write 2.0 request: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.pushRaw(tc.body, tc.header)
			b := body(t, r)
			if r.StatusCode != tc.code || !strings.Contains(b, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", r.StatusCode, b, tc.code, tc.want)
			}
		})
	}

	req := httptest.NewRequest(http.MethodGet, "/api/v1/push", nil)
	req.Header.Set(tenant.HeaderName, testTenant)
	rec := httptest.NewRecorder()
	c.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", rec.Code)
	}
	// Without the tenant middleware, a request without a tenant is refused.
	rec = httptest.NewRecorder()
	c.d.PushHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/push", strings.NewReader("")))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("no tenant: %d, want 401", rec.Code)
	}
}

func TestPushV2(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	r := c.pushV2(rwtest.V2Request())
	if r.StatusCode != http.StatusNoContent {
		t.Fatalf("got %d %s", r.StatusCode, body(t, r))
	}
	for h, want := range map[string]string{headerSamplesWritten: "3", headerHistogramsWritten: "2", headerExemplarsWritten: "1"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	c.waitStored(`__name__="http_requests_total",job="api"`, 3)
	c.waitStored(`__name__="rpc_seconds_bucket",le="1"`, 3)
	f := c.ingesters[0]
	f.mu.Lock()
	hists, exemplars := f.hists[`__name__="rpc_seconds",job="api"`], f.exemplar[`__name__="http_requests_total",job="api"`]
	md := f.metadata["rpc_seconds"]
	f.mu.Unlock()
	if hists != 2 || exemplars != 1 {
		t.Errorf("ingester got %d histograms and %d exemplars, want 2 and 1", hists, exemplars)
	}
	if md.Type != prompb.MetricMetadata_HISTOGRAM || md.Help != "RPC latency." {
		t.Errorf("metadata of rpc_seconds = %+v", md)
	}

	// A partially bad request reports what was written.
	req := rwtest.V2Request()
	req.Timeseries[0].LabelsRefs = append(req.Timeseries[0].LabelsRefs, 9999, 0)
	r = c.pushV2(req)
	b := body(t, r)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(b, "outside of symbols table") {
		t.Fatalf("got %d %q, want 400 naming the bad references", r.StatusCode, b)
	}
	if got := r.Header.Get(headerSamplesWritten); got != "1" {
		t.Errorf("samples written = %q, want 1", got)
	}

	// Nothing is written when the ingesters fail.
	c.ingesters[0].fail.Store(uint32(codes.Unavailable))
	c.ingesters[1].fail.Store(uint32(codes.Unavailable))
	r = c.pushV2(rwtest.V2Request())
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get(headerSamplesWritten) != "0" {
		t.Fatalf("got %d with %s %q, want 503 with 0", r.StatusCode, headerSamplesWritten, r.Header.Get(headerSamplesWritten))
	}
}

func TestPushAPIWaitsForEveryReplica(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	ctx := tenant.Inject(context.Background(), testTenant)
	req := manySeries(5)
	if err := c.d.Push(ctx, req); err != nil {
		t.Fatal(err)
	}
	// No waiting: Push returned after the last ingester call.
	for _, ts := range manySeries(5).Timeseries {
		if n, _ := c.stored(seriesString(ts.Labels)); n != 3 {
			t.Fatalf("series on %d ingesters after Push, want 3", n)
		}
	}
	if err := c.d.Push(context.Background(), req); err == nil {
		t.Fatal("Push without a tenant succeeded")
	}
}

func TestMetrics(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	req := rwtest.V1Request()
	now := nowMs()
	for i := range req.Timeseries {
		for j := range req.Timeseries[i].Samples {
			req.Timeseries[i].Samples[j].Timestamp = now - int64(j)
		}
	}
	if r := c.push(req); r.StatusCode != http.StatusNoContent {
		t.Fatalf("got %d %s", r.StatusCode, body(t, r))
	}
	for name, want := range map[string]float64{
		"cortex_distributor_received_samples_total":   4, // 2 samples + 2 histograms
		"cortex_distributor_samples_in_total":         4,
		"cortex_distributor_received_exemplars_total": 1,
		"cortex_distributor_received_metadata_total":  1,
		"cortex_distributor_metadata_in_total":        1,
	} {
		if got := c.metric(name, "user", testTenant); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	c.waitMetric(3, "cortex_distributor_ingester_appends_total", "type", "metadata")
	for _, f := range c.ingesters {
		f.mu.Lock()
		md := f.metadata["up"]
		f.mu.Unlock()
		if md.Help != "Up." || md.Type != prompb.MetricMetadata_COUNTER {
			t.Errorf("%s has metadata %+v for up", f.id, md)
		}
	}
	if got := c.metric("cortex_distributor_latest_seen_sample_timestamp_seconds", "user", testTenant); got != float64(now)/1000 {
		t.Errorf("latest seen = %v, want %v", got, float64(now)/1000)
	}

	c.d.evictIdle(time.Now().Add(2 * tenantIdleTimeout))
	if ids := c.d.seenTenants(); len(ids) != 0 {
		t.Errorf("tenants after eviction: %v", ids)
	}
	if got := c.metric("cortex_distributor_received_samples_total", "user", testTenant); got != 0 {
		t.Errorf("received samples of an evicted tenant still exported: %v", got)
	}
}

func TestAllUserStats(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	for _, id := range []string{"small", "big"} {
		ctx := tenant.Inject(context.Background(), id)
		if err := c.d.Push(ctx, manySeries(1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range c.ingesters {
		f.mu.Lock()
		f.stats["big"] = &client.UserStatsResponse{NumSeries: 100, IngestionRate: 10, ApiIngestionRate: 10}
		f.stats["small"] = &client.UserStatsResponse{NumSeries: 1, IngestionRate: 0.5, ApiIngestionRate: 0.5}
		f.mu.Unlock()
	}

	req := httptest.NewRequest(http.MethodGet, "/distributor/all_user_stats", nil)
	req.Header.Set("Accept", "application/json")
	rec := httptest.NewRecorder()
	c.d.AllUserStatsHandler().ServeHTTP(rec, req)
	var got []UserIDStats
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	want := []UserIDStats{
		{UserID: "big", UserStats: UserStats{NumSeries: 300, IngestionRate: 30, APIIngestionRate: 30}},
		{UserID: "small", UserStats: UserStats{NumSeries: 3, IngestionRate: 1.5, APIIngestionRate: 1.5}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
	if !strings.Contains(rec.Body.String(), `"userID":"big","ingestionRate":30,"numSeries":300`) {
		t.Errorf("JSON does not use Cortex's names: %s", rec.Body)
	}

	rec = httptest.NewRecorder()
	c.d.AllUserStatsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/distributor/all_user_stats", nil))
	html := rec.Body.String()
	if !strings.Contains(rec.Header().Get("Content-Type"), "text/html") || !strings.Contains(html, "<td>big</td>") || !strings.Contains(html, "replication factor, which is currently set to 3") {
		t.Errorf("HTML page:\n%s", html)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{{MaxRecvMsgSize: 0, RemoteTimeout: time.Second}, {MaxRecvMsgSize: 1, RemoteTimeout: 0}} {
		if cfg.Validate() == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
