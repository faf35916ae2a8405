package distributor

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"

	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

func histogramSeries(ts int64, name string) prompb.TimeSeries {
	return prompb.TimeSeries{
		Labels:     []prompb.Label{{Name: "__name__", Value: name}},
		Histograms: []prompb.Histogram{prompb.FromIntHistogram(ts, tsdbutil.GenerateTestHistogram(1))},
	}
}

// With the global strategy, each distributor allows the tenant's rate
// divided by the healthy distributors of the distributor ring; the burst
// is not divided.
func TestGlobalIngestionRateStrategy(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), kitlog.New(slog.New(slog.DiscardHandler)), nil)
	t.Cleanup(func() { _ = closer.Close() })
	newRing := func(id string, port int) *Ring {
		var cfg RingConfig
		cfg.RegisterFlags(flag.NewFlagSet("ring", flag.PanicOnError))
		cfg.InstanceID, cfg.InstanceAddr, cfg.InstancePort = id, "127.0.0.1", port
		cfg.HeartbeatPeriod = 50 * time.Millisecond
		r, err := NewRing(cfg, store, "", 0, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	other := newRing("distributor-2", 2)
	startService(t, other)
	mine := newRing("distributor-1", 1)
	c := newCluster(t, clusterOpts{
		limits: func(l *validation.Limits) {
			l.IngestionRateStrategy = validation.GlobalIngestionRateStrategy
			l.IngestionRate, l.IngestionBurstSize = 100, 10
		},
		opts: []Option{WithRing(mine)},
	})
	testkit.Eventually(t, 5*time.Second, "two healthy distributors", func() bool { return mine.HealthyInstancesCount() == 2 })

	now := nowMs()
	r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series([]int64{now, now + 1, now + 2, now + 3, now + 4, now + 5, now + 6, now + 7, now + 8, now + 9, now + 10}, "__name__", "x")}})
	if b := body(t, r); r.StatusCode != http.StatusTooManyRequests || !strings.Contains(b, "ingestion rate limit (50) exceeded while adding 11 samples") {
		t.Fatalf("11 samples over a burst of 10: %d %q, want 429 naming this distributor's share of 50", r.StatusCode, b)
	}
	if r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series([]int64{now}, "__name__", "x")}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("one sample: %d %q", r.StatusCode, body(t, r))
	}

	// The other distributor leaves: this one takes the whole rate.
	if err := services.StopAndAwaitTerminated(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "one healthy distributor", func() bool { return mine.HealthyInstancesCount() == 1 })
	r = c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series([]int64{now, now + 1, now + 2, now + 3, now + 4, now + 5, now + 6, now + 7, now + 8, now + 9, now + 10}, "__name__", "x")}})
	if b := body(t, r); r.StatusCode != http.StatusTooManyRequests || !strings.Contains(b, "ingestion rate limit (100) exceeded") {
		t.Fatalf("after the other distributor left: %d %q, want the whole rate of 100", r.StatusCode, b)
	}
}

// Over -distributor.native-histogram-ingestion-rate-limit a push's native
// histograms are dropped and answered with 429; its float samples are
// written.
func TestNativeHistogramIngestionRateLimit(t *testing.T) {
	c := newCluster(t, clusterOpts{limits: func(l *validation.Limits) {
		l.NativeHistogramIngestionRate, l.NativeHistogramIngestionBurstSize = 1, 2
	}})
	now := nowMs()
	if r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{histogramSeries(now, "a_seconds"), histogramSeries(now, "b_seconds")}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("2 histograms within the burst: %d %q", r.StatusCode, body(t, r))
	}
	floats := series([]int64{now}, "__name__", "up")
	r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{histogramSeries(now+1, "a_seconds"), floats, histogramSeries(now+1, "c_seconds")}})
	if b := body(t, r); r.StatusCode != http.StatusTooManyRequests || !strings.Contains(b, "native histogram ingestion rate limit (1) exceeded while adding 2 native histogram samples") {
		t.Fatalf("over the histogram burst: %d %q", r.StatusCode, b)
	}
	c.waitStored(seriesString(floats.Labels), 3)
	if n := c.histograms(`__name__="a_seconds"`); n != 1 {
		t.Errorf("a_seconds: %d histogram samples stored, want only the first push's", n)
	}
	if n := c.histograms(`__name__="c_seconds"`); n != 0 {
		t.Errorf("c_seconds: %d histogram samples stored, want none", n)
	}
	if got := c.metric("cortex_discarded_samples_total", "reason", "native_histogram_rate_limited", "user", testTenant); got != 2 {
		t.Errorf("discarded native_histogram_rate_limited = %v, want 2", got)
	}
}

