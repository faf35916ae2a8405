package ingester

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// regexLimits refuses queries whose regular expressions the TSDB cannot
// turn into a set of values (it then runs the expression over every value
// of the label) when the pattern, or the label's values, are larger than
// the tenant allows (-ingester.enable-regex-matcher-limits). Cortex's
// checks and metrics.
type regexLimits struct {
	patternLength    prometheus.Histogram
	labelCardinality prometheus.Histogram
	valueLength      prometheus.Histogram
	rejected         *prometheus.CounterVec
}

func newRegexLimits(reg prometheus.Registerer) *regexLimits {
	f := promauto.With(reg)
	native := func(name, help string) prometheus.Histogram {
		return f.NewHistogram(prometheus.HistogramOpts{
			Name: name, Help: help,
			NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 100,
		})
	}
	return &regexLimits{
		patternLength:    native("cortex_ingester_unoptimized_regex_pattern_length_bytes", "Length (in bytes) of unoptimized regex patterns in queries."),
		labelCardinality: native("cortex_ingester_unoptimized_regex_label_cardinality", "Cardinality of labels queried with unoptimized regex matchers."),
		valueLength:      native("cortex_ingester_unoptimized_regex_total_value_length_bytes", "Total length (in bytes) of all label values for labels queried with unoptimized regex matchers."),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ingester_unoptimized_regex_rejected_requests_total",
			Help: "Total number of requests rejected due to unoptimized regex matcher limits per user and reason.",
		}, []string{"user", "reason"}),
	}
}

// unoptimizedRegex is a regular expression matcher the TSDB evaluates
// against every value of its label: not a literal or a set of
// alternatives, nor .* or .+, which it matches without the expression.
func unoptimizedRegex(m *labels.Matcher) bool {
	return m.Type == labels.MatchRegexp && m.Value != ".*" && m.Value != ".+" && !m.IsRegexOptimized()
}

// check refuses the query of u's tenant over [mint, maxt] with codes.InvalidArgument
// naming the matcher and the limit, or returns nil.
func (r *regexLimits) check(ctx context.Context, u *userTSDB, ms []*labels.Matcher, mint, maxt int64) error {
	var regexes []*labels.Matcher
	for _, m := range ms {
		if unoptimizedRegex(m) {
			regexes = append(regexes, m)
			r.patternLength.Observe(float64(len(m.Value)))
		}
	}
	if len(regexes) == 0 {
		return nil
	}
	limits := u.limits()
	if max := limits.MaxRegexPatternLength; max > 0 {
		for _, m := range regexes {
			if len(m.Value) > max {
				r.rejected.WithLabelValues(u.id, "pattern_length").Inc()
				return status.Errorf(codes.InvalidArgument, "regex pattern length %d exceeds limit %d for unoptimized regex matcher %q (-validation.max-regex-pattern-length). Consider using a more specific pattern.", len(m.Value), max, m.String())
			}
		}
	}
	q, err := u.db.Querier(mint, maxt)
	if err != nil {
		return status.Errorf(codes.Internal, "querying the TSDB: %v", err)
	}
	defer q.Close()
	maxValues, maxBytes := limits.MaxLabelCardinalityForUnoptimizedRegex, limits.MaxTotalLabelValueLengthForUnoptimizedRegex
	for _, m := range regexes {
		values, _, err := q.LabelValues(ctx, m.Name, nil)
		if err != nil {
			continue // the query itself reports what the TSDB cannot read
		}
		total := 0
		for _, v := range values {
			total += len(v)
		}
		r.labelCardinality.Observe(float64(len(values)))
		r.valueLength.Observe(float64(total))
		if maxValues > 0 && len(values) > maxValues {
			r.rejected.WithLabelValues(u.id, "cardinality").Inc()
			return status.Errorf(codes.InvalidArgument, "label %q has cardinality %d which exceeds limit %d for unoptimized regex matcher %q (-validation.max-label-cardinality-for-unoptimized-regex). Consider using a more specific matcher.", m.Name, len(values), maxValues, m.String())
		}
		if maxBytes > 0 && total > maxBytes {
			r.rejected.WithLabelValues(u.id, "total_value_length").Inc()
			return status.Errorf(codes.InvalidArgument, "label %q has total value length %d bytes (across %d values) which exceeds limit %d for unoptimized regex matcher %q (-validation.max-total-label-value-length-for-unoptimized-regex). Consider using a more specific matcher.", m.Name, total, len(values), maxBytes, m.String())
		}
	}
	return nil
}

// checkRegexLimits applies the tenant's regex limits when
// -ingester.enable-regex-matcher-limits is on.
func (i *Ingester) checkRegexLimits(ctx context.Context, u *userTSDB, ms []*labels.Matcher, mint, maxt int64) error {
	if i.regexLimits == nil {
		return nil
	}
	return i.regexLimits.check(ctx, u, ms, mint, maxt)
}
