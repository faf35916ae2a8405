package querier

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// statusIngester is a fake ingester that also answers TSDBStatus, its
// answers by tenant cut to the request's limit.
type statusIngester struct {
	*fakeIngester
	status map[string]*client.TSDBStatusResponse
}

func (f *statusIngester) TSDBStatus(ctx context.Context, req *client.TSDBStatusRequest) (*client.TSDBStatusResponse, error) {
	if f.fail.Load() {
		return nil, status.Error(codes.Unavailable, "ingester is stopping")
	}
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, err
	}
	s, ok := f.status[id]
	if !ok {
		return &client.TSDBStatusResponse{}, nil
	}
	cut := func(l []*client.TSDBStat) []*client.TSDBStat { return l[:min(len(l), int(req.Limit))] }
	return &client.TSDBStatusResponse{
		NumSeries: s.NumSeries, NumLabelPairs: s.NumLabelPairs, ChunkCount: s.ChunkCount, MinTime: s.MinTime, MaxTime: s.MaxTime,
		SeriesCountByMetricName:     cut(s.SeriesCountByMetricName),
		LabelValueCountByLabelName:  cut(s.LabelValueCountByLabelName),
		MemoryInBytesByLabelName:    cut(s.MemoryInBytesByLabelName),
		SeriesCountByLabelValuePair: cut(s.SeriesCountByLabelValuePair),
	}, nil
}

func stats(kv ...any) []*client.TSDBStat {
	var out []*client.TSDBStat
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &client.TSDBStat{Name: kv[i].(string), Value: uint64(kv[i+1].(int))})
	}
	return out
}

// statusServer serves a querier over the given ingesters, plus one that
// does not serve TSDBStatus, at replication factor rf.
func statusServer(t *testing.T, rf int, ingesters ...*statusIngester) *httptest.Server {
	t.Helper()
	var addrs []string
	register := func(srvImpl client.IngesterServer) {
		lis := testkit.Listen(t)
		srv := grpc.NewServer(append(tenant.ServerInterceptors(), grpc.ForceServerCodecV2(grpccodec.Codec{}))...)
		client.RegisterIngesterServer(srv, srvImpl)
		grpc_health_v1.RegisterHealthServer(srv, health.NewServer())
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		addrs = append(addrs, lis.Addr().String())
	}
	for _, f := range ingesters {
		register(f)
	}
	register(newFakeIngester())
	var limits validation.Limits
	var clientCfg client.Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	limits.RegisterFlags(fs)
	clientCfg.RegisterFlags(fs)
	q, err := New(defaultConfig(), clientCfg, nil, validation.NewOverrides(limits, nil), newRing(t, rf, addrs...), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), q) })
	s := httptest.NewServer(tenant.HTTPMiddleware(true, q.Handler()))
	t.Cleanup(s.Close)
	return s
}

