package ingester

import (
	"slices"

	"github.com/prometheus/prometheus/model/labels"
)

// lazyMatcher reports a matcher that selects nearly every series of its
// label (=~".+", !="" and !~""): looking up its postings costs more than
// checking it on the series the other matchers select.
func lazyMatcher(m *labels.Matcher) bool {
	if m.Type == labels.MatchRegexp && m.Value == ".+" {
		return true
	}
	return m.Value == "" && (m.Type == labels.MatchNotEqual || m.Type == labels.MatchNotRegexp)
}

// splitMatchers returns, with -ingester.enable-matcher-optimization, the
// matchers the TSDB selects with and those checked on each series it
// returns, as Cortex does; otherwise every matcher selects. =~".*" is
// dropped: it matches every series. At least one matcher always selects.
func (i *Ingester) splitMatchers(ms []*labels.Matcher) (selectBy, lazy []*labels.Matcher) {
	if !i.cfg.EnableMatcherOptimization || len(ms) < 2 || !slices.ContainsFunc(ms, lazyMatcher) {
		return ms, nil
	}
	for _, m := range ms {
		switch {
		case m.Type == labels.MatchRegexp && m.Value == ".*":
		case lazyMatcher(m):
			lazy = append(lazy, m)
		default:
			selectBy = append(selectBy, m)
		}
	}
	if len(selectBy) == 0 {
		selectBy, lazy = lazy[:1], lazy[1:]
	}
	return selectBy, lazy
}

// matchesAll checks a series' labels against the lazy matchers.
func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}