func TestNativeHistogramSizeAndBuckets(t *testing.T) {
	now := nowMs()
	t.Run("sample size", func(t *testing.T) {
		c := newCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxNativeHistogramSampleSizeBytes = 20 }})
		h := histogramSeries(now, "big_seconds")
		size := h.Histograms[0].Size()
		r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{h, series([]int64{now}, "__name__", "up")}})
		want := `native histogram sample size bytes exceeded for metric (actual: ` + strconv.Itoa(size) + `, limit: 20) metric: "big_seconds"`
		if b := body(t, r); r.StatusCode != http.StatusBadRequest || !strings.Contains(b, want) {
			t.Fatalf("%d %q, want 400 with %q", r.StatusCode, b, want)
		}
		if got := c.metric("cortex_discarded_samples_total", "reason", "native_histogram_sample_size_bytes_exceeded", "user", testTenant); got != 1 {
			t.Errorf("discarded = %v, want 1", got)
		}
		c.waitStored(`__name__="up"`, 3)
	})
	t.Run("buckets", func(t *testing.T) {
		c := newCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxNativeHistogramBuckets = 4 }})
		// GenerateTestHistogram has 8 buckets at schema 1: at schema -1
		// they fit in 4.
		r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{histogramSeries(now, "reduced_seconds")}})
		if r.StatusCode != http.StatusNoContent {
			t.Fatalf("%d %q", r.StatusCode, body(t, r))
		}
		testkit.Eventually(t, 5*time.Second, "the reduced histogram stored", func() bool { return c.histograms(`__name__="reduced_seconds"`) == 1 })
		if got := c.metric("cortex_reduced_resolution_histogram_samples_total", "user", testTenant); got != 1 {
			t.Errorf("cortex_reduced_resolution_histogram_samples_total = %v, want 1", got)
		}
	})
}

func TestValidatorHistogramResolution(t *testing.T) {
	l := defaultLimits()
	l.MaxNativeHistogramBuckets = 4
	v := newValidator(&l, time.Now())
	ls := []prompb.Label{{Name: "__name__", Value: "h"}}

	h := prompb.FromIntHistogram(1, tsdbutil.GenerateTestHistogram(1))
	h.XXX_unrecognized = []byte{0x88, 0x01, 0x05} // field 17 (start timestamp) of remote write 2.0
	if !v.histogram(&h, ls) {
		t.Fatalf("refused: %s", v.first)
	}
	ih := h.ToIntHistogram()
	if ih.Schema != -1 || len(ih.PositiveBuckets)+len(ih.NegativeBuckets) > 4 || ih.Count != tsdbutil.GenerateTestHistogram(1).Count {
		t.Errorf("reduced histogram %v (schema %d): want schema -1, the highest resolution with at most 4 buckets, and the same count", ih, ih.Schema)
	}
	if string(h.XXX_unrecognized) != "\x88\x01\x05" {
		t.Errorf("the start timestamp was lost: %x", h.XXX_unrecognized)
	}

	fh := prompb.FromFloatHistogram(1, tsdbutil.GenerateTestFloatHistogram(1))
	if !v.histogram(&fh, ls) || fh.ToFloatHistogram().Schema != -1 {
		t.Errorf("float histogram not reduced to schema -1: %v %s", fh.ToFloatHistogram(), v.first)
	}

	// At the lowest resolution no reduction is left.
	low := tsdbutil.GenerateTestHistogram(1)
	low.Schema = histogram.ExponentialSchemaMin
	lh := prompb.FromIntHistogram(1, low)
	if v.histogram(&lh, ls) || !strings.Contains(v.first, `native histogram bucket count exceeded for metric (limit: 4) metric: "h"`) {
		t.Errorf("schema %d with 8 buckets: accepted or wrong error %q", histogram.ExponentialSchemaMin, v.first)
	}
	if v.reducedResolution != 2 || v.disc.samples[reasonHistogramBucketsExceeded] != 1 {
		t.Errorf("reduced %d, discarded %d; want 2 and 1", v.reducedResolution, v.disc.samples[reasonHistogramBucketsExceeded])
	}
}

