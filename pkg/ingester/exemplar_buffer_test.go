package ingester

import (
	"context"
	"strconv"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

func TestExemplarBufferFor(t *testing.T) {
	for _, tc := range []struct{ seen, limit, want int64 }{
		{0, 100000, 1024},
		{511, 100000, 1024},
		{512, 100000, 1024},
		{513, 100000, 2048},
		{3000, 100000, 8192},
		{60000, 100000, 100000},
		{10, 500, 500},
		{10, 0, 0},
	} {
		if got := exemplarBufferFor(tc.seen, tc.limit); got != tc.want {
			t.Errorf("exemplarBufferFor(%d, %d) = %d, want %d", tc.seen, tc.limit, got, tc.want)
		}
	}
}

// exemplarPush is n series, each with one sample and one exemplar at ts.
func exemplarPush(from, n int, ts int64) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, n)
	for k := range n {
		id := strconv.Itoa(from + k)
		out[k] = prompb.TimeSeries{
			Labels:    series("requests_total", "instance", id),
			Samples:   []prompb.Sample{{Timestamp: ts, Value: 1}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: id}}, Value: 1, Timestamp: ts}},
		}
	}
	return out
}

func (h *harness) exemplarBuffer(tenantID string) (size, limit int64) {
	u := h.ing.getTSDB(tenantID)
	u.tsdbConfigMu.Lock()
	defer u.tsdbConfigMu.Unlock()
	return u.tsdb.exemplarBuffer, u.tsdb.maxExemplars
}

func (h *harness) countExemplars(tenantID string) int {
	h.t.Helper()
	eq, err := h.ing.getTSDB(tenantID).db.ExemplarQuerier(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := eq.Select(base-3600_000, base+3600_000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "requests_total")})
	if err != nil {
		h.t.Fatal(err)
	}
	n := 0
	for _, r := range res {
		n += len(r.Exemplars)
	}
	return n
}

// TestExemplarBufferGrowsOnDemand: a tenant's exemplar buffer starts small
// and grows before it could overwrite an exemplar, up to the tenant's
// -ingester.max-exemplars; a restart replays every exemplar.
func TestExemplarBufferGrowsOnDemand(t *testing.T) {
	limits := newTestLimits(t, nil)
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), limits)

	h.mustPush("t", floats(series("up"), float64(base), 1))
	if size, limit := h.exemplarBuffer("t"); size != initialExemplarBuffer || limit != 100000 {
		t.Fatalf("new tenant: buffer %d of limit %d, want %d of 100000", size, limit, initialExemplarBuffer)
	}

	// One push bigger than the buffer: it grows first, nothing is lost.
	h.mustPush("t", exemplarPush(0, 3000, base)...)
	if size, _ := h.exemplarBuffer("t"); size != 8192 {
		t.Fatalf("after 3,000 exemplars: buffer %d, want 8192", size)
	}
	// Many small pushes.
	for k := range 10 {
		h.mustPush("t", exemplarPush(3000+500*k, 500, base+1000)...)
	}
	if n := h.countExemplars("t"); n != 8000 {
		t.Fatalf("%d exemplars stored, want every one of 8,000", n)
	}
	if size, _ := h.exemplarBuffer("t"); size != 16384 {
		t.Fatalf("after 8,000 exemplars: buffer %d, want 16384", size)
	}

	// After a restart the WAL's exemplars are all back, in a buffer sized
	// for them rather than for the limit.
	h.stop()
	h = startHarness(t, h.cfg, h.limits)
	h.mustPush("t", floats(series("up"), float64(base+2000), 1))
	if n := h.countExemplars("t"); n != 8000 {
		t.Fatalf("after restart: %d exemplars, want 8,000", n)
	}
	if size, _ := h.exemplarBuffer("t"); size != 16384 {
		t.Fatalf("after restart: buffer %d, want 16384", size)
	}

	// A lower limit at runtime shrinks the buffer to it.
	limits.set("t", func(l *validation.Limits) { l.MaxExemplars = 5000 })
	h.ing.applyTSDBConfigs()
	if size, limit := h.exemplarBuffer("t"); size != 5000 || limit != 5000 {
		t.Fatalf("limit 5,000: buffer %d of limit %d", size, limit)
	}
	if n := h.countExemplars("t"); n != 5000 {
		t.Fatalf("limit 5,000: %d exemplars kept, want the newest 5,000", n)
	}
}
