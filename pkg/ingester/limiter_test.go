package ingester

import (
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// enableNativeHistograms turns on -blocks-storage.tsdb.enable-native-histograms.
func enableNativeHistograms(l *validation.Limits) { l.EnableNativeHistograms = true }

func TestLocalLimitFromGlobal(t *testing.T) {
	lim := &validation.Limits{IngestionTenantShardSize: 3}
	for _, tc := range []struct {
		name             string
		shardByAll       bool
		shuffle          bool
		zones            bool
		local, global    int
		perMetric        bool
		want             int
		healthyOverwrite int
	}{
		{name: "no global limit", shardByAll: true, local: 7, want: 7},
		{name: "global over the ring times RF", shardByAll: true, global: 1000, want: 300},
		{name: "smaller local limit wins", shardByAll: true, local: 50, global: 1000, want: 50},
		{name: "global over the tenant's shard", shardByAll: true, shuffle: true, global: 1000, want: 1000},
		{name: "shard rounded up to the zones", shardByAll: true, shuffle: true, zones: true, global: 1000, want: 1000},
		{name: "per-tenant global needs sharding by all labels", local: 5, global: 1000, want: 5},
		{name: "per-metric global whole without sharding by all labels", global: 1000, perMetric: true, want: 1000},
		{name: "per-metric global shared with sharding by all labels", shardByAll: true, global: 1000, perMetric: true, want: 300},
		{name: "ring not known yet", shardByAll: true, local: 0, global: 1000, healthyOverwrite: -1, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &ringCounts{healthy: 10, zones: 3}
			if tc.healthyOverwrite < 0 {
				c.healthy = 0
			}
			l := newLimiter(LimiterConfig{ShardByAllLabels: tc.shardByAll, ShuffleSharding: tc.shuffle}, c, 3, tc.zones)
			if got := l.localLimit(lim, tc.local, tc.global, tc.perMetric); got != tc.want {
				t.Errorf("local limit %d, want %d", got, tc.want)
			}
		})
	}
	// A shard of 4 over 3 zones takes 2 ingesters of each: 6.
	l := newLimiter(LimiterConfig{ShardByAllLabels: true, ShuffleSharding: true}, &ringCounts{healthy: 12, zones: 3}, 3, true)
	if got := l.localLimit(&validation.Limits{IngestionTenantShardSize: 4}, 0, 600, false); got != 300 {
		t.Errorf("shard of 4 over 3 zones: local limit %d, want 600/6*3 = 300", got)
	}
}

func TestRingCountsHealthyActiveInstances(t *testing.T) {
	now := time.Now()
	c := &ringCounts{timeout: time.Minute}
	c.update(&ring.Desc{Ingesters: map[string]ring.InstanceDesc{
		"a": {State: ring.ACTIVE, Timestamp: now.Unix(), Zone: "z1"},
		"b": {State: ring.ACTIVE, Timestamp: now.Add(-2 * time.Minute).Unix(), Zone: "z2"}, // heartbeat too old
		"c": {State: ring.JOINING, Timestamp: now.Unix(), Zone: "z2"},
		"d": {State: ring.ACTIVE, Timestamp: now.Unix(), Zone: "z3"},
	}})
	if healthy, zones := c.get(); healthy != 2 || zones != 3 {
		t.Errorf("healthy %d zones %d, want 2 and 3", healthy, zones)
	}
}

// waitRingCounted waits until the ingester's heartbeat counted itself.
func waitRingCounted(t *testing.T, h *harness) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if healthy, _ := h.ing.limiter.ring.get(); healthy == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the ingester's heartbeat never counted it healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGlobalSeriesLimitsAndAdminMessage(t *testing.T) {
	limits := newTestLimits(t, func(l *validation.Limits) {
		l.MaxSeriesPerUser, l.MaxSeriesPerMetric = 0, 0
		l.MaxGlobalSeriesPerUser = 3
		l.MaxGlobalSeriesPerMetric = 2
	})
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.Limiter.ShardByAllLabels = true
	cfg.Limiter.AdminLimitMessage = "ask the metrics team"
	cfg.Limiter.IgnoreSeriesLimitForMetricNames = "unbounded, other"
	h := startHarness(t, cfg, limits)
	waitRingCounted(t, h)

	// One healthy ingester, replication factor 1: the global limits apply whole.
	err := h.push("t",
		floats(series("cpu", "core", "0"), float64(base), 1),
		floats(series("cpu", "core", "1"), float64(base), 1),
		floats(series("cpu", "core", "2"), float64(base), 1),
	)
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, `per-metric series limit of 2 exceeded for metric "cpu", ask the metrics team (local limit: 0 global limit: 2 actual local limit: 2; -ingester.max-series-per-metric, -ingester.max-global-series-per-metric)`) {
		t.Fatalf("third cpu series: %v", err)
	}
	// The metrics named in -ingester.ignore-series-limit-for-metric-names
	// have no per-metric limit, but count towards the tenant's.
	err = h.push("t",
		floats(series("unbounded", "i", "0"), float64(base), 1),
		floats(series("unbounded", "i", "1"), float64(base), 1),
	)
	msg = status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, `{__name__="unbounded", i="1"}: per-user series limit of 3 exceeded, ask the metrics team (local limit: 0 global limit: 3 actual local limit: 3;`) {
		t.Fatalf("fourth series of the tenant: %v", err)
	}
	if got := h.query("t", 0, base, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: model.MetricNameLabel, Value: ".+"}); len(got) != 3 {
		t.Errorf("stored %d series, want 3", len(got))
	}
	if v := testutil.ToFloat64(h.ing.metrics.discarded.WithLabelValues(reasonPerUserSeriesLimit, "t")); v != 1 {
		t.Errorf("per-user discards %v, want 1", v)
	}

}

