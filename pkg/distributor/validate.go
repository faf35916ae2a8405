package distributor

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// exemplarMaxLabelSetLength is OpenMetrics' limit on the combined length of
// an exemplar's label names and values.
const exemplarMaxLabelSetLength = 128

// reason is why data was discarded: the reason label of the
// cortex_discarded_{samples,exemplars,metadata}_total counters.
type reason int

const (
	reasonMissingMetricName reason = iota
	reasonInvalidMetricName
	reasonMaxLabelNames
	reasonInvalidLabel
	reasonLabelNameTooLong
	reasonLabelValueTooLong
	reasonDuplicateLabelNames
	reasonTooFarInFuture
	reasonTooOld
	reasonExemplarLabelsTooLong
	reasonExemplarTimestampInvalid
	reasonMetricNameTooLong
	reasonHelpTooLong
	reasonUnitTooLong
	reasonRateLimited
	reasonInvalidSeries
	reasonLabelsSizeBytesExceeded
	reasonLabelsDropped
	reasonHistogramSizeExceeded
	reasonHistogramBucketsExceeded
	reasonHistogramRateLimited
	numReasons
)

// reasonNames are Cortex's names for the reasons.
var reasonNames = [numReasons]string{
	reasonMissingMetricName:        "missing_metric_name",
	reasonInvalidMetricName:        "metric_name_invalid",
	reasonMaxLabelNames:            "max_label_names_per_series",
	reasonInvalidLabel:             "label_invalid",
	reasonLabelNameTooLong:         "label_name_too_long",
	reasonLabelValueTooLong:        "label_value_too_long",
	reasonDuplicateLabelNames:      "duplicate_label_names",
	reasonTooFarInFuture:           "too_far_in_future",
	reasonTooOld:                   "greater_than_max_sample_age",
	reasonExemplarLabelsTooLong:    "exemplar_labels_too_long",
	reasonExemplarTimestampInvalid: "exemplar_timestamp_invalid",
	reasonMetricNameTooLong:        "metric_name_too_long",
	reasonHelpTooLong:              "help_too_long",
	reasonUnitTooLong:              "unit_too_long",
	reasonRateLimited:              validation.RateLimited,
	reasonInvalidSeries:            "invalid_series",
	reasonLabelsSizeBytesExceeded:  "labels_size_bytes_exceeded",
	reasonLabelsDropped:            "user_label_removal_configuration",
	reasonHistogramSizeExceeded:    "native_histogram_sample_size_bytes_exceeded",
	reasonHistogramBucketsExceeded: "native_histogram_buckets_exceeded",
	reasonHistogramRateLimited:     "native_histogram_rate_limited",
}

// labelReasons are the reasons for validation's.
var labelReasons = [...]reason{
	validation.MissingMetricName:   reasonMissingMetricName,
	validation.InvalidMetricName:   reasonInvalidMetricName,
	validation.MaxLabelNames:       reasonMaxLabelNames,
	validation.InvalidLabel:        reasonInvalidLabel,
	validation.LabelNameTooLong:    reasonLabelNameTooLong,
	validation.LabelValueTooLong:   reasonLabelValueTooLong,
	validation.DuplicateLabelNames: reasonDuplicateLabelNames,
}

// discards counts, for one request, what was discarded and why; the
// counters are updated once per request and reason, not per sample.
type discards struct {
	samples, exemplars, metadata [numReasons]int
}

// validator checks one request against one tenant's limits; series
// labels are checked by validation.ValidateLabels, as in the ingester.
type validator struct {
	limits     *validation.Limits
	minT, maxT int64 // accepted sample timestamps, in milliseconds
	disc       discards
	first      string // the first rejection's message, for the 400 answer
	// reducedResolution counts native histograms whose resolution was
	// reduced to fit -validation.max-native-histogram-buckets.
	reducedResolution int
}

func newValidator(l *validation.Limits, now time.Time) validator {
	v := validator{limits: l, minT: math.MinInt64, maxT: now.Add(time.Duration(l.CreationGracePeriod)).UnixMilli()}
	if l.RejectOldSamples {
		v.minT = now.Add(-time.Duration(l.RejectOldSamplesMaxAge)).UnixMilli()
	}
	return v
}

func (v *validator) reject(msg string) {
	if v.first == "" {
		v.first = msg
	}
}

