package distributor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// metrics carry Cortex's names, so its dashboards and alerts work.
type metrics struct {
	samplesIn, exemplarsIn, metadataIn                   *prometheus.CounterVec
	receivedSamples, receivedExemplars, receivedMetadata *prometheus.CounterVec
	latestSeen                                           *prometheus.GaugeVec
	ingesterAppends, ingesterAppendFailures              *prometheus.CounterVec
	discardedSamples, discardedExemplars                 *prometheus.CounterVec
	discardedMetadata                                    *prometheus.CounterVec
	reducedResolution                                    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	return &metrics{
		samplesIn:         counter("cortex_distributor_samples_in_total", "The total number of samples that have come in to the distributor, including rejected samples.", "user"),
		exemplarsIn:       counter("cortex_distributor_exemplars_in_total", "The total number of exemplars that have come in to the distributor, including rejected exemplars.", "user"),
		metadataIn:        counter("cortex_distributor_metadata_in_total", "The total number of metadata that have come in to the distributor, including rejected metadata.", "user"),
		receivedSamples:   counter("cortex_distributor_received_samples_total", "The total number of received samples, excluding rejected samples.", "user"),
		receivedExemplars: counter("cortex_distributor_received_exemplars_total", "The total number of received exemplars, excluding rejected exemplars.", "user"),
		receivedMetadata:  counter("cortex_distributor_received_metadata_total", "The total number of received metadata, excluding rejected metadata.", "user"),
		latestSeen: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cortex_distributor_latest_seen_sample_timestamp_seconds",
			Help: "Unix timestamp of latest received sample per user.",
		}, []string{"user"}),
		ingesterAppends:        counter("cortex_distributor_ingester_appends_total", "The total number of batch appends sent to ingesters.", "ingester", "type"),
		ingesterAppendFailures: counter("cortex_distributor_ingester_append_failures_total", "The total number of failed batch appends sent to ingesters.", "ingester", "type", "status"),
		discardedSamples:       validation.DiscardedSamples(reg),
		discardedExemplars:     validation.DiscardedExemplars(reg),
		discardedMetadata:      validation.DiscardedMetadata(reg),
		reducedResolution:      counter("cortex_reduced_resolution_histogram_samples_total", "The total number of native histogram samples whose resolution was reduced to fit -validation.max-native-histogram-buckets.", "user"),
	}
}

// count adds one request's discards to the counters.
func (m *metrics) count(user string, d *discards, reduced int) {
	if reduced > 0 {
		m.reducedResolution.WithLabelValues(user).Add(float64(reduced))
	}
	for r := range numReasons {
		if n := d.samples[r]; n > 0 {
			m.discardedSamples.WithLabelValues(reasonNames[r], user).Add(float64(n))
		}
		if n := d.exemplars[r]; n > 0 {
			m.discardedExemplars.WithLabelValues(reasonNames[r], user).Add(float64(n))
		}
		if n := d.metadata[r]; n > 0 {
			m.discardedMetadata.WithLabelValues(reasonNames[r], user).Add(float64(n))
		}
	}
}
