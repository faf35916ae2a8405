package validation

import (
	"flag"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestIngestionLimitsOverriddenPerTenant(t *testing.T) {
	var defaults Limits
	fs := flag.NewFlagSet("limits", flag.PanicOnError)
	defaults.RegisterFlags(fs)
	if err := fs.Parse([]string{"-distributor.drop-label=pod", "-distributor.drop-label=instance"}); err != nil {
		t.Fatal(err)
	}
	if defaults.NativeHistogramIngestionRate != math.MaxFloat64 || defaults.EnableNativeHistograms || !defaults.EnforceMetadataMetricName || defaults.IngestionRateStrategy != LocalIngestionRateStrategy {
		t.Errorf("defaults %+v: want Cortex's", defaults)
	}
	if !slices.Equal(defaults.DropLabels, []string{"pod", "instance"}) {
		t.Errorf("-distributor.drop-label repeated: %q", defaults.DropLabels)
	}
	rc, err := Loader(defaults)(strings.NewReader(`overrides:
  team-a:
    max_global_series_per_user: 300
    max_global_series_per_metric: 30
    max_global_metadata_per_user: 20
    max_global_metadata_per_metric: 2
    max_global_native_histogram_series_per_user: 10
    max_native_histogram_series_per_user: 5
    enable_native_histograms: true
    max_native_histogram_buckets: 160
    max_native_histogram_sample_size_bytes: 4096
    native_histogram_ingestion_rate: 100
    native_histogram_ingestion_burst_size: 200
    drop_labels: [replica]
    enforce_metadata_metric_name: false
`))
	if err != nil {
		t.Fatal(err)
	}
	o := NewOverrides(defaults, func() map[string]*Limits { return rc.(*RuntimeConfig).Overrides })
	a := o.For("team-a")
	if a.MaxGlobalSeriesPerUser != 300 || a.MaxGlobalSeriesPerMetric != 30 || a.MaxGlobalMetadataPerUser != 20 || a.MaxGlobalMetadataPerMetric != 2 ||
		a.MaxGlobalNativeHistogramSeriesPerUser != 10 || a.MaxNativeHistogramSeriesPerUser != 5 || !a.EnableNativeHistograms ||
		a.MaxNativeHistogramBuckets != 160 || a.MaxNativeHistogramSampleSizeBytes != 4096 || a.NativeHistogramIngestionRate != 100 ||
		a.NativeHistogramIngestionBurstSize != 200 || !slices.Equal(a.DropLabels, []string{"replica"}) || a.EnforceMetadataMetricName {
		t.Errorf("team-a: %+v", a)
	}
	if b := o.For("team-b"); !slices.Equal(b.DropLabels, []string{"pod", "instance"}) || b.EnableNativeHistograms {
		t.Errorf("team-b on the defaults: %+v", b)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"native_histogram_ingestion_rate: 10", "-distributor.native-histogram-ingestion-rate-limit 10 needs -distributor.native-histogram-ingestion-burst-size"},
		{"max_global_series_per_user: -1", "-ingester.max-global-series-per-user, "},
		{"accept_mixed_ha_samples: true", "needs -distributor.ha-tracker.enable-for-all-users (accept_ha_samples)"},
		{"drop_labels: ['']", "-distributor.drop-label (drop_labels) holds an empty label name"},
		{"ingestion_rate_strategy: cluster", `-distributor.ingestion-rate-limit-strategy (ingestion_rate_strategy) must be "local" or "global", got "cluster"`},
	} {
		_, err := Loader(defaults)(strings.NewReader("overrides:\n  bad:\n    " + tc.yaml + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `tenant "bad"`) {
			t.Errorf("%s: %v, want an error naming the tenant and %q", tc.yaml, err, tc.want)
		}
	}
}
