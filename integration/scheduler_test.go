package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/scheduler/schedulerpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// schedulerCluster is an ingester, a distributor, two query-schedulers,
// two query-frontends enqueueing to both and two queriers pulling from
// both, each its own process, with mutual TLS on every link: the
// frontends' (-frontend.grpc-client-config), the queriers' to the
// schedulers and the frontends (-querier.frontend-client) and the
// schedulers' to the frontends (-query-scheduler.grpc-client-config).
type schedulerCluster struct {
	*cluster
	schedulers []*testkit.Cortex
	frontends  []*testkit.Cortex
	queriers   []*testkit.Cortex
}

// clientTLSFlags are a link's three file flags with leaf's certificate.
func clientTLSFlags(certs, prefix, leaf string) []string {
	return []string{
		"-" + prefix + ".tls-cert-path=" + filepath.Join(certs, leaf+".crt"),
		"-" + prefix + ".tls-key-path=" + filepath.Join(certs, leaf+".key"),
		"-" + prefix + ".tls-ca-path=" + filepath.Join(certs, "root.crt"),
	}
}

func (c *schedulerCluster) schedulerAddresses() string {
	var addrs []string
	for _, s := range c.schedulers {
		addrs = append(addrs, s.GRPCAddr)
	}
	return strings.Join(addrs, ",")
}

func (c *schedulerCluster) startFrontend(leaf, schedulers string, extra ...string) *testkit.Cortex {
	c.t.Helper()
	flags := append(mtlsFlags(c.certs), extra...)
	flags = append(flags,
		"-target=query-frontend",
		"-ring.store=memberlist", // no ring; any store but the in-memory one passes validation
		"-memberlist.bind-port=0",
		"-querier.split-queries-by-interval=2m",
		"-frontend.scheduler-address="+schedulers,
		"-frontend.scheduler-worker-concurrency=3",
		"-log.level=info",
	)
	return testkit.StartCortex(c.t, append(flags, clientTLSFlags(c.certs, "frontend.grpc-client-config", leaf)...)...)
}

func newSchedulerCluster(t *testing.T) *schedulerCluster {
	t.Helper()
	base := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	base.ingDirs = []string{filepath.Join(base.dir, "ingester-0")}
	base.client = httpClient(tlsClient(t, clientConfig(base.certs, "client")))
	c := &schedulerCluster{cluster: base}
	c.ingesters = []*testkit.Cortex{c.start("-target=ingester", "-distributor.replication-factor=1", "-ingester.lifecycler.ID=ingester-0",
		"-ingester.lifecycler.addr=127.0.0.1", "-blocks-storage.tsdb.dir="+c.ingDirs[0])}
	c.distributor = c.start("-target=distributor", "-distributor.replication-factor=1")
	for range 2 {
		flags := append(mtlsFlags(c.certs), "-target=query-scheduler", "-log.level=info")
		c.schedulers = append(c.schedulers, testkit.StartCortex(t, append(flags, clientTLSFlags(c.certs, "query-scheduler.grpc-client-config", "client")...)...))
	}
	for range 2 {
		c.frontends = append(c.frontends, c.startFrontend("client", c.schedulerAddresses()))
	}
	for i := range 2 {
		c.queriers = append(c.queriers, c.start(append([]string{
			"-target=querier",
			"-distributor.replication-factor=1",
			"-querier.scheduler-address=" + c.schedulerAddresses(),
			"-querier.id=querier-" + itoa(i),
			"-querier.worker-parallelism=2",
			"-querier.max-subquery-steps=50000",
		}, clientTLSFlags(c.certs, "querier.frontend-client", "client")...)...))
	}
	c.querier = c.queriers[0]
	for _, p := range append(append(append([]*testkit.Cortex{c.distributor, c.ingesters[0]}, c.schedulers...), c.frontends...), c.queriers...) {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, 1)
	for _, q := range c.queriers {
		c.waitActiveIngesters(q, 1)
	}
	for _, s := range c.schedulers {
		c.waitStreams(s, 2*3, 2*2)
	}
	for _, fe := range c.frontends {
		if n := metricOf(t, c.client, fe, "cortex_query_frontend_connected_schedulers"); n != 2 {
			t.Fatalf("frontend %s: cortex_query_frontend_connected_schedulers = %v, want 2", fe.HTTPAddr, n)
		}
	}
	return c
}

