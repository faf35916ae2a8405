package ingester

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// A push sent straight to the ingester is validated as the distributor
// validates it: the invalid series is refused with InvalidArgument naming
// it, and the valid series of the same request are stored.
func TestPushValidatesLabels(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	err := h.push("t",
		floats(series("up", "job", "good"), float64(base), 1),
		floats(series("up", "job", "bad\xff"), float64(base), 1),
		floats([]prompb.Label{{Name: "job", Value: "b"}, {Name: "__name__", Value: "up"}, {Name: "instance", Value: ""}}, float64(base), 2),
	)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("push: %v, want InvalidArgument", err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{"not valid UTF-8", `label "job"`, `bad\\xff`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	got := h.query("t", base, base, eq("__name__", "up"))
	var names []string
	for _, ts := range got {
		names = append(names, labelsString(ts.Labels))
	}
	if strings.Join(names, " ") != `{__name__="up", job="b"} {__name__="up", job="good"}` {
		t.Errorf("stored series %v, want the two valid ones, the unsorted one sorted and without its empty label", names)
	}
	if v := testutil.ToFloat64(h.ing.metrics.discarded.WithLabelValues("label_invalid", "t")); v != 1 {
		t.Errorf("discarded label_invalid = %v, want 1", v)
	}

	for _, tc := range []struct {
		ts   prompb.TimeSeries
		want string
	}{
		{floats([]prompb.Label{{Name: "job", Value: "x"}}, float64(base), 1), "sample missing metric name"},
		{floats(series("up", "job", "a", "job", "b"), float64(base), 1), `duplicate label name: "job"`},
		{floats(series("up\xfe"), float64(base), 1), "invalid metric name"},
		{floats(series("up", "bad\xffname", "x"), float64(base), 1), "invalid label"},
	} {
		err := h.push("t", tc.ts)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
			t.Errorf("push %v: %v, want InvalidArgument mentioning %q", tc.ts.Labels, err, tc.want)
		}
	}
}

// Series stored with labels that are not UTF-8 (before the ingester
// validated them) do not fail the label and series APIs.
func TestReadAPIsAroundInvalidUTF8(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	h.mustPush("t", floats(series("up", "job", "good"), float64(base), 1))
	u, err := h.ing.getOrCreateTSDB("t")
	if err != nil {
		t.Fatal(err)
	}
	app := u.db.Appender(context.Background())
	for _, ls := range []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "bad\xff"),
		labels.FromStrings("__name__", "up", "bad\xfename", "x"),
	} {
		if _, err := app.Append(0, ls, base, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}

	ctx := ctxFor("t")
	names, err := h.conn.LabelNames(ctx, &client.LabelNamesRequest{StartMs: base, EndMs: base})
	if err != nil {
		t.Fatalf("label names: %v", err)
	}
	if got := strings.Join(names.Values, ","); got != "__name__,bad\uFFFDname,job" {
		t.Errorf("label names %q", got)
	}
	values, err := h.conn.LabelValues(ctx, &client.LabelValuesRequest{Name: "job", StartMs: base, EndMs: base})
	if err != nil {
		t.Fatalf("label values: %v", err)
	}
	if got := strings.Join(values.Values, ","); got != "bad\uFFFD,good" {
		t.Errorf("job values %q", got)
	}
	resp, err := h.conn.Series(ctx, &client.SeriesRequest{StartMs: base, EndMs: base})
	if err != nil {
		t.Fatalf("series: %v", err)
	}
	if len(resp.Series) != 3 {
		t.Errorf("got %d series, want 3", len(resp.Series))
	}
}
