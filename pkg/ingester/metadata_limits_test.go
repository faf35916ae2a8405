package ingester

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Over -ingester.max-metadata-per-user (metric families) and
// -ingester.max-metadata-per-metric (distinct metadata of one family), a
// push's metadata is dropped and counted by reason, its samples stored.
func TestMetadataLimits(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, func(l *validation.Limits) {
		l.MaxMetadataPerUser = 2
		l.MaxMetadataPerMetric = 2
	}))
	ctx := ctxFor("t")
	gauge := func(name, help string) prompb.MetricMetadata {
		return prompb.MetricMetadata{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: name, Help: help}
	}
	push := func(ts int64, mds ...prompb.MetricMetadata) {
		t.Helper()
		req := &prompb.WriteRequest{
			Timeseries: []prompb.TimeSeries{{Labels: series("up", "job", "a"), Samples: []prompb.Sample{{Timestamp: ts, Value: 1}}}},
			Metadata:   mds,
		}
		if _, err := h.conn.Push(ctx, req); err != nil {
			t.Fatalf("push at %d: %v", ts, err)
		}
	}
	// Two families fit; a third is dropped, a known family's refresh is not.
	push(base, gauge("up", "Up."), gauge("temp", "Temperature."), gauge("load", "Load."))
	push(base+1000, gauge("up", "Up."), gauge("up", "Up or down."), gauge("up", "Whether up."))

	md, err := h.conn.Metadata(ctx, &client.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range md.Metadata {
		got = append(got, x.MetricFamilyName+"/"+x.Help)
	}
	if want := "temp/Temperature. up/Up or down. up/Up."; strings.Join(got, " ") != want {
		t.Errorf("metadata %q, want %q", strings.Join(got, " "), want)
	}
	for reason, want := range map[string]float64{"per_user_metadata_limit": 1, "per_metric_metadata_limit": 1} {
		if got := testutil.ToFloat64(h.ing.metrics.discardedMetadata.WithLabelValues(reason, "t")); got != want {
			t.Errorf("cortex_discarded_metadata_total{reason=%q}: %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(h.ing.metrics.ingestedMetadata); got != 4 {
		t.Errorf("cortex_ingester_ingested_metadata_total: %v, want 4", got)
	}
	if got := testutil.ToFloat64(h.ing.metrics.memMetadata); got != 3 {
		t.Errorf("cortex_ingester_memory_metadata: %v, want 3", got)
	}
	// Both pushes' samples were stored.
	if got := testutil.ToFloat64(h.ing.metrics.ingestedSamples); got != 2 {
		t.Errorf("cortex_ingester_ingested_samples_total: %v, want 2", got)
	}
}
