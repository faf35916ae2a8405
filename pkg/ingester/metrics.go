package ingester

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Discard reasons of cortex_discarded_samples_total, as Cortex names them.
const (
	reasonSampleOutOfOrder     = "sample-out-of-order"
	reasonSampleOutOfBounds    = "sample-out-of-bounds"
	reasonSampleTooOld         = "sample-too-old"
	reasonNewValueForTimestamp = "new-value-for-timestamp"
	reasonInvalidHistogram     = "invalid-native-histogram"
	reasonInvalidSeries        = "invalid-series"
	reasonPerUserSeriesLimit   = "per_user_series_limit"
	reasonPerMetricSeriesLimit = "per_metric_series_limit"
	// Cortex's reasons for native histograms the ingester refuses.
	reasonPerUserNativeHistogramSeriesLimit = "per_user_native_histogram_series_limit"
	reasonNativeHistogramSample             = "native-histogram-sample"
)

type metrics struct {
	ingestedSamples       prometheus.Counter
	ingestedSamplesFail   prometheus.Counter
	ingestedExemplars     prometheus.Counter
	ingestedExemplarsFail prometheus.Counter
	ingestedMetadata      prometheus.Counter
	memSeries             prometheus.Gauge
	memUsers              prometheus.Gauge
	memMetadata           prometheus.Gauge
	seriesCreated         *prometheus.CounterVec
	seriesRemoved         *prometheus.CounterVec
	discarded             *prometheus.CounterVec
	discardedMetadata     *prometheus.CounterVec
	queriedSeries         prometheus.Histogram
	queriedSamples        prometheus.Histogram

	shipperDirSyncs        prometheus.Counter
	shipperDirSyncFailures prometheus.Counter
	shipperUploads         prometheus.Counter
	shipperUploadFailures  prometheus.Counter

	idleTSDBChecks *prometheus.CounterVec

	activeSeries          *prometheus.GaugeVec
	activeHistogramSeries *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, tsdbs *tsdbMetrics) (*metrics, error) {
	m := &metrics{
		ingestedSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ingester_ingested_samples_total",
			Help: "The total number of samples ingested.",
		}),
		ingestedSamplesFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ingester_ingested_samples_failures_total",
			Help: "The total number of samples that errored on ingestion.",
		}),
		ingestedExemplars: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ingester_ingested_exemplars_total",
			Help: "The total number of exemplars ingested.",
		}),
		ingestedExemplarsFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ingester_ingested_exemplars_failures_total",
			Help: "The total number of exemplars that errored on ingestion.",
		}),
		ingestedMetadata: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ingester_ingested_metadata_total",
			Help: "The total number of metadata ingested.",
		}),
		memSeries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_ingester_memory_series",
			Help: "The current number of series in memory.",
		}),
		memUsers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_ingester_memory_users",
			Help: "The current number of users in memory.",
		}),
		memMetadata: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_ingester_memory_metadata",
			Help: "The current number of metadata in memory.",
		}),
		seriesCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ingester_memory_series_created_total",
			Help: "The total number of series that were created per user.",
		}, []string{"user"}),
		seriesRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ingester_memory_series_removed_total",
			Help: "The total number of series that were removed per user.",
		}, []string{"user"}),
		// Shared with the distributor's rejections when both run in one
		// process.
		discarded:         validation.DiscardedSamples(reg),
		discardedMetadata: validation.DiscardedMetadata(reg),
		queriedSeries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cortex_ingester_queried_series",
			Help:    "The total number of series returned from queries.",
			Buckets: prometheus.ExponentialBuckets(10, 8, 6),
		}),
		queriedSamples: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cortex_ingester_queried_samples",
			Help:    "The total number of samples returned from queries.",
			Buckets: prometheus.ExponentialBuckets(10, 8, 8),
		}),
		// Cortex's names and help for what it sums from Thanos' shipper.
		shipperDirSyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ingester_shipper_dir_syncs_total",
			Help: "Total number of TSDB dir syncs",
		}),
		shipperDirSyncFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ingester_shipper_dir_sync_failures_total",
			Help: "Total number of failed TSDB dir syncs",
		}),
		shipperUploads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ingester_shipper_uploads_total",
			Help: "Total number of uploaded TSDB blocks",
		}),
		shipperUploadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cortex_ingester_shipper_upload_failures_total",
			Help: "Total number of TSDB block upload failures",
		}),
		idleTSDBChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ingester_idle_tsdb_checks_total",
			Help: "The total number of various results for idle TSDB checks.",
		}, []string{"result"}),
		activeSeries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_ingester_active_series",
			Help: "Number of currently active series per user.",
		}, []string{"user"}),
		activeHistogramSeries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_ingester_active_native_histogram_series",
			Help: "Number of currently active native histogram series per user.",
		}, []string{"user"}),
	}
	for _, r := range idleCheckResults {
		m.idleTSDBChecks.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.ingestedSamples, m.ingestedSamplesFail, m.ingestedExemplars, m.ingestedExemplarsFail,
		m.ingestedMetadata, m.memSeries, m.memUsers, m.memMetadata, m.seriesCreated, m.seriesRemoved,
		m.queriedSeries, m.queriedSamples, tsdbs,
		m.shipperDirSyncs, m.shipperDirSyncFailures, m.shipperUploads, m.shipperUploadFailures,
		m.idleTSDBChecks, m.activeSeries, m.activeHistogramSeries,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
