package validation

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/prometheus/common/model"
)

// QueryRejection is Cortex's limits.query_rejection: with Enabled, the
// query-frontend refuses a tenant's queries that match any of
// QueryAttributes with 422, before they reach a querier.
type QueryRejection struct {
	Enabled         bool             `yaml:"enabled"`
	QueryAttributes []QueryAttribute `yaml:"query_attributes"`
}

// QueryAttribute describes queries: a query matches when every property
// set matches it (an attribute with none set matches nothing).
type QueryAttribute struct {
	// APIType is one of query, query_range, series, labels, label_values.
	APIType string `yaml:"api_type"`
	// Regex must match the query, or one match[] selector of a metadata query.
	Regex string `yaml:"regex"`
	// TimeWindow bounds the data the query selects (range selectors,
	// offsets and lookback included), relative to now.
	TimeWindow TimeWindow `yaml:"time_window"`
	// TimeRangeLimit bounds the length of the data selected.
	TimeRangeLimit TimeRangeLimit `yaml:"time_range_limit"`
	// QueryStepLimit bounds a range query's step.
	QueryStepLimit QueryStepLimit `yaml:"query_step_limit"`
	// UserAgentRegex must match the User-Agent header.
	UserAgentRegex string `yaml:"user_agent_regex"`
	// DashboardUID and PanelID must equal Grafana's X-Dashboard-Uid and
	// X-Panel-Id headers (query and query_range only).
	DashboardUID string `yaml:"dashboard_uid"`
	PanelID      string `yaml:"panel_id"`

	// CompiledRegex and CompiledUserAgentRegex are set by Validate.
	CompiledRegex          *regexp.Regexp `yaml:"-"`
	CompiledUserAgentRegex *regexp.Regexp `yaml:"-"`
}

// TimeWindow is how far back the data a query selects may start and end.
type TimeWindow struct {
	Start model.Duration `yaml:"start"`
	End   model.Duration `yaml:"end"`
}

// TimeRangeLimit is the shortest and longest time range selected.
type TimeRangeLimit struct {
	Min model.Duration `yaml:"min"`
	Max model.Duration `yaml:"max"`
}

// QueryStepLimit is the smallest and largest step of a range query.
type QueryStepLimit struct {
	Min model.Duration `yaml:"min"`
	Max model.Duration `yaml:"max"`
}

var queryAPITypes = map[string]bool{"": true, "query": true, "query_range": true, "series": true, "labels": true, "label_values": true}

// Validate checks the attributes and compiles their regular expressions.
func (q *QueryRejection) Validate() error {
	q.QueryAttributes = slices.Clone(q.QueryAttributes)
	return validateQueryAttributes(q.QueryAttributes, "query_rejection.query_attributes")
}

// validateQueryAttributes checks attrs and compiles their regular
// expressions; at names the list in errors. The caller owns attrs: they
// are compiled in place.
func validateQueryAttributes(attrs []QueryAttribute, at string) error {
	for i := range attrs {
		a := &attrs[i]
		at := fmt.Sprintf("%s[%d]", at, i)
		if !queryAPITypes[a.APIType] {
			return fmt.Errorf("%s.api_type %q: want one of query, query_range, series, labels, label_values", at, a.APIType)
		}
		var err error
		if a.Regex != "" {
			if a.CompiledRegex, err = regexp.Compile(a.Regex); err != nil {
				return fmt.Errorf("%s.regex: %w", at, err)
			}
		}
		if a.UserAgentRegex != "" {
			if a.CompiledUserAgentRegex, err = regexp.Compile(a.UserAgentRegex); err != nil {
				return fmt.Errorf("%s.user_agent_regex: %w", at, err)
			}
		}
	}
	return nil
}
