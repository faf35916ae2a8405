package ingester

import (
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// addMetadata stores a push's metadata within the tenant's
// -ingester.max-metadata-per-user and -ingester.max-metadata-per-metric,
// and this ingester's share of -ingester.max-global-metadata-per-user and
// -ingester.max-global-metadata-per-metric.
// Metadata over them is dropped and counted in
// cortex_discarded_metadata_total; the push's samples are stored all the
// same, as in Cortex.
func (i *Ingester) addMetadata(u *userTSDB, id string, mds []prompb.MetricMetadata, now time.Time) {
	perUser, perMetric := 0, 0
	if i.limits != nil {
		l := i.limits.For(id)
		perUser = i.limiter.localLimit(l, l.MaxMetadataPerUser, l.MaxGlobalMetadataPerUser, false)
		perMetric = i.limiter.localLimit(l, l.MaxMetadataPerMetric, l.MaxGlobalMetadataPerMetric, true)
	}
	added, dropped := u.metadata.add(mds, now, perUser, perMetric)
	i.metrics.ingestedMetadata.Add(float64(added))
	for reason, n := range dropped {
		i.metrics.discardedMetadata.WithLabelValues(reason, id).Add(float64(n))
	}
}