// waitStreams waits until scheduler s has the frontend and querier
// streams given.
func (c *schedulerCluster) waitStreams(s *testkit.Cortex, frontends, queriers float64) {
	c.t.Helper()
	s.EventuallyNil(20*time.Second, fmt.Sprintf("%v frontend and %v querier streams", frontends, queriers), func() error {
		f := metricOf(c.t, c.client, s, "cortex_query_scheduler_connected_frontend_clients")
		q := metricOf(c.t, c.client, s, "cortex_query_scheduler_connected_querier_clients")
		if f != frontends || q != queriers {
			return fmt.Errorf("frontend streams %v, querier streams %v", f, q)
		}
		return nil
	})
}

// raw runs a Prometheus API call on p.
func (c *schedulerCluster) raw(p *testkit.Cortex, tenantID, path string, params url.Values) (int, string) {
	c.t.Helper()
	return (&frontendCluster{cluster: c.cluster}).raw(p, tenantID, path, params)
}

// TestQuerySchedulerMutualTLS runs queries through two frontends, two
// schedulers and two queriers with mutual TLS on every link: answers equal
// the queriers' own; kill -9 of a scheduler in the middle of queries costs
// nothing; and a frontend presenting a certificate of a foreign CA is
// refused by the scheduler, whose log says why.
func TestQuerySchedulerMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nine processes")
	}
	t.Parallel()
	c := newSchedulerCluster(t)
	const nSeries = 20
	base := time.Now().Add(-16 * time.Minute).Truncate(time.Minute).UnixMilli()
	for step := int64(0); step < 60; step++ {
		req := &prompb.WriteRequest{}
		for i := 0; i < nSeries; i++ {
			req.Timeseries = append(req.Timeseries, series("sched_metric", i, base+step*15000, float64(i*10)+float64(step%7)))
		}
		if code, body := c.push("tenant-a", req); code != http.StatusNoContent {
			t.Fatalf("push step %d: %d %s", step, code, body)
		}
	}
	end := base + 59*15000

	// Every frontend's answers are the queriers' own, whichever scheduler
	// and querier run them.
	for _, fe := range c.frontends {
		for _, q := range []string{`sum(sched_metric)`, `sched_metric{series="3"}`, `rate(sched_metric[2m])`} {
			params := url.Values{"query": {q}, "time": {secs(end - 17000)}}
			wantCode, want := c.raw(c.queriers[0], "tenant-a", "query", params)
			gotCode, got := c.raw(fe, "tenant-a", "query", params)
			if wantCode != 200 || gotCode != 200 || got != want {
				t.Fatalf("frontend %s instant %s: %d %.300s\nquerier %d %.300s", fe.HTTPAddr, q, gotCode, got, wantCode, want)
			}
			params = url.Values{"query": {q}, "start": {secs(base + 37000)}, "end": {secs(end)}, "step": {"20"}}
			wantCode, want = c.raw(c.queriers[0], "tenant-a", "query_range", params)
			gotCode, got = c.raw(fe, "tenant-a", "query_range", params)
			if wantCode != 200 || gotCode != 200 || got != want {
				t.Fatalf("frontend %s range %s: %d %.300s\nquerier %d %.300s", fe.HTTPAddr, q, gotCode, got, wantCode, want)
			}
		}
	}
	if _, got := c.raw(c.frontends[1], "tenant-b", "query", url.Values{"query": {"sched_metric"}, "time": {secs(end)}}); strings.Contains(got, "sched_metric") {
		t.Fatalf("tenant-b sees tenant-a's series through the scheduler: %s", got)
	}
	for i, s := range c.schedulers {
		if n := metricOf(t, c.client, s, "cortex_query_scheduler_queue_duration_seconds_count"); n == 0 {
			t.Errorf("scheduler %d dispatched no query", i)
		}
	}

	// kill -9 a scheduler while queries run through it: every answer is
	// still right, the frontends retrying its queries on the other.
	heavy := func(i int) url.Values {
		return url.Values{"query": {fmt.Sprintf(`count_over_time(sched_metric{series!="%d"}[8m:10ms])`, i)},
			"start": {secs(end - 4*60000)}, "end": {secs(end)}, "step": {"5"}}
	}
	const nHeavy = 6
	got := make([]string, nHeavy)
	codes := make([]int, nHeavy)
	victim := c.schedulers[0]
	before := metricOf(t, c.client, victim, "cortex_query_scheduler_queue_duration_seconds_count")
	retries := func() float64 {
		return metricOf(t, c.client, c.frontends[0], "cortex_query_frontend_retries_sum") + metricOf(t, c.client, c.frontends[1], "cortex_query_frontend_retries_sum")
	}
	retriesBefore := retries()
	var wg sync.WaitGroup
	for i := range nHeavy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], got[i] = c.raw(c.frontends[i%2], "tenant-a", "query_range", heavy(i))
		}()
	}
	victim.Eventually(20*time.Second, "the first scheduler to dispatch a heavy query", func() bool {
		return metricOf(t, c.client, victim, "cortex_query_scheduler_queue_duration_seconds_count") > before
	})
	victim.Kill()
	wg.Wait()
	for i := range nHeavy {
		wantCode, want := c.raw(c.queriers[0], "tenant-a", "query_range", heavy(i))
		if codes[i] != 200 || wantCode != 200 || got[i] != want {
			t.Fatalf("heavy query %d with a scheduler killed: frontend %d %.300s\nquerier %d %.300s", i, codes[i], got[i], wantCode, want)
		}
	}
	t.Logf("queries retried after the kill: %v", retries()-retriesBefore)
	if retries() == retriesBefore {
		t.Errorf("no query was retried: the killed scheduler had nothing in flight")
	}
	for _, fe := range c.frontends {
		waitReady(fe, c.client)
		if code, body := c.raw(fe, "tenant-a", "query", url.Values{"query": {"sum(sched_metric)"}, "time": {secs(end)}}); code != 200 {
			t.Fatalf("frontend %s after the kill: %d %s", fe.HTTPAddr, code, body)
		}
	}

	// A frontend whose certificate comes from a foreign CA cannot enqueue,
	// and the scheduler's log says why.
	survivor := c.schedulers[1]
	stranger := c.startFrontend("stranger", survivor.GRPCAddr)
	stranger.WaitLog("frontend.grpc-client-config")
	survivor.WaitLog("TLS handshake refused")
	if !regexp.MustCompile(`which no CA in -server\.grpc-tls-ca-path=\S+ signed`).MatchString(survivor.Output()) {
		t.Fatalf("scheduler log does not say why the stranger was refused:\n%s", grepLines(survivor.Output(), "refused"))
	}
	if code, body := tryGet(c.client, "https://"+stranger.HTTPAddr+"/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "query-scheduler") {
		t.Fatalf("the stranger frontend's /ready: %d %s, want 503 naming the query-scheduler", code, body)
	}
	c.waitStreams(survivor, 2*3, 2*2)
}