// -distributor.drop-label removes labels before validation and placement;
// a series left without labels is discarded without failing the push.
func TestDropLabels(t *testing.T) {
	c := newCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.DropLabels = []string{"pod", "instance"} }})
	now := nowMs()
	r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series([]int64{now}, "__name__", "up", "instance", "i-1", "job", "api", "pod", "p-1"),
		series([]int64{now}, "pod", "p-2"),
	}})
	if r.StatusCode != http.StatusNoContent {
		t.Fatalf("%d %q", r.StatusCode, body(t, r))
	}
	c.waitStored(`__name__="up",job="api"`, 3)
	if got := c.metric("cortex_discarded_samples_total", "reason", "user_label_removal_configuration", "user", testTenant); got != 1 {
		t.Errorf("discarded user_label_removal_configuration = %v, want 1", got)
	}
}

// -validation.enforce-metadata-metric-name=false forwards metadata
// without a metric name; by default it is refused.
func TestEnforceMetadataMetricName(t *testing.T) {
	md := prompb.MetricMetadata{Type: prompb.MetricMetadata_GAUGE, Help: "No name."}
	c := newCluster(t, clusterOpts{})
	if r := c.push(&prompb.WriteRequest{Metadata: []prompb.MetricMetadata{md}}); r.StatusCode != http.StatusBadRequest || !strings.Contains(body(t, r), "metadata missing metric name") {
		t.Errorf("enforced: %d, want 400", r.StatusCode)
	}
	c = newCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.EnforceMetadataMetricName = false }})
	if r := c.push(&prompb.WriteRequest{Metadata: []prompb.MetricMetadata{md}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("not enforced: %d %q", r.StatusCode, body(t, r))
	}
	testkit.Eventually(t, 5*time.Second, "the metadata on an ingester", func() bool {
		for _, f := range c.ingesters {
			f.mu.Lock()
			_, ok := f.metadata[""]
			f.mu.Unlock()
			if ok {
				return true
			}
		}
		return false
	})
}

// -distributor.ring.detailed-metrics-enabled exports each distributor's
// token and share of the distributor ring; disabled, neither.
func TestDistributorRingDetailedMetrics(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		store, closer := consul.NewInMemoryClient(ring.GetCodec(), kitlog.New(slog.New(slog.DiscardHandler)), nil)
		t.Cleanup(func() { _ = closer.Close() })
		var cfg RingConfig
		cfg.RegisterFlags(flag.NewFlagSet("ring", flag.PanicOnError))
		cfg.InstanceID, cfg.InstanceAddr, cfg.InstancePort = "distributor-1", "127.0.0.1", 1
		cfg.DetailedMetricsEnabled = enabled
		reg := prometheus.NewRegistry()
		r, err := NewRing(cfg, store, "", 0, nil, reg)
		if err != nil {
			t.Fatal(err)
		}
		startService(t, r)
		testkit.Eventually(t, 5*time.Second, "this distributor healthy in the ring", func() bool { return r.HealthyInstancesCount() == 1 })
		if !enabled {
			if n, err := testutil.GatherAndCount(reg, "ring_tokens_owned", "ring_member_ownership_percent"); err != nil || n != 0 {
				t.Errorf("detailed metrics disabled: %d series, %v", n, err)
			}
			continue
		}
		testkit.Eventually(t, 5*time.Second, "the detailed metrics of the ring", func() bool {
			tokens := testkit.MetricValues(t, reg, "ring_tokens_owned")
			share := testkit.MetricValues(t, reg, "ring_member_ownership_percent")
			_, owns := share["member=distributor-1,name=distributor"]
			return tokens["member=distributor-1,name=distributor"] == 1 && owns
		})
	}
}
