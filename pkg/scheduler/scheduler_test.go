package scheduler_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/frontend"
	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier/worker"
	"github.com/cortex-tls/cortex/pkg/scheduler"
	"github.com/cortex-tls/cortex/pkg/scheduler/schedulerpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// serve runs a plaintext gRPC server on loopback with register's services.
func serve(t testing.TB, register func(*grpc.Server)) string {
	t.Helper()
	lis := testkit.Listen(t)
	srv := grpc.NewServer(append(tenant.ServerInterceptors(), grpc.ForceServerCodecV2(grpccodec.Codec{}))...)
	register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func start(t testing.TB, s services.Service) {
	t.Helper()
	if err := services.StartAndAwaitRunning(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), s) })
}

func flagDefaults(register func(*flag.FlagSet)) {
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	register(fs)
	_ = fs.Parse(nil)
}

// topology is a scheduler, a frontend enqueueing to it and a querier
// worker pulling from it, over plaintext loopback gRPC.
type topology struct {
	sched     *scheduler.Scheduler
	schedReg  *prometheus.Registry
	front     *frontend.Frontend
	querierID string
	// schedulerAddr is the scheduler's gRPC address.
	schedulerAddr string
	// seen are the requests the querier's API got.
	mu   sync.Mutex
	seen []*http.Request
}

func newTopology(t testing.TB, handler http.HandlerFunc, opts ...scheduler.Option) *topology {
	t.Helper()
	return newTopologyWith(t, handler, func(*frontend.Config) {}, opts...)
}

func newTopologyWith(t testing.TB, handler http.HandlerFunc, frontendCfg func(*frontend.Config), opts ...scheduler.Option) *topology {
	t.Helper()
	return newTopologyFrontendOpts(t, handler, frontendCfg, nil, opts...)
}

// newTopologyFrontendOpts is newTopologyWith whose frontend also takes
// frontendOpts.
func newTopologyFrontendOpts(t testing.TB, handler http.HandlerFunc, frontendCfg func(*frontend.Config), frontendOpts []frontend.Option, opts ...scheduler.Option) *topology {
	t.Helper()
	top := &topology{schedReg: prometheus.NewRegistry(), querierID: "querier-1"}
	var scfg scheduler.Config
	flagDefaults(scfg.RegisterFlags)
	s, err := scheduler.New(scfg, nil, nil, top.schedReg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	top.sched = s
	schedAddr := serve(t, func(g *grpc.Server) {
		schedulerpb.RegisterSchedulerForFrontendServer(g, s)
		schedulerpb.RegisterSchedulerForQuerierServer(g, s)
	})
	start(t, s)
	top.schedulerAddr = schedAddr

	var fcfg frontend.Config
	flagDefaults(fcfg.RegisterFlags)
	fcfg.Scheduler.SchedulerAddress = schedAddr
	fcfg.Scheduler.WorkerConcurrency = 2
	fcfg.MaxRetries = 2
	frontendCfg(&fcfg)
	// The frontend's own gRPC server, where the answers come.
	lis := testkit.Listen(t)
	f, err := frontend.New(fcfg, nil, nil, nil, append(frontendOpts, frontend.WithSchedulers(fcfg.Scheduler, nil, lis.Addr().String()))...)
	if err != nil {
		t.Fatal(err)
	}
	top.front = f
	srv := grpc.NewServer(append(tenant.ServerInterceptors(), grpc.ForceServerCodecV2(grpccodec.Codec{}))...)
	schedulerpb.RegisterFrontendForQuerierServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	start(t, f)

	var wcfg worker.Config
	flagDefaults(wcfg.RegisterFlags)
	wcfg.SchedulerAddress = schedAddr
	wcfg.Parallelism = 2
	wcfg.QuerierID = top.querierID
	w, err := worker.New(wcfg, nil, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		top.mu.Lock()
		top.seen = append(top.seen, r)
		top.mu.Unlock()
		handler(rw, r)
	}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	testkit.Eventually(t, 10*time.Second, "the frontend and the querier connected to the scheduler", func() bool {
		return f.CheckReady(context.Background()) == nil && f.ConnectedSchedulerStreams() == fcfg.Scheduler.WorkerConcurrency &&
			s.ConnectedQuerierWorkers() == 2
	})
	return top
}

func echoTenant(w http.ResponseWriter, r *http.Request) {
	id, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(w, "%s %s", id, r.URL.RequestURI())
}

func query(tenantID, url string, headers ...string) *frontendpb.HTTPRequest {
	h := http.Header{tenant.HeaderName: {tenantID}}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return &frontendpb.HTTPRequest{Method: "GET", Url: url, Headers: frontendpb.ToHeaders(h)}
}

// TestQueryThroughScheduler: the frontend's queries reach the querier
// through the scheduler, as their tenant, and the answers come back; the
// scheduler's metrics count the streams.
func TestQueryThroughScheduler(t *testing.T) {
	top := newTopology(t, echoTenant)
	for i, tn := range []string{"tenant-a", "tenant-b", "tenant-a"} {
		url := fmt.Sprintf("/prometheus/api/v1/query?query=up&n=%d", i)
		resp, err := top.front.RoundTrip(context.Background(), tn, query(tn, url))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != 200 || string(resp.Body) != tn+" "+url {
			t.Fatalf("query %d: %d %q, want 200 %q", i, resp.Code, resp.Body, tn+" "+url)
		}
	}
	if err := testutil.GatherAndCompare(top.schedReg, strings.NewReader(`
# HELP cortex_query_scheduler_connected_frontend_clients Number of query-frontend worker clients currently connected to the query-scheduler.
# TYPE cortex_query_scheduler_connected_frontend_clients gauge
cortex_query_scheduler_connected_frontend_clients 2
# HELP cortex_query_scheduler_connected_querier_clients Number of querier worker clients currently connected to the query-scheduler.
# TYPE cortex_query_scheduler_connected_querier_clients gauge
cortex_query_scheduler_connected_querier_clients 2
`), "cortex_query_scheduler_connected_frontend_clients", "cortex_query_scheduler_connected_querier_clients"); err != nil {
		t.Fatal(err)
	}
	if n := histogramCount(t, top.schedReg, "cortex_query_scheduler_queue_duration_seconds"); n != 3 {
		t.Fatalf("cortex_query_scheduler_queue_duration_seconds counted %v queries, want 3", n)
	}
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// TestNoCredentialsReachQueriers: Authorization and Cookie headers a
// frontend sends are dropped by the scheduler.
func TestNoCredentialsReachQueriers(t *testing.T) {
	top := newTopology(t, echoTenant)
	resp, err := top.front.RoundTrip(context.Background(), "tenant-a", query("tenant-a", "/api/v1/labels",
		"Authorization", "Bearer secret", "Cookie", "session=secret", "Proxy-Authorization", "Basic c2VjcmV0", "X-Dashboard", "kept"))
	if err != nil || resp.Code != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	top.mu.Lock()
	defer top.mu.Unlock()
	r := top.seen[len(top.seen)-1]
	for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("the querier got %s: %q", h, v)
		}
	}
	if r.Header.Get("X-Dashboard") != "kept" {
		t.Errorf("other headers must pass: %v", r.Header)
	}
}