// TestQuerySchedulerForeignCAToFrontend presents a foreign CA's certificate
// on the scheduler's link back to the frontends
// (-query-scheduler.grpc-client-config), which the scheduler dials only to
// answer, with a 500, a query whose querier went away with it. Here the
// querier is the test's own worker stream, which takes a query and ends:
// the frontend's gRPC server refuses the scheduler's handshake and both
// logs say why. The query is then answered by nothing the scheduler sends:
// it stays in progress on the frontend until -querier.timeout and 5s have
// passed, then ends with a 503 saying so; a querier presenting the right
// certificate answers the frontend's next query over -querier.frontend-client.
func TestQuerySchedulerForeignCAToFrontend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	t.Parallel()
	base := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	base.client = httpClient(tlsClient(t, clientConfig(base.certs, "client")))
	c := &schedulerCluster{cluster: base}
	flags := append(mtlsFlags(c.certs), "-target=query-scheduler", "-log.level=info")
	sched := testkit.StartCortex(t, append(flags, clientTLSFlags(c.certs, "query-scheduler.grpc-client-config", "stranger")...)...)
	c.schedulers = []*testkit.Cortex{sched}
	// Unanswered, a query ends -querier.timeout and 5s after it was asked.
	fe := c.startFrontend("client", sched.GRPCAddr, "-querier.timeout=1s")
	waitReady(sched, c.client)
	waitReady(fe, c.client)

	cc, err := grpc.NewClient(sched.GRPCAddr, tlsClient(t, clientConfig(c.certs, "client")).GRPCDialOption(),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// pull takes the next query from the scheduler on a new worker stream;
	// end drops the stream, as a querier killed while running the query.
	pull := func() (m *schedulerpb.SchedulerToQuerier, end func()) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		stream, err := schedulerpb.QuerierLoop(ctx, cc)
		if err == nil {
			err = stream.Send(&schedulerpb.QuerierToScheduler{QuerierID: "test-querier"})
		}
		if err == nil {
			m, err = stream.Recv()
		}
		if err != nil {
			cancel()
			t.Fatalf("pulling a query from the scheduler: %v", err)
		}
		return m, cancel
	}

	type answer struct {
		code int
		body string
		err  error
	}
	// ask sends tenant-a's query to the frontend until ctx ends.
	ask := func(ctx context.Context) <-chan answer {
		answered := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+fe.HTTPAddr+"/prometheus/api/v1/query?query=up&time=1", nil)
			req.Header.Set("X-Scope-OrgID", "tenant-a")
			resp, err := (&http.Client{Transport: c.client.Transport}).Do(req)
			if err != nil {
				answered <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			answered <- answer{code: resp.StatusCode, body: string(body)}
		}()
		return answered
	}
	ctx, giveUp := context.WithCancel(context.Background())
	defer giveUp()
	answered := ask(ctx)
	m, end := pull()
	if m.GetFrontendAddress() == "" || m.GetUserID() != "tenant-a" {
		t.Fatalf("the scheduler handed out %v, want tenant-a's query with its frontend's address", m)
	}
	end()

	fe.WaitLog("TLS handshake refused")
	if !regexp.MustCompile(`which no CA in -server\.grpc-tls-ca-path=\S+ signed`).MatchString(fe.Output()) {
		t.Fatalf("frontend log does not say why the scheduler was refused:\n%s", grepLines(fe.Output(), "refused"))
	}
	sched.WaitLog("cannot report a failed query to its frontend (-query-scheduler.grpc-client-config.tls-*)")
	if !strings.Contains(grepLines(sched.Output(), "cannot report"), "disconnected from the query-scheduler") {
		t.Fatalf("scheduler log does not name the query's error:\n%s", grepLines(sched.Output(), "cannot report"))
	}
	select {
	case a := <-answered:
		t.Fatalf("the query was answered though its report was refused: %d %s %v", a.code, a.body, a.err)
	default:
	}
	if n := metricOf(t, c.client, fe, "cortex_query_frontend_queries_in_progress"); n != 1 {
		t.Fatalf("cortex_query_frontend_queries_in_progress = %v with the query unanswered, want 1", n)
	}
	if a := <-answered; a.code != http.StatusServiceUnavailable || !strings.Contains(a.body, `"error":"no querier answered within 6s, -querier.timeout (1s) and 5s more`) {
		t.Fatalf("the unanswered query: %d %s %v, want 503 saying no querier answered within -querier.timeout and 5s", a.code, a.body, a.err)
	}
	fe.EventuallyNil(10*time.Second, "the unanswered query to end", func() error {
		if n := metricOf(t, c.client, fe, "cortex_query_frontend_queries_in_progress"); n != 0 {
			return fmt.Errorf("cortex_query_frontend_queries_in_progress = %v", n)
		}
		return nil
	})

	// The right certificate answers the frontend's next query.
	ctx, cancelNext := context.WithTimeout(context.Background(), time.Minute)
	defer cancelNext()
	done := ask(ctx)
	m, end = pull()
	defer end()
	fcc, err := grpc.NewClient(m.GetFrontendAddress(), append(tenant.ClientInterceptors(),
		tlsClient(t, clientConfig(c.certs, "client")).GRPCDialOption(),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})))...)
	if err != nil {
		t.Fatal(err)
	}
	defer fcc.Close()
	const body = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	rctx, cancel := context.WithTimeout(tenant.Inject(context.Background(), m.GetUserID()), 10*time.Second)
	defer cancel()
	if _, err := schedulerpb.QueryResult(rctx, fcc, &schedulerpb.QueryResultRequest{QueryID: m.GetQueryID(),
		HttpResponse: &schedulerpb.HTTPResponse{Code: http.StatusOK, Body: []byte(body),
			Headers: []*schedulerpb.Header{{Key: "Content-Type", Values: []string{"application/json"}}}}}); err != nil {
		t.Fatalf("answering the frontend with the right certificate: %v", err)
	}
	if a := <-done; a.code != http.StatusOK || !strings.Contains(a.body, `"resultType":"vector"`) {
		t.Fatalf("the frontend's next query: %d %s, want the querier's answer", a.code, a.body)
	}
}
