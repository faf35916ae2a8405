package distributor

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// A series whose labels, as encoded, exceed -validation.max-labels-size-bytes
// is refused with 400 naming it and the limit, its samples counted as
// discarded; the request's other series are written.
func TestMaxLabelsSizeBytes(t *testing.T) {
	now := nowMs()
	// Encoded: __name__="foo" is 15 bytes, job="jjjjjjjjjj" 17; the
	// good series' __name__="good" 16 and job="j" 8.
	bad := series([]int64{now, now + 1}, "__name__", "foo", "job", strings.Repeat("j", 10))
	good := series([]int64{now}, "__name__", "good", "job", "j")
	c := newCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxLabelsSizeBytes = 30 }})
	r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{bad, good}})
	b := body(t, r)
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("got %d %q, want 400", r.StatusCode, b)
	}
	want := `labels size bytes exceeded for metric (actual: 32, limit: 30, set by -validation.max-labels-size-bytes or max_labels_size_bytes) metric: "foo{job=\"jjjjjjjjjj\"}"`
	if !strings.Contains(b, want) {
		t.Errorf("body %q\ndoes not contain %q", b, want)
	}
	if got := c.metric("cortex_discarded_samples_total", "reason", "labels_size_bytes_exceeded", "user", testTenant); got != 2 {
		t.Errorf("cortex_discarded_samples_total{reason=\"labels_size_bytes_exceeded\"} = %v, want 2", got)
	}
	c.waitStored(seriesString(good.Labels), 3)
}
