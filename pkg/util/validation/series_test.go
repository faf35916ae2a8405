package validation

import (
	"flag"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

func TestValidateLabels(t *testing.T) {
	var l Limits
	l.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	l.MaxLabelNamesPerSeries = 3
	l.MaxLabelValueLength = 12
	lbls := func(kv ...string) []prompb.Label {
		var ls []prompb.Label
		for i := 0; i+1 < len(kv); i += 2 {
			ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		ls, _ = NormalizeLabels(ls)
		return ls
	}
	for _, tc := range []struct {
		ls   []prompb.Label
		want LabelReason
		msg  string
	}{
		{lbls("__name__", "up", "job", "a"), LabelsValid, ""},
		{lbls("job", "a", "__name__", "up", "empty", ""), LabelsValid, ""},
		{lbls("__name__", "ünïcödé", "lábel", "välue"), LabelsValid, ""},
		{lbls("job", "a"), MissingMetricName, `sample missing metric name, series: "{job=\"a\"}"`},
		{lbls("__name__", "up\xff"), InvalidMetricName, `"up\xff"`},
		{lbls("__name__", "up", "job", "a\xff"), InvalidLabel, `invalid label value (not valid UTF-8) for label "job"`},
		{lbls("__name__", "up", "jo\xffb", "a"), InvalidLabel, `sample invalid label: "jo\xffb"`},
		{lbls("__name__", "up", "a", "1", "b", "2", "c", "3"), MaxLabelNames, "too many labels (actual: 4, limit: 3)"},
		{lbls("__name__", "up", "job", "1234567890abc"), LabelValueTooLong, `label name: "job" label value: "1234567890abc"`},
		{lbls("__name__", "up", "job", "a", "job", "b"), DuplicateLabelNames, `duplicate label name: "job"`},
	} {
		r, msg := ValidateLabels(&l, tc.ls)
		if r != tc.want || !strings.Contains(msg, tc.msg) {
			t.Errorf("ValidateLabels(%v) = %v %q, want %v containing %q", tc.ls, r, msg, tc.want, tc.msg)
		}
	}
	if got := InvalidLabel.String(); got != "label_invalid" {
		t.Errorf("reason name %q", got)
	}
}

// BenchmarkValidateLabels is the cost per series the ingester's Push adds.
func BenchmarkValidateLabels(b *testing.B) {
	var l Limits
	l.RegisterFlags(flag.NewFlagSet("bench", flag.PanicOnError))
	ls := []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "cluster", Value: "eu-west-1"}, {Name: "code", Value: "200"}, {Name: "instance", Value: "10.0.12.7:9100"}, {Name: "job", Value: "api-server"}, {Name: "method", Value: "GET"}, {Name: "namespace", Value: "production"}, {Name: "pod", Value: "api-server-7d9f8b6c4-x2k9p"}}
	b.ReportAllocs()
	for b.Loop() {
		var r LabelReason
		ls, _ = NormalizeLabels(ls)
		if r, _ = ValidateLabels(&l, ls); r != LabelsValid {
			b.Fatal(r)
		}
	}
}
