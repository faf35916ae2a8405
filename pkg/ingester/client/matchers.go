package client

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// matchTypes maps both wire enums (prompb's and this package's, which share
// their numbering) to Prometheus matcher types.
var matchTypes = map[int32]labels.MatchType{
	0: labels.MatchEqual,
	1: labels.MatchNotEqual,
	2: labels.MatchRegexp,
	3: labels.MatchNotRegexp,
}

var wireTypes = map[labels.MatchType]int32{
	labels.MatchEqual:     0,
	labels.MatchNotEqual:  1,
	labels.MatchRegexp:    2,
	labels.MatchNotRegexp: 3,
}

func newMatcher(typ int32, name, value string) (*labels.Matcher, error) {
	t, ok := matchTypes[typ]
	if !ok {
		return nil, fmt.Errorf("unknown label matcher type %d", typ)
	}
	m, err := labels.NewMatcher(t, name, value)
	if err != nil {
		return nil, fmt.Errorf("label matcher %s%s%q: %w", name, t, value, err)
	}
	return m, nil
}

// ToPromMatchers encodes matchers for a QueryStream call.
func ToPromMatchers(ms []*labels.Matcher) []*prompb.LabelMatcher {
	out := make([]*prompb.LabelMatcher, 0, len(ms))
	for _, m := range ms {
		out = append(out, &prompb.LabelMatcher{Type: prompb.LabelMatcher_Type(wireTypes[m.Type]), Name: m.Name, Value: m.Value})
	}
	return out
}

// FromPromMatchers decodes the matchers of a QueryStream call.
func FromPromMatchers(in []*prompb.LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(in))
	for _, m := range in {
		lm, err := newMatcher(int32(m.Type), m.Name, m.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, lm)
	}
	return out, nil
}

// ToMatcherSets encodes one set of matchers for a label or series call; no
// matchers give no set, which means every series.
func ToMatcherSets(ms []*labels.Matcher) []*MatcherSet {
	if len(ms) == 0 {
		return nil
	}
	set := &MatcherSet{}
	for _, m := range ms {
		set.Matchers = append(set.Matchers, &LabelMatcher{Type: LabelMatcher_Type(wireTypes[m.Type]), Name: m.Name, Value: m.Value})
	}
	return []*MatcherSet{set}
}

// FromMatcherSets decodes the matcher sets of a label or series call,
// dropping empty sets.
func FromMatcherSets(sets []*MatcherSet) ([][]*labels.Matcher, error) {
	out := make([][]*labels.Matcher, 0, len(sets))
	for _, set := range sets {
		ms := make([]*labels.Matcher, 0, len(set.GetMatchers()))
		for _, m := range set.GetMatchers() {
			lm, err := newMatcher(int32(m.GetType()), m.GetName(), m.GetValue())
			if err != nil {
				return nil, err
			}
			ms = append(ms, lm)
		}
		if len(ms) > 0 {
			out = append(out, ms)
		}
	}
	return out, nil
}