// TestTenantRefused: a tenant the frontend's identity may not act for is
// refused by the scheduler and never reaches a querier.
func TestTenantRefused(t *testing.T) {
	top := newTopology(t, echoTenant, scheduler.WithTenantCheck(func(_ context.Context, tn string) error {
		if tn == "tenant-x" {
			return status.Error(codes.PermissionDenied, `client "frontend" may not act for tenant "tenant-x"`)
		}
		return nil
	}))
	_, err := top.front.RoundTrip(context.Background(), "tenant-x", query("tenant-x", "/api/v1/labels"))
	if err == nil || !strings.Contains(err.Error(), `may not act for tenant "tenant-x"`) {
		t.Fatalf("refused tenant: %v", err)
	}
	top.mu.Lock()
	defer top.mu.Unlock()
	if len(top.seen) != 0 {
		t.Fatalf("a refused tenant's query reached the querier: %v", top.seen[0].URL)
	}
}

// TestCancelReachesQuerier: a query canceled on the frontend is canceled
// on the querier running it.
func TestCancelReachesQuerier(t *testing.T) {
	started := make(chan struct{}, 1)
	canceled := make(chan struct{}, 1)
	top := newTopology(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		canceled <- struct{}{}
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := top.front.RoundTrip(ctx, "tenant-a", query("tenant-a", "/api/v1/query?query=slow"))
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled query: %v", err)
	}
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the querier still runs a query its frontend canceled")
	}
}

// TestQueueBound: the scheduler refuses a tenant's queries beyond
// -frontend.max-outstanding-requests-per-tenant (100 by default) with 429.
func TestQueueBound(t *testing.T) {
	release := make(chan struct{})
	top := newTopology(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, "ok")
	})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Two run (parallelism 2), 100 wait, the next is refused.
	for range 102 {
		go func() { _, _ = top.front.RoundTrip(ctx, "tenant-a", query("tenant-a", "/api/v1/labels")) }()
	}
	testkit.Eventually(t, 10*time.Second, "100 queued queries", func() bool { return top.sched.QueueLen("tenant-a") == 100 })
	_, err := top.front.RoundTrip(ctx, "tenant-a", query("tenant-a", "/api/v1/labels"))
	if err == nil || !strings.Contains(err.Error(), "too many outstanding requests") {
		t.Fatalf("query beyond the bound: %v", err)
	}
	if v := testkit.MetricSum(t, top.schedReg, "cortex_query_scheduler_discarded_requests_total", "user", "tenant-a"); v != 1 {
		t.Fatalf("cortex_query_scheduler_discarded_requests_total{user=\"tenant-a\"} = %v, want 1", v)
	}
	if v := testkit.MetricSum(t, top.schedReg, "cortex_query_scheduler_queue_length", "user", "tenant-a"); v != 100 {
		t.Fatalf("cortex_query_scheduler_queue_length{user=\"tenant-a\"} = %v, want 100", v)
	}
}

