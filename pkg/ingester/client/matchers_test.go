package client

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestMatcherRoundTrips(t *testing.T) {
	in := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"),
		labels.MustNewMatcher(labels.MatchNotEqual, "job", "a"),
		labels.MustNewMatcher(labels.MatchRegexp, "instance", "x.*"),
		labels.MustNewMatcher(labels.MatchNotRegexp, "zone", "b|c"),
	}
	viaProm, err := FromPromMatchers(ToPromMatchers(in))
	if err != nil {
		t.Fatal(err)
	}
	viaSets, err := FromMatcherSets(ToMatcherSets(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(viaSets) != 1 {
		t.Fatalf("got %d sets, want 1", len(viaSets))
	}
	for i, m := range in {
		if viaProm[i].String() != m.String() || viaSets[0][i].String() != m.String() {
			t.Errorf("matcher %d: %s and %s, want %s", i, viaProm[i], viaSets[0][i], m)
		}
	}
	if sets := ToMatcherSets(nil); sets != nil {
		t.Errorf("no matchers gave %v, want no set", sets)
	}
	if _, err := FromMatcherSets([]*MatcherSet{{Matchers: []*LabelMatcher{{Type: 9, Name: "a"}}}}); err == nil || err.Error() != "unknown label matcher type 9" {
		t.Errorf("bad type: %v", err)
	}
	if _, err := FromMatcherSets([]*MatcherSet{{Matchers: []*LabelMatcher{{Type: LabelMatcher_RE, Name: "a", Value: "("}}}}); err == nil {
		t.Error("a broken regexp was accepted")
	}
}
