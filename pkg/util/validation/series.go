package validation

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/prometheus/prompb"
)

// metricNameLabel is the label holding a series' metric name.
const metricNameLabel = "__name__"

// LabelReason is why a series' labels are refused.
type LabelReason uint8

// The reasons ValidateLabels gives.
const (
	LabelsValid LabelReason = iota
	MissingMetricName
	InvalidMetricName
	MaxLabelNames
	InvalidLabel
	LabelNameTooLong
	LabelValueTooLong
	DuplicateLabelNames
)

// labelReasonNames are Cortex's names for the reasons: the reason label of
// cortex_discarded_samples_total.
var labelReasonNames = [...]string{
	LabelsValid:         "",
	MissingMetricName:   "missing_metric_name",
	InvalidMetricName:   "metric_name_invalid",
	MaxLabelNames:       "max_label_names_per_series",
	InvalidLabel:        "label_invalid",
	LabelNameTooLong:    "label_name_too_long",
	LabelValueTooLong:   "label_value_too_long",
	DuplicateLabelNames: "duplicate_label_names",
}

func (r LabelReason) String() string { return labelReasonNames[r] }

// NormalizeLabels prepares a series' labels for ValidateLabels, in place:
// labels with an empty value are dropped (they mean "no such label") and
// the rest sorted by name. modified tells whether ls changed.
func NormalizeLabels(ls []prompb.Label) (out []prompb.Label, modified bool) {
	out = dropEmptyLabels(ls)
	modified = len(out) != len(ls)
	if !slices.IsSortedFunc(out, compareLabels) {
		slices.SortStableFunc(out, compareLabels)
		modified = true
	}
	return out, modified
}

func compareLabels(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) }

func dropEmptyLabels(ls []prompb.Label) []prompb.Label {
	for i, l := range ls {
		if l.Value == "" {
			j := i
			for _, l := range ls[i+1:] {
				if l.Value != "" {
					ls[j] = l
					j++
				}
			}
			return ls[:j]
		}
	}
	return ls
}

// ValidateLabels checks a series' labels, normalized by NormalizeLabels,
// against the tenant's limits, and returns why they are refused with a
// message naming the series and the label, or LabelsValid. Metric and
// label names follow Prometheus 3's default: any non-empty valid UTF-8
// string (label values too must be valid UTF-8), not only the legacy
// [a-zA-Z_:][a-zA-Z0-9_:]* alphabet. The distributor and the ingester both
// call it, so a push sent straight to an ingester is held to the same
// rules.
func ValidateLabels(l *Limits, ls []prompb.Label) (LabelReason, string) {
	name, hasName := MetricName(ls)
	if !hasName {
		if l.EnforceMetricName {
			return MissingMetricName, fmt.Sprintf("sample missing metric name, series: %.200q", FormatLabels(ls))
		}
		if len(ls) == 0 {
			return InvalidLabel, "series has no labels"
		}
	} else if !utf8.ValidString(name) {
		return InvalidMetricName, fmt.Sprintf("sample invalid metric name (not valid UTF-8): %.200q", name)
	}
	if l.MaxLabelNamesPerSeries > 0 && len(ls) > l.MaxLabelNamesPerSeries {
		return MaxLabelNames, fmt.Sprintf("series has too many labels (actual: %d, limit: %d) series: %.200q", len(ls), l.MaxLabelNamesPerSeries, FormatLabels(ls))
	}
	for i, lb := range ls {
		switch {
		case lb.Name == "" || !utf8.ValidString(lb.Name):
			return InvalidLabel, fmt.Sprintf("sample invalid label: %.200q metric %.200q", lb.Name, FormatLabels(ls))
		case !utf8.ValidString(lb.Value):
			return InvalidLabel, fmt.Sprintf("sample invalid label value (not valid UTF-8) for label %.200q metric %.200q", lb.Name, FormatLabels(ls))
		case l.MaxLabelNameLength > 0 && len(lb.Name) > l.MaxLabelNameLength:
			return LabelNameTooLong, fmt.Sprintf("label name too long (actual: %d, limit: %d) metric: %.200q label name: %.200q", len(lb.Name), l.MaxLabelNameLength, FormatLabels(ls), lb.Name)
		case l.MaxLabelValueLength > 0 && len(lb.Value) > l.MaxLabelValueLength:
			return LabelValueTooLong, fmt.Sprintf("label value too long for metric (actual: %d, limit: %d) metric: %.200q label name: %.200q label value: %.200q", len(lb.Value), l.MaxLabelValueLength, FormatLabels(ls), lb.Name, lb.Value)
		case i > 0 && ls[i-1].Name == lb.Name:
			return DuplicateLabelNames, fmt.Sprintf("duplicate label name: %.200q metric %.200q", lb.Name, FormatLabels(ls))
		}
	}
	return LabelsValid, ""
}

// MetricName returns the value of the __name__ label.
func MetricName(ls []prompb.Label) (string, bool) {
	for _, l := range ls {
		if l.Name == metricNameLabel {
			return l.Value, true
		}
	}
	return "", false
}

// FormatLabels renders labels as Cortex's messages do: name{a="b", ...},
// keeping their order and any duplicates.
func FormatLabels(ls []prompb.Label) string {
	var b strings.Builder
	name, named := "", false
	first := true
	for _, l := range ls {
		if l.Name == metricNameLabel && !named && l.Value != "" {
			name, named = l.Value, true
			continue
		}
		if first {
			b.WriteByte('{')
			first = false
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	if first {
		if named {
			return name
		}
		return "{}"
	}
	b.WriteByte('}')
	return name + b.String()
}