func TestNativeHistogramsDisabledAreDropped(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	resp, err := h.conn.Push(ctxFor("t"), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("latency_seconds"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(base, tsdbutil.GenerateTestHistogram(1))}},
		{Labels: series("mixed"), Samples: []prompb.Sample{{Timestamp: base, Value: 1}}, Histograms: []prompb.Histogram{prompb.FromIntHistogram(base+1, tsdbutil.GenerateTestHistogram(2))}},
	}})
	if err != nil {
		t.Fatalf("push with native histograms not enabled: %v, want them dropped without an error", err)
	}
	if len(resp.Refused) != 2 || resp.Refused[0].Histograms != 1 || resp.Refused[1].Histograms != 1 || resp.Refused[1].Samples != 0 {
		t.Errorf("refused %v, want one histogram of each series", resp.Refused)
	}
	if v := testutil.ToFloat64(h.ing.metrics.discarded.WithLabelValues(reasonNativeHistogramSample, "t")); v != 2 {
		t.Errorf("cortex_discarded_samples_total{reason=%q} = %v, want 2", reasonNativeHistogramSample, v)
	}
	got := h.query("t", 0, base+10, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: model.MetricNameLabel, Value: ".+"})
	if len(got) != 1 || labelsString(got[0].Labels) != `{__name__="mixed"}` || len(got[0].Samples) != 1 || len(got[0].Histograms) != 0 {
		t.Errorf("stored %v, want the float sample only", got)
	}
}

func TestNativeHistogramSeriesLimit(t *testing.T) {
	limits := newTestLimits(t, enableNativeHistograms)
	limits.set("t", func(l *validation.Limits) { l.MaxNativeHistogramSeriesPerUser = 1 })
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), limits)
	hist := func(name string, ts int64) prompb.TimeSeries {
		return prompb.TimeSeries{Labels: series(name), Histograms: []prompb.Histogram{prompb.FromIntHistogram(ts, tsdbutil.GenerateTestHistogram(1))}}
	}
	h.mustPush("t", hist("a_seconds", base), floats(series("up"), float64(base), 1))
	// The first series takes more samples; a second histogram series is
	// refused; float series are not limited.
	err := h.push("t", hist("a_seconds", base+1), hist("b_seconds", base), floats(series("other"), float64(base), 1))
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, `{__name__="b_seconds"}: per-user native histogram series limit of 1 exceeded, please contact administrator to raise it (local limit: 1 global limit: 0 actual local limit: 1;`) {
		t.Fatalf("second histogram series: %v", err)
	}
	if v := testutil.ToFloat64(h.ing.metrics.discarded.WithLabelValues(reasonPerUserNativeHistogramSeriesLimit, "t")); v != 1 {
		t.Errorf("discarded %v, want 1", v)
	}
	if got := h.query("t", 0, base+10, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: model.MetricNameLabel, Value: ".+"}); len(got) != 3 {
		t.Errorf("stored %d series, want a_seconds, other and up", len(got))
	}
}

func TestSkipMetadataLimits(t *testing.T) {
	for _, skip := range []bool{true, false} {
		cfg := testConfig(t, t.TempDir(), newKV(t))
		cfg.Limiter.SkipMetadataLimits = skip
		h := startHarness(t, cfg, newTestLimits(t, nil))
		_, err := h.conn.Push(ctxFor("t"), &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
			{MetricFamilyName: "a", Type: prompb.MetricMetadata_COUNTER, Help: "A."},
			{MetricFamilyName: "a", Type: prompb.MetricMetadata_COUNTER, Help: "A, reworded."},
			{MetricFamilyName: "b", Type: prompb.MetricMetadata_GAUGE, Help: "B."},
		}})
		if err != nil {
			t.Fatal(err)
		}
		md, err := h.conn.Metadata(ctxFor("t"), &client.MetadataRequest{Limit: 1, LimitPerMetric: 1})
		switch {
		case err != nil:
			t.Errorf("-ingester.skip-metadata-limits=%v: %v", skip, err)
		case skip && len(md.Metadata) != 3:
			t.Errorf("-ingester.skip-metadata-limits=true: %v; want all 3 metadata", md)
		case !skip && (len(md.Metadata) != 1 || md.Metadata[0].MetricFamilyName != "a" || md.Metadata[0].Help != "A, reworded."):
			t.Errorf("-ingester.skip-metadata-limits=false: %v; want a's first metadata in sort order only", md)
		}
		h.stop()
	}
}