// series validates ts in place: labels with empty values are dropped (they
// mean "no such label"), labels are sorted, samples and exemplars outside
// the limits are removed. ok is false when the whole series is rejected;
// modified tells whether ts changed.
func (v *validator) series(ts *prompb.TimeSeries) (ok, modified bool) {
	n := len(ts.Samples) + len(ts.Histograms) + len(ts.Exemplars)
	if len(v.limits.DropLabels) > 0 {
		ts.Labels, modified = dropLabels(ts.Labels, v.limits.DropLabels)
		if len(ts.Labels) == 0 {
			// Every label was dropped: the series is gone by the
			// operator's choice, which the sender cannot fix.
			v.disc.samples[reasonLabelsDropped] += len(ts.Samples) + len(ts.Histograms)
			v.disc.exemplars[reasonLabelsDropped] += len(ts.Exemplars)
			return false, true
		}
	}
	var normalized bool
	ts.Labels, normalized = validation.NormalizeLabels(ts.Labels)
	modified = modified || normalized
	ls := ts.Labels
	if r, msg := validation.ValidateLabels(v.limits, ls); r != validation.LabelsValid {
		v.disc.samples[labelReasons[r]] += len(ts.Samples) + len(ts.Histograms)
		v.reject(msg)
		return false, true
	}
	if msg, over := v.labelsTooLarge(ls); over {
		v.disc.samples[reasonLabelsSizeBytesExceeded] += len(ts.Samples) + len(ts.Histograms)
		v.reject(msg)
		return false, true
	}
	for _, s := range ts.Samples {
		if s.Timestamp > v.maxT || s.Timestamp < v.minT {
			ts.Samples = filter(ts.Samples, func(s *prompb.Sample) bool { return v.timestamp(s.Timestamp, ls) })
			break
		}
	}
	if len(ts.Histograms) > 0 {
		reduced := v.reducedResolution
		defer func() { modified = modified || v.reducedResolution != reduced }()
		ts.Histograms = filter(ts.Histograms, func(h *prompb.Histogram) bool { return v.timestamp(h.Timestamp, ls) && v.histogram(h, ls) })
	}
	if len(ts.Exemplars) > 0 {
		ts.Exemplars = filter(ts.Exemplars, func(e *prompb.Exemplar) bool { return v.exemplar(e, ls) })
	}
	kept := len(ts.Samples) + len(ts.Histograms) + len(ts.Exemplars)
	return kept > 0, modified || kept != n
}

// emptySeries refuses a remote write 2.0 series without samples or
// histograms, and its exemplars.
func (v *validator) emptySeries(ts *prompb.TimeSeries) {
	v.disc.exemplars[reasonInvalidSeries] += len(ts.Exemplars)
	v.reject(fmt.Sprintf("TimeSeries must contain at least one sample or histogram for series %.200q", validation.FormatLabels(ts.Labels)))
}

// filter keeps the elements of s that keep accepts, in place. It writes
// nothing when all are kept, the common case.
func filter[T any](s []T, keep func(*T) bool) []T {
	for i := range s {
		if !keep(&s[i]) {
			j := i
			for k := i + 1; k < len(s); k++ {
				if keep(&s[k]) {
					s[j] = s[k]
					j++
				}
			}
			return s[:j]
		}
	}
	return s
}

// timestamp accepts or counts and reports a sample's timestamp.
func (v *validator) timestamp(t int64, ls []prompb.Label) bool {
	switch {
	case t > v.maxT:
		v.disc.samples[reasonTooFarInFuture]++
		if v.first == "" {
			v.first = fmt.Sprintf("timestamp too new: %d metric: %.200q (samples more than %s in the future are rejected)", t, validation.FormatLabels(ls), v.limits.CreationGracePeriod)
		}
		return false
	case t < v.minT:
		v.disc.samples[reasonTooOld]++
		if v.first == "" {
			v.first = fmt.Sprintf("timestamp too old: %d metric: %.200q (samples older than %s are rejected)", t, validation.FormatLabels(ls), v.limits.RejectOldSamplesMaxAge)
		}
		return false
	}
	return true
}

func (v *validator) exemplar(e *prompb.Exemplar, ls []prompb.Label) bool {
	var r reason
	var what string
	size := 0
	for _, l := range e.Labels {
		size += len(l.Name) + len(l.Value)
	}
	switch {
	case e.Timestamp == 0:
		r, what = reasonExemplarTimestampInvalid, "exemplar missing timestamp"
	case size > exemplarMaxLabelSetLength:
		r, what = reasonExemplarLabelsTooLong, fmt.Sprintf("exemplar combined labelset too long (actual: %d, limit: %d)", size, exemplarMaxLabelSetLength)
	default:
		return true
	}
	v.disc.exemplars[r]++
	if v.first == "" {
		v.first = fmt.Sprintf("%s, timestamp: %d series: %.200q labels: %.200q", what, e.Timestamp, validation.FormatLabels(ls), validation.FormatLabels(e.Labels))
	}
	return false
}