// At replication factor 2 each series is on two of the ingesters: the
// querier sums the answers per name and halves them; an ingester without
// TSDBStatus counts as empty.
func TestTSDBStatus(t *testing.T) {
	a := &statusIngester{fakeIngester: newFakeIngester(), status: map[string]*client.TSDBStatusResponse{
		"team-a": {NumSeries: 3, NumLabelPairs: 5, ChunkCount: 6, MinTime: 1000, MaxTime: 5000,
			SeriesCountByMetricName:     stats("up", 2, "http_requests_total", 1),
			LabelValueCountByLabelName:  stats("instance", 2, "__name__", 2, "job", 1),
			MemoryInBytesByLabelName:    stats("__name__", 60, "instance", 40, "job", 30),
			SeriesCountByLabelValuePair: stats("job=api", 3, "__name__=up", 2, "instance=a", 2)},
		"team-b": {NumSeries: 2, NumLabelPairs: 2, ChunkCount: 2, MinTime: 7000, MaxTime: 8000,
			SeriesCountByMetricName: stats("b_metric", 2)},
	}}
	b := &statusIngester{fakeIngester: newFakeIngester(), status: map[string]*client.TSDBStatusResponse{
		"team-a": {NumSeries: 3, NumLabelPairs: 5, ChunkCount: 6, MinTime: 2000, MaxTime: 9000,
			SeriesCountByMetricName:     stats("up", 2, "process_cpu_seconds_total", 1),
			LabelValueCountByLabelName:  stats("instance", 2, "__name__", 2, "job", 1),
			MemoryInBytesByLabelName:    stats("__name__", 70, "instance", 40, "job", 30),
			SeriesCountByLabelValuePair: stats("job=api", 3, "__name__=up", 2, "instance=b", 2)},
		"team-b": {NumSeries: 2, NumLabelPairs: 2, ChunkCount: 2, MinTime: 7000, MaxTime: 8000,
			SeriesCountByMetricName: stats("b_metric", 2)},
	}}
	srv := statusServer(t, 2, a, b)

	for _, tc := range []struct{ name, path, tenant, want string }{
		{"default limit", "/prometheus/api/v1/status/tsdb", "team-a",
			`{"status":"success","data":{"headStats":{"numSeries":3,"numLabelPairs":5,"chunkCount":6,"minTime":1000,"maxTime":9000},` +
				`"seriesCountByMetricName":[{"name":"up","value":2},{"name":"http_requests_total","value":1},{"name":"process_cpu_seconds_total","value":1}],` +
				`"labelValueCountByLabelName":[{"name":"__name__","value":2},{"name":"instance","value":2},{"name":"job","value":1}],` +
				`"memoryInBytesByLabelName":[{"name":"__name__","value":65},{"name":"instance","value":40},{"name":"job","value":30}],` +
				`"seriesCountByLabelValuePair":[{"name":"job=api","value":3},{"name":"__name__=up","value":2},{"name":"instance=a","value":1},{"name":"instance=b","value":1}]}}`},
		{"limit 1, legacy prefix", "/api/prom/api/v1/status/tsdb?limit=1", "team-a",
			`{"status":"success","data":{"headStats":{"numSeries":3,"numLabelPairs":5,"chunkCount":6,"minTime":1000,"maxTime":9000},` +
				`"seriesCountByMetricName":[{"name":"up","value":2}],` +
				`"labelValueCountByLabelName":[{"name":"instance","value":2}],` +
				`"memoryInBytesByLabelName":[{"name":"__name__","value":65}],` +
				`"seriesCountByLabelValuePair":[{"name":"job=api","value":3}]}}`},
		{"another tenant", "/prometheus/api/v1/status/tsdb", "team-b",
			`{"status":"success","data":{"headStats":{"numSeries":2,"numLabelPairs":2,"chunkCount":2,"minTime":7000,"maxTime":8000},` +
				`"seriesCountByMetricName":[{"name":"b_metric","value":2}],"labelValueCountByLabelName":[],"memoryInBytesByLabelName":[],"seriesCountByLabelValuePair":[]}}`},
		{"a tenant without series", "/prometheus/api/v1/status/tsdb", "team-c",
			`{"status":"success","data":{"headStats":{"numSeries":0,"numLabelPairs":0,"chunkCount":0,"minTime":9223372036854775807,"maxTime":-9223372036854775808},` +
				`"seriesCountByMetricName":[],"labelValueCountByLabelName":[],"memoryInBytesByLabelName":[],"seriesCountByLabelValuePair":[]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv, tc.path, tc.tenant)
			if code != http.StatusOK || body != tc.want {
				t.Fatalf("got %d\n%s\nwant 200\n%s", code, body, tc.want)
			}
		})
	}

	for _, tc := range []struct{ limit, want string }{
		{"0", `limit must be a positive number, got \"0\"`},
		{"x", `limit must be a positive number, got \"x\"`},
		{"10001", `limit must not exceed 10000, got 10001`},
	} {
		code, body := get(t, srv, "/prometheus/api/v1/status/tsdb?limit="+tc.limit, "team-a")
		if want := `{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": ` + tc.want + `"}`; code != http.StatusBadRequest || body != want {
			t.Errorf("limit=%s: got %d %s, want 400 %s", tc.limit, code, body, want)
		}
	}

	// A missing ingester would leave its series out: 503.
	b.fail.Store(true)
	code, body := get(t, srv, "/prometheus/api/v1/status/tsdb", "team-a")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "the TSDB status needs every ingester's answer") || !strings.Contains(body, "ingester is stopping") {
		t.Errorf("an ingester failing: got %d %s, want 503 naming it", code, body)
	}
}
