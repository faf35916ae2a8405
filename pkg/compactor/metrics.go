package compactor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const (
	reasonCompaction = "compaction"
	reasonRetention  = "retention"
)

// metrics carry Cortex's compactor metric names, which its dashboards and
// alerts read.
type metrics struct {
	runsStarted       prometheus.Counter
	runsCompleted     prometheus.Counter
	runsFailed        prometheus.Counter
	lastSuccessfulRun prometheus.Gauge

	tenantsDiscovered prometheus.Gauge
	tenantsSkipped    prometheus.Gauge
	tenantsSucceeded  prometheus.Gauge
	tenantsFailed     prometheus.Gauge

	compactions         prometheus.Counter
	verticalCompactions prometheus.Counter
	compactionFailures  prometheus.Counter
	compactedSamples    prometheus.Counter

	blocksMarkedForDeletion     *prometheus.CounterVec
	blocksMarkedForNoCompaction prometheus.Counter

	cleanupStarted           prometheus.Counter
	cleanupCompleted         prometheus.Counter
	cleanupFailed            prometheus.Counter
	cleanupLastSuccessfulRun prometheus.Gauge
	blocksCleaned            prometheus.Counter
	blockCleanupFailures     prometheus.Counter

	bucketBlocks          *prometheus.GaugeVec
	bucketBlocksMarked    *prometheus.GaugeVec
	bucketBlocksPartials  *prometheus.GaugeVec
	bucketIndexLastUpdate *prometheus.GaugeVec

	// The partitioning strategy's, nil with the default strategy.
	remainingPlannedCompactions *prometheus.GaugeVec
	inProgressCompactions       *prometheus.GaugeVec
	oldestPartitionOffset       *prometheus.GaugeVec
	partitionCount              *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, partitioning bool) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		runsStarted: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_runs_started_total",
			Help: "Total number of compaction runs started.",
		}),
		runsCompleted: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_runs_completed_total",
			Help: "Total number of compaction runs successfully completed.",
		}),
		runsFailed: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_runs_failed_total",
			Help: "Total number of compaction runs failed.",
		}),
		lastSuccessfulRun: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_compactor_last_successful_run_timestamp_seconds",
			Help: "Unix timestamp of the last successful compaction run.",
		}),
		tenantsDiscovered: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_compactor_tenants_discovered",
			Help: "Number of tenants discovered during the current compaction run. Reset to 0 when compactor is idle.",
		}),
		tenantsSkipped: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_compactor_tenants_skipped",
			Help: "Number of tenants skipped during the current compaction run. Reset to 0 when compactor is idle.",
		}),
		tenantsSucceeded: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_compactor_tenants_processing_succeeded",
			Help: "Number of tenants successfully processed during the current compaction run. Reset to 0 when compactor is idle.",
		}),
		tenantsFailed: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_compactor_tenants_processing_failed",
			Help: "Number of tenants failed processing during the current compaction run. Reset to 0 when compactor is idle.",
		}),
		compactions: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_group_compactions_total",
			Help: "Total number of group compaction attempts that resulted in a new block.",
		}),
		verticalCompactions: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_group_vertical_compactions_total",
			Help: "Total number of group compaction attempts that resulted in a new block based on overlapping blocks.",
		}),
		compactionFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_group_compactions_failures_total",
			Help: "Total number of failed group compactions.",
		}),
		compactedSamples: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_compacted_samples_total",
			Help: "Total number of samples written to compacted blocks.",
		}),
		blocksMarkedForNoCompaction: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_blocks_marked_for_no_compaction_total",
			Help: "Total number of blocks marked for no compact during a compaction run.",
		}),
		blocksMarkedForDeletion: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_compactor_blocks_marked_for_deletion_total",
			Help: "Total number of blocks marked for deletion in compactor.",
		}, []string{"reason"}),
		cleanupStarted: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_block_cleanup_started_total",
			Help: "Total number of blocks cleanup runs started.",
		}),
		cleanupCompleted: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_block_cleanup_completed_total",
			Help: "Total number of blocks cleanup runs successfully completed.",
		}),
		cleanupFailed: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_block_cleanup_failed_total",
			Help: "Total number of blocks cleanup runs failed.",
		}),
		cleanupLastSuccessfulRun: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_compactor_block_cleanup_last_successful_run_timestamp_seconds",
			Help: "Unix timestamp of the last successful blocks cleanup run.",
		}),
		blocksCleaned: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_blocks_cleaned_total",
			Help: "Total number of blocks deleted.",
		}),
		blockCleanupFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_compactor_block_cleanup_failures_total",
			Help: "Total number of blocks failed to be deleted.",
		}),
		bucketBlocks: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_bucket_blocks_count",
			Help: "Total number of blocks in the bucket. Includes blocks marked for deletion, but not partial blocks.",
		}, []string{"user"}),
		bucketBlocksMarked: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_bucket_blocks_marked_for_deletion_count",
			Help: "Total number of blocks marked for deletion in the bucket.",
		}, []string{"user"}),
		bucketBlocksPartials: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_bucket_blocks_partials_count",
			Help: "Total number of partial blocks.",
		}, []string{"user"}),
		bucketIndexLastUpdate: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_bucket_index_last_successful_update_timestamp_seconds",
			Help: "Timestamp of the last successful update of a tenant's bucket index.",
		}, []string{"user"}),
	}
	if partitioning {
		m.remainingPlannedCompactions = f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_compactor_remaining_planned_compactions",
			Help: "Total number of plans that remain to be compacted. Only available with shuffle-sharding strategy",
		}, []string{"user"})
		m.inProgressCompactions = f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_compactor_in_progress_compactions",
			Help: "Total number of in progress compactions. Only available with shuffle-sharding strategy and partitioning compaction strategy",
		}, []string{"user"})
		m.oldestPartitionOffset = f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_compactor_oldest_partition_offset",
			Help: "Time in seconds between now and the oldest created partition group not completed. Only available with shuffle-sharding strategy and partitioning compaction strategy",
		}, []string{"user"})
		m.partitionCount = f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_compactor_group_partition_count",
			Help: "Number of partitions for each compaction group.",
		}, []string{"user", "time_range_milliseconds"})
	}
	return m
}

func (m *metrics) forgetTenant(tenant string) {
	m.bucketBlocks.DeleteLabelValues(tenant)
	m.bucketBlocksMarked.DeleteLabelValues(tenant)
	m.bucketBlocksPartials.DeleteLabelValues(tenant)
	m.bucketIndexLastUpdate.DeleteLabelValues(tenant)
	if m.remainingPlannedCompactions != nil {
		m.remainingPlannedCompactions.DeleteLabelValues(tenant)
		m.inProgressCompactions.DeleteLabelValues(tenant)
		m.oldestPartitionOffset.DeleteLabelValues(tenant)
		m.partitionCount.DeletePartialMatch(prometheus.Labels{"user": tenant})
	}
}
