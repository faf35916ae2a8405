package ingester

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// queryErr runs QueryStreamChunks and returns its error.
func (h *harness) queryErr(tenantID string, ms ...*prompb.LabelMatcher) error {
	h.t.Helper()
	stream, err := h.conn.QueryStreamChunks(ctxFor(tenantID), &prompb.Query{StartTimestampMs: 0, EndTimestampMs: 1000, Matchers: ms})
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func TestRegexMatcherLimits(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.EnableRegexMatcherLimits = true
	limits := newTestLimits(t, nil)
	limits.set("team-a", func(l *validation.Limits) {
		l.MaxRegexPatternLength = 20
		l.MaxLabelCardinalityForUnoptimizedRegex = 50
		l.MaxTotalLabelValueLengthForUnoptimizedRegex = 400
	})
	h := startHarness(t, cfg, limits)
	var batch []prompb.TimeSeries
	for i := range 60 {
		batch = append(batch, floats(series("up", "pod", fmt.Sprintf("pod-%03d", i), "job", "api"), 100, 1))
	}
	h.mustPush("team-a", batch...)
	h.mustPush("team-b", batch...)

	re := func(name, value string) *prompb.LabelMatcher {
		return &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: name, Value: value}
	}
	eq := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}
	for _, tc := range []struct {
		name    string
		matcher *prompb.LabelMatcher
		want    string // "" when the query is answered
	}{
		{"a set of values is not limited", re("pod", "pod-001|pod-002"), ""},
		{".+ is not limited", re("pod", ".+"), ""},
		{"a long pattern", re("job", "(a|b).*(c|i)(d|e)(f|g)?"), `regex pattern length 23 exceeds limit 20 for unoptimized regex matcher "job=~\"(a|b).*(c|i)(d|e)(f|g)?\"" (-validation.max-regex-pattern-length)`},
		{"a label of many values", re("pod", "(p|q).*(4|5)"), `label "pod" has cardinality 60 which exceeds limit 50 for unoptimized regex matcher "pod=~\"(p|q).*(4|5)\"" (-validation.max-label-cardinality-for-unoptimized-regex)`},
	} {
		err := h.queryErr("team-a", eq, tc.matcher)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want InvalidArgument with %q", tc.name, err, tc.want)
		}
	}
	// Another tenant without the limits is answered.
	if err := h.queryErr("team-b", eq, re("pod", "(p|q).*(4|5)")); err != nil {
		t.Errorf("team-b without regex limits: %v", err)
	}

	// Total length of the values: 60 values of 7 bytes, over 400.
	limits.set("team-a", func(l *validation.Limits) { l.MaxTotalLabelValueLengthForUnoptimizedRegex = 400 })
	err := h.queryErr("team-a", eq, re("pod", "(p|q).*(4|5)"))
	if want := `label "pod" has total value length 420 bytes (across 60 values) which exceeds limit 400`; !strings.Contains(fmt.Sprint(err), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
	for reason, want := range map[string]float64{"pattern_length": 1, "cardinality": 1, "total_value_length": 1} {
		if got := testutil.ToFloat64(h.ing.regexLimits.rejected.WithLabelValues("team-a", reason)); got != want {
			t.Errorf("rejected{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

func TestRegexMatcherLimitsOffByDefault(t *testing.T) {
	limits := newTestLimits(t, nil)
	limits.set("team-a", func(l *validation.Limits) { l.MaxRegexPatternLength = 1 })
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), limits)
	h.mustPush("team-a", floats(series("up", "job", "api"), 100, 1))
	err := h.queryErr("team-a", &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "job", Value: "(a|b).*(c|i)"})
	if err != nil {
		t.Fatalf("without -ingester.enable-regex-matcher-limits: %v", err)
	}
}
