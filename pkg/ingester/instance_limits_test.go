package ingester

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

func TestInstanceLimitsMaxSeriesAndTenantsFromFlagsThenRuntime(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.InstanceLimits.MaxInMemorySeries = 2
	cfg.InstanceLimits.MaxInMemoryTenants = 1
	var runtime atomic.Pointer[InstanceLimits]
	h := startHarness(t, cfg, newTestLimits(t, nil), WithInstanceLimits(runtime.Load))

	h.mustPush("a", floats(series("s1"), float64(base), 1), floats(series("s2"), float64(base), 2))
	err := h.push("a", floats(series("s3"), float64(base), 3))
	if !strings.Contains(status.Convert(err).Message(), "max series limit reached (-ingester.instance-limits.max-series)") {
		t.Errorf("third series over -ingester.instance-limits.max-series=2: %v", err)
	}
	err = h.push("b", floats(series("s1"), float64(base), 1))
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "max tenants limit reached (-ingester.instance-limits.max-tenants)") {
		t.Errorf("second tenant over -ingester.instance-limits.max-tenants=1: %v", err)
	}
	// Samples of existing series still go in.
	h.mustPush("a", floats(series("s1"), float64(base+1), 4))

	// The runtime configuration's ingester_limits replace the flags' at once.
	runtime.Store(&InstanceLimits{MaxInMemorySeries: 10, MaxInMemoryTenants: 2})
	h.mustPush("a", floats(series("s3"), float64(base), 3))
	h.mustPush("b", floats(series("s1"), float64(base), 1))
	if got := h.ing.instance.series.Load(); got != 4 {
		t.Errorf("instance series count %d, want 4", got)
	}
}

func TestInstanceLimitsInflightPushes(t *testing.T) {
	l, err := newInstanceLimiter(InstanceLimits{MaxInflightPushRequests: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := l.admitPush()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.admitPush(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "too many inflight push requests in ingester (-ingester.instance-limits.max-inflight-push-requests)") {
		t.Errorf("second push in flight: %v", err)
	}
	done()
	done2, err := l.admitPush()
	if err != nil {
		t.Errorf("push after the first ended: %v", err)
	} else {
		done2()
	}
	if n := l.inflightPushes.Load(); n != 0 {
		t.Errorf("%d pushes counted in flight after all ended", n)
	}
}

func TestInstanceLimitsIngestionRate(t *testing.T) {
	l, err := newInstanceLimiter(InstanceLimits{MaxIngestionRate: 100}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.samplesIngested(500)
	if _, err := l.admitPush(); err != nil {
		t.Fatalf("before the rate is first computed: %v", err)
	}
	l.tick() // 500 samples in one second
	if _, err := l.admitPush(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "-ingester.instance-limits.max-ingestion-rate") {
		t.Errorf("at 500 samples/s over a limit of 100: %v", err)
	}
}

func TestInstanceLimitsValidate(t *testing.T) {
	l := InstanceLimits{MaxInMemorySeries: -1}
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "max_series (-ingester.instance-limits.max-series) must not be negative") {
		t.Errorf("Validate: %v", err)
	}
}

// -ingester.instance-limits.max-inflight-query-requests refuses every kind
// of read over the limit with Unavailable and Cortex's text; each read
// counts only while it runs.
func TestInstanceLimitsInflightQueries(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.InstanceLimits.MaxInflightQueryRequests = 1
	h := startHarness(t, cfg, newTestLimits(t, nil))
	h.mustPush("team-a", floats(series("up", "job", "a"), float64(base), 1))
	ctx := ctxFor("team-a")
	q := &prompb.Query{StartTimestampMs: base - 1, EndTimestampMs: base + 1, Matchers: []*prompb.LabelMatcher{eq("__name__", "up")}}
	calls := map[string]func() error{
		"QueryStream": func() error {
			s, err := h.conn.QueryStream(ctx, q)
			if err != nil {
				return err
			}
			return drain(s.Recv)
		},
		"QueryStreamChunks": func() error {
			s, err := h.conn.QueryStreamChunks(ctx, q)
			if err != nil {
				return err
			}
			return drainChunks(s.Recv)
		},
		"LabelNames": func() error {
			_, err := h.conn.LabelNames(ctx, &client.LabelNamesRequest{EndMs: base + 1})
			return err
		},
		"LabelValues": func() error {
			_, err := h.conn.LabelValues(ctx, &client.LabelValuesRequest{Name: "job", EndMs: base + 1})
			return err
		},
		"Series": func() error {
			_, err := h.conn.Series(ctx, &client.SeriesRequest{EndMs: base + 1})
			return err
		},
		"QueryExemplars": func() error {
			_, err := h.conn.QueryExemplars(ctx, &prompb.ReadRequest{Queries: []*prompb.Query{q}})
			return err
		},
	}
	inflight := &h.ing.instance.inflightQueries
	for name, call := range calls {
		// One at a time, each is under the limit and leaves none counted.
		if err := call(); err != nil {
			t.Fatalf("%s alone: %v", name, err)
		}
		if n := inflight.Load(); n != 0 {
			t.Fatalf("%s: %d queries counted in flight after it ended", name, n)
		}
		// With another query in flight, it is refused.
		inflight.Add(1)
		err := call()
		inflight.Add(-1)
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "cannot push: too many inflight query requests in ingester (-ingester.instance-limits.max-inflight-query-requests)") {
			t.Fatalf("%s beside another query: %v, want Unavailable with Cortex's text", name, err)
		}
	}
	want := `
# HELP cortex_ingester_max_inflight_query_requests Max number of inflight query requests in ingester.
# TYPE cortex_ingester_max_inflight_query_requests gauge
cortex_ingester_max_inflight_query_requests 1
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "cortex_ingester_max_inflight_query_requests"); err != nil {
		t.Error(err)
	}
}
