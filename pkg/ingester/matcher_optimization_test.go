package ingester

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

func TestSplitMatchers(t *testing.T) {
	m := labels.MustNewMatcher
	on := &Ingester{cfg: Config{EnableMatcherOptimization: true}}
	off := &Ingester{}
	name := m(labels.MatchEqual, "__name__", "up")
	nonEmpty := m(labels.MatchRegexp, "pod", ".+")
	notEmpty := m(labels.MatchNotEqual, "job", "")
	all := m(labels.MatchRegexp, "zone", ".*")

	sel, lazy := on.splitMatchers([]*labels.Matcher{name, nonEmpty, notEmpty, all})
	if !slices.Equal(sel, []*labels.Matcher{name}) || !slices.Equal(lazy, []*labels.Matcher{nonEmpty, notEmpty}) {
		t.Errorf("select %v lazy %v, want select [name] lazy [pod=~.+ job!=\"\"]", sel, lazy)
	}
	sel, lazy = on.splitMatchers([]*labels.Matcher{nonEmpty, notEmpty})
	if !slices.Equal(sel, []*labels.Matcher{nonEmpty}) || !slices.Equal(lazy, []*labels.Matcher{notEmpty}) {
		t.Errorf("only lazy matchers: select %v lazy %v, want the first to select", sel, lazy)
	}
	if sel, lazy = off.splitMatchers([]*labels.Matcher{name, nonEmpty}); len(sel) != 2 || lazy != nil {
		t.Errorf("without the flag: select %v lazy %v, want every matcher to select", sel, lazy)
	}
}

// Queries answer the same series with -ingester.enable-matcher-optimization.
func TestMatcherOptimizationAnswersTheSame(t *testing.T) {
	var batch []prompb.TimeSeries
	for i := range 20 {
		ls := series("up", "job", "api")
		if i%2 == 0 {
			ls = append(ls, prompb.Label{Name: "pod", Value: fmt.Sprintf("pod-%d", i)})
		}
		if i%3 == 0 {
			ls = append(ls, prompb.Label{Name: "zone", Value: "a"})
		}
		batch = append(batch, floats(ls, 100, float64(i)))
	}
	answers := map[bool][]string{}
	for _, optimize := range []bool{false, true} {
		cfg := testConfig(t, t.TempDir(), newKV(t))
		cfg.EnableMatcherOptimization = optimize
		h := startHarness(t, cfg, newTestLimits(t, nil))
		h.mustPush("team-a", batch...)
		for _, ms := range [][]*prompb.LabelMatcher{
			{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}, {Type: prompb.LabelMatcher_RE, Name: "pod", Value: ".+"}},
			{{Type: prompb.LabelMatcher_EQ, Name: "job", Value: "api"}, {Type: prompb.LabelMatcher_NEQ, Name: "zone", Value: ""}, {Type: prompb.LabelMatcher_RE, Name: "pod", Value: ".*"}},
			{{Type: prompb.LabelMatcher_RE, Name: "pod", Value: ".+"}, {Type: prompb.LabelMatcher_NRE, Name: "zone", Value: ""}},
		} {
			var got []string
			for _, s := range h.query("team-a", 0, 1000, ms...) {
				got = append(got, fmt.Sprint(s.Labels))
			}
			for _, s := range h.queryChunks("team-a", 0, 1000, ms...) {
				got = append(got, fmt.Sprint(s.Labels))
			}
			answers[optimize] = append(answers[optimize], fmt.Sprint(len(got)), fmt.Sprint(got))
		}
	}
	if !slices.Equal(answers[false], answers[true]) {
		t.Fatalf("answers differ:\nwithout: %v\nwith:    %v", answers[false], answers[true])
	}
	if answers[false][0] != "20" { // 10 series with pod, by both calls
		t.Fatalf("first query found %s series over both calls, want 20", answers[false][0])
	}
}