// TestSchedulerStopFailsQueued: the queries queued in a scheduler that
// stops, and those its queriers run, fail on the frontend at once (which
// would retry them on another scheduler; here it tries once).
func TestSchedulerStopFailsQueued(t *testing.T) {
	release := make(chan struct{})
	top := newTopologyWith(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, func(c *frontend.Config) { c.MaxRetries = 1 })
	defer close(release)
	errc := make(chan error, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 4 {
		go func() {
			_, err := top.front.RoundTrip(ctx, "tenant-a", query("tenant-a", "/api/v1/labels"))
			errc <- err
		}()
	}
	testkit.Eventually(t, 10*time.Second, "2 queued queries", func() bool { return top.sched.QueueLen("tenant-a") == 2 })
	if err := services.StopAndAwaitTerminated(context.Background(), top.sched); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		err := <-errc
		if err == nil || !strings.Contains(err.Error(), "query-scheduler") {
			t.Fatalf("a query of a stopped scheduler: %v, want a failure naming the query-scheduler", err)
		}
	}
}

// TestRetryOnTooManyOutstandingRequests: with
// -frontend.retry-on-too-many-outstanding-requests, a query every
// scheduler refuses for its tenant's bound is enqueued
// -frontend.scheduler-worker-concurrency + 1 times before the 429; without
// it, once.
func TestRetryOnTooManyOutstandingRequests(t *testing.T) {
	for _, c := range []struct {
		retry bool
		tries float64
	}{{false, 1}, {true, 3}} {
		t.Run(fmt.Sprint("retry=", c.retry), func(t *testing.T) {
			var addrs []string
			var regs []*prometheus.Registry
			for range 2 {
				var scfg scheduler.Config
				flagDefaults(scfg.RegisterFlags)
				reg := prometheus.NewRegistry()
				s, err := scheduler.New(scfg, nil, nil, reg, scheduler.WithMaxOutstanding(func(string) int { return 0 }))
				if err != nil {
					t.Fatal(err)
				}
				addrs = append(addrs, serve(t, func(g *grpc.Server) { schedulerpb.RegisterSchedulerForFrontendServer(g, s) }))
				regs = append(regs, reg)
				start(t, s)
			}
			var fcfg frontend.Config
			flagDefaults(fcfg.RegisterFlags)
			fcfg.Scheduler.SchedulerAddress = strings.Join(addrs, ",")
			fcfg.Scheduler.WorkerConcurrency = 2
			fcfg.Scheduler.RetryOnTooManyOutstandingRequests = c.retry
			f, err := frontend.New(fcfg, nil, nil, nil, frontend.WithSchedulers(fcfg.Scheduler, nil, "127.0.0.1:1"))
			if err != nil {
				t.Fatal(err)
			}
			start(t, f)
			testkit.Eventually(t, 10*time.Second, "4 scheduler streams", func() bool { return f.ConnectedSchedulerStreams() == 4 })
			_, err = f.RoundTrip(context.Background(), "tenant-a", query("tenant-a", "/api/v1/labels"))
			if err == nil || !strings.Contains(err.Error(), "too many outstanding requests") {
				t.Fatalf("query every scheduler refuses: %v", err)
			}
			tries := 0.0
			for _, reg := range regs {
				tries += testkit.MetricSum(t, reg, "cortex_query_scheduler_discarded_requests_total", "user", "tenant-a")
			}
			if tries != c.tries {
				t.Fatalf("the query was enqueued %v times, want %v", tries, c.tries)
			}
		})
	}
}

// TestNotifyQuerierShutdownRoute: the scheduler serves
// NotifyQuerierShutdown, which a querier worker stopping calls.
func TestNotifyQuerierShutdownRoute(t *testing.T) {
	top := newTopology(t, echoTenant)
	cc, err := grpc.NewClient("passthrough:///"+top.schedulerAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := schedulerpb.NotifyQuerierShutdown(context.Background(), cc, top.querierID); err != nil {
		t.Fatalf("NotifyQuerierShutdown: %v", err)
	}
}
