package querier

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// exemplarIngester is a fake ingester that also answers QueryExemplars from
// its tenants' series' exemplars.
type exemplarIngester struct {
	*fakeIngester
	exemplars map[string][]prompb.TimeSeries // by tenant
}

func (f *exemplarIngester) QueryExemplars(ctx context.Context, req *prompb.ReadRequest) (*prompb.QueryResult, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, err
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := &prompb.QueryResult{}
	for _, ts := range f.exemplars[id] {
		ls := labelsOf(ts)
		var keep []prompb.Exemplar
		for _, q := range req.Queries {
			if !matchAll(ls, protoMatchers(q.Matchers)) {
				continue
			}
			for _, e := range ts.Exemplars {
				if e.Timestamp >= q.StartTimestampMs && e.Timestamp <= q.EndTimestampMs {
					keep = append(keep, e)
				}
			}
			break
		}
		if len(keep) > 0 {
			out.Timeseries = append(out.Timeseries, &prompb.TimeSeries{Labels: ts.Labels, Exemplars: keep})
		}
	}
	return out, nil
}

func exemplarOf(ts int64, v float64, traceID string) prompb.Exemplar {
	return prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: traceID}}, Value: v, Timestamp: ts}
}

// exemplarServer serves a querier over two exemplar ingesters at
// replication factor 1, where a query needs the answers of both: the merge
// sees every exemplar of both, as it does whenever two ingesters hold a
// series (replicas, or a series that moved in the ring).
func exemplarServer(t *testing.T, a, b []prompb.TimeSeries) *httptest.Server {
	t.Helper()
	return exemplarServerWith(t, nil, nil, a, b)
}

// exemplarServerWith is exemplarServer with the tenants' limits changed by
// limitsFn and the querier's clock set to now, when given.
func exemplarServerWith(t *testing.T, limitsFn func(*validation.Limits), now func() time.Time, a, b []prompb.TimeSeries) *httptest.Server {
	t.Helper()
	return exemplarServerBlocking(t, limitsFn, now, defaultConfig(), nil, a, b)
}

// exemplarServerBlocking is exemplarServerWith with the querier's cfg,
// whose ingesters answer QueryExemplars once block is closed, when it is
// not nil.
func exemplarServerBlocking(t *testing.T, limitsFn func(*validation.Limits), now func() time.Time, cfg Config, block chan struct{}, a, b []prompb.TimeSeries) *httptest.Server {
	t.Helper()
	var addrs []string
	for _, ex := range [][]prompb.TimeSeries{a, b} {
		f := &exemplarIngester{fakeIngester: newFakeIngester(), exemplars: map[string][]prompb.TimeSeries{"team-a": ex}}
		f.block = block
		lis := testkit.Listen(t)
		srv := grpc.NewServer(append(tenant.ServerInterceptors(), grpc.ForceServerCodecV2(grpccodec.Codec{}))...)
		client.RegisterIngesterServer(srv, f)
		grpc_health_v1.RegisterHealthServer(srv, health.NewServer())
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		addrs = append(addrs, lis.Addr().String())
	}
	var limits validation.Limits
	var clientCfg client.Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	limits.RegisterFlags(fs)
	clientCfg.RegisterFlags(fs)
	if limitsFn != nil {
		limitsFn(&limits)
	}
	q, err := New(cfg, clientCfg, nil, validation.NewOverrides(limits, nil), newRing(t, 1, addrs...), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if now != nil {
		q.queryable.now = now
	}
	if err := services.StartAndAwaitRunning(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), q) })
	s := httptest.NewServer(tenant.HTTPMiddleware(true, q.Handler()))
	t.Cleanup(s.Close)
	return s
}

func TestQueryExemplars(t *testing.T) {
	lbls := func(job string) []prompb.Label {
		return prompb.FromLabels(labels.FromStrings("__name__", "requests_total", "job", job), nil)
	}
	// Both replicas hold the first two exemplars of job a; each holds one
	// the other missed (a push that reached one replica only).
	srv := exemplarServer(t,
		[]prompb.TimeSeries{
			{Labels: lbls("a"), Exemplars: []prompb.Exemplar{exemplarOf(t0, 1, "t1"), exemplarOf(t0+1500, 2.5, "t2"), exemplarOf(t0+3000, 3, "t3")}},
			{Labels: lbls("b"), Exemplars: []prompb.Exemplar{exemplarOf(t0+10, 7, "b1")}},
		},
		[]prompb.TimeSeries{
			{Labels: lbls("a"), Exemplars: []prompb.Exemplar{exemplarOf(t0, 1, "t1"), exemplarOf(t0+1500, 2.5, "t2"), exemplarOf(t0+2000, 4, "t4")}},
		},
	)
	for _, tc := range []struct{ name, path, want string }{
		{"merged across replicas", `/prometheus/api/v1/query_exemplars?query=requests_total{job="a"}&start=1700000000&end=1700000010`,
			`{"status":"success","data":[{"seriesLabels":{"__name__":"requests_total","job":"a"},"exemplars":[` +
				`{"labels":{"trace_id":"t1"},"value":"1","timestamp":1700000000},` +
				`{"labels":{"trace_id":"t2"},"value":"2.5","timestamp":1700000001.500},` +
				`{"labels":{"trace_id":"t4"},"value":"4","timestamp":1700000002},` +
				`{"labels":{"trace_id":"t3"},"value":"3","timestamp":1700000003}]}]}`},
		{"time range", `/api/prom/api/v1/query_exemplars?query=requests_total&start=1700000000.010&end=1700000001.5`,
			`{"status":"success","data":[` +
				`{"seriesLabels":{"__name__":"requests_total","job":"a"},"exemplars":[{"labels":{"trace_id":"t2"},"value":"2.5","timestamp":1700000001.500}]},` +
				`{"seriesLabels":{"__name__":"requests_total","job":"b"},"exemplars":[{"labels":{"trace_id":"b1"},"value":"7","timestamp":1700000000.010}]}]}`},
		{"every selector of an expression", `/prometheus/api/v1/query_exemplars?query=rate(requests_total{job="b"}[1m])/on()nothing&start=1700000000&end=1700000010`,
			`{"status":"success","data":[{"seriesLabels":{"__name__":"requests_total","job":"b"},"exemplars":[{"labels":{"trace_id":"b1"},"value":"7","timestamp":1700000000.010}]}]}`},
		{"no match", `/prometheus/api/v1/query_exemplars?query=nothing`, `{"status":"success","data":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv, tc.path, "team-a")
			if code != http.StatusOK || body != tc.want {
				t.Fatalf("got %d\n%s\nwant 200\n%s", code, body, tc.want)
			}
		})
	}
	t.Run("another tenant", func(t *testing.T) {
		code, body := get(t, srv, "/prometheus/api/v1/query_exemplars?query=requests_total", "team-b")
		if want := `{"status":"success","data":[]}`; code != http.StatusOK || body != want {
			t.Fatalf("got %d %s", code, body)
		}
	})
}