func (v *validator) metadata(m *prompb.MetricMetadata) bool {
	if m.MetricFamilyName == "" && v.limits.EnforceMetadataMetricName {
		v.disc.metadata[reasonMissingMetricName]++
		v.reject("metadata missing metric name")
		return false
	}
	max := v.limits.MaxMetadataLength
	if max <= 0 {
		return true
	}
	var r reason
	var kind, value string
	switch {
	case len(m.MetricFamilyName) > max:
		r, kind, value = reasonMetricNameTooLong, "METRIC_NAME", m.MetricFamilyName
	case len(m.Help) > max:
		r, kind, value = reasonHelpTooLong, "HELP", m.Help
	case len(m.Unit) > max:
		r, kind, value = reasonUnitTooLong, "UNIT", m.Unit
	default:
		return true
	}
	v.disc.metadata[r]++
	if v.first == "" {
		v.first = fmt.Sprintf("metadata '%s' value too long (actual: %d, limit: %d): %.200q metric %.200q", kind, len(value), max, value, m.MetricFamilyName)
	}
	return false
}

// dropLabels removes the labels named in drop (-distributor.drop-label),
// in place.
func dropLabels(ls []prompb.Label, drop []string) ([]prompb.Label, bool) {
	n := len(ls)
	ls = slices.DeleteFunc(ls, func(l prompb.Label) bool { return slices.Contains(drop, l.Name) })
	return ls, len(ls) != n
}

// histogram applies the tenant's native histogram limits to h: its size as
// encoded (-validation.max-native-histogram-sample-size-bytes), then its
// bucket count (-validation.max-native-histogram-buckets), which a lower
// resolution may bring within the limit, as in Cortex: h is then replaced
// by the histogram at the highest resolution that fits.
func (v *validator) histogram(h *prompb.Histogram, ls []prompb.Label) bool {
	if max := v.limits.MaxNativeHistogramSampleSizeBytes; max > 0 {
		if size := h.Size(); size > max {
			v.disc.samples[reasonHistogramSizeExceeded]++
			if v.first == "" {
				v.first = fmt.Sprintf("native histogram sample size bytes exceeded for metric (actual: %d, limit: %d) metric: %.200q", size, max, validation.FormatLabels(ls))
			}
			return false
		}
	}
	max := v.limits.MaxNativeHistogramBuckets
	if max <= 0 {
		return true
	}
	var n int
	if h.IsFloatHistogram() {
		n = len(h.PositiveCounts) + len(h.NegativeCounts)
	} else {
		n = len(h.PositiveDeltas) + len(h.NegativeDeltas)
	}
	if n <= max {
		return true
	}
	tooMany := func() bool {
		v.disc.samples[reasonHistogramBucketsExceeded]++
		if v.first == "" {
			v.first = fmt.Sprintf("native histogram bucket count exceeded for metric (limit: %d) metric: %.200q", max, validation.FormatLabels(ls))
		}
		return false
	}
	if h.Schema <= histogram.ExponentialSchemaMin || h.Schema > histogram.ExponentialSchemaMax {
		// Custom buckets (schema -53) and the lowest resolution cannot
		// be reduced.
		return tooMany()
	}
	if h.IsFloatHistogram() {
		fh := h.ToFloatHistogram()
		for len(fh.PositiveBuckets)+len(fh.NegativeBuckets) > max {
			if fh.Schema <= histogram.ExponentialSchemaMin {
				return tooMany()
			}
			if err := fh.ReduceResolution(fh.Schema - 1); err != nil {
				return tooMany()
			}
		}
		unknown := h.XXX_unrecognized // the start timestamp of remote write 2.0
		*h = prompb.FromFloatHistogram(h.Timestamp, fh)
		h.XXX_unrecognized = unknown
	} else {
		ih := h.ToIntHistogram()
		for len(ih.PositiveBuckets)+len(ih.NegativeBuckets) > max {
			if ih.Schema <= histogram.ExponentialSchemaMin {
				return tooMany()
			}
			if err := ih.ReduceResolution(ih.Schema - 1); err != nil {
				return tooMany()
			}
		}
		unknown := h.XXX_unrecognized
		*h = prompb.FromIntHistogram(h.Timestamp, ih)
		h.XXX_unrecognized = unknown
	}
	v.reducedResolution++
	return true
}
