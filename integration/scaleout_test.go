package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestScaleOutMutualTLS runs the scale-out topology, each component its own
// process with mutual TLS on every server and client link and gossip over
// mutual TLS for the rings: a distributor; three ingesters in zone-a,
// zone-b and zone-c at replication factor 3 with zone awareness; two
// query-schedulers; two query-frontends enqueueing to both; three queriers
// pulling from both; three alertmanagers at replication factor 3. Queries
// through either frontend return every acknowledged sample while, one after
// the other, a scheduler, a querier and the whole of zone-a are killed with
// SIGKILL; a silence created through one alertmanager is listed and honoured
// by the others, which still notify an alert it does not match, once.
//
// A querier presenting a foreign CA's certificate on -querier.frontend-client
// is refused by a scheduler. The foreign-CA refusal of the other links is
// covered by:
//   - query-frontend -> query-scheduler (-frontend.grpc-client-config):
//     TestQuerySchedulerMutualTLS;
//   - querier -> query-frontend (-querier.frontend-client):
//     TestQueryFrontendMutualTLS;
//   - alertmanager -> alertmanager (-alertmanager.alertmanager-client):
//     TestAlertmanagerReplication;
//   - distributor and querier -> ingester (-ingester.client): the ingesters'
//     gRPC ports, like every HTTP, gRPC and gossip port of the write and
//     read path, refuse a foreign CA's client certificate in
//     TestEveryPortRefusesStrangers, the refusing server's log naming
//     -server.grpc-tls-ca-path in TestMutualTLSBinary;
//   - memberlist gossip (-memberlist.tls-*): pkg/kv/gossip's
//     TestMemberWithForeignCertificateCannotJoin;
//   - querier -> store-gateway (-querier.store-gateway-client):
//     pkg/storegateway's TestStoreGatewayGRPC;
//   - query-scheduler -> query-frontend (-query-scheduler.grpc-client-config,
//     dialled only to report a query whose querier went away):
//     TestQuerySchedulerForeignCAToFrontend.
func TestScaleOutMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts fifteen processes")
	}
	t.Parallel()
	ams := newAMCluster(t)
	certs := ams.pki.Dir
	c := &schedulerCluster{cluster: &cluster{t: t, dir: t.TempDir(), certs: certs, client: ams.client}}
	for i := range zones {
		c.startZoneIngester(i)
	}
	c.distributor = c.start("-target=distributor", "-distributor.zone-awareness-enabled=true")
	for range 2 {
		flags := append(mtlsFlags(certs), "-target=query-scheduler", "-log.level=info")
		c.schedulers = append(c.schedulers, testkit.StartCortex(t, append(flags, clientTLSFlags(certs, "query-scheduler.grpc-client-config", "client")...)...))
	}
	for range 2 {
		c.frontends = append(c.frontends, c.startFrontend("client", c.schedulerAddresses()))
	}
	startQuerier := func(id, leaf, schedulers string) *testkit.Cortex {
		return c.start(append([]string{
			"-target=querier",
			"-distributor.zone-awareness-enabled=true",
			"-querier.scheduler-address=" + schedulers,
			"-querier.id=" + id,
			"-querier.worker-parallelism=2",
		}, clientTLSFlags(certs, "querier.frontend-client", leaf)...)...)
	}
	for i := range 3 {
		c.queriers = append(c.queriers, startQuerier("querier-"+itoa(i), "client", c.schedulerAddresses()))
	}
	am := []*testkit.Cortex{ams.start(0, "alertmanager"), ams.start(1, "alertmanager"), ams.start(2, "alertmanager")}

	for _, p := range append(append(append(append([]*testkit.Cortex{c.distributor}, c.ingesters...), c.schedulers...), c.frontends...), c.queriers...) {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, 3)
	for _, q := range c.queriers {
		c.waitActiveIngesters(q, 3)
	}
	for _, s := range c.schedulers {
		c.waitStreams(s, 2*3, 3*2)
	}
	for _, p := range am {
		ams.waitRing(p, "am-0", "am-1", "am-2")
	}

	// 1. Writes through the distributor, read through each frontend.
	const nSeries = 30
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	push := func(step int64) {
		t.Helper()
		req := &prompb.WriteRequest{}
		for i := range nSeries {
			req.Timeseries = append(req.Timeseries, series("scale_metric", i, base+step*15000, float64(i)*100+float64(step)))
		}
		if code, body := c.push("tenant-s", req); code != http.StatusNoContent {
			t.Fatalf("push step %d: %d %s", step, code, body)
		}
	}
	// checkAll reads, through every frontend, every sample of steps
	// [0, steps) of every series, and their sum at the last step.
	checkAll := func(when string, steps int64) {
		t.Helper()
		end := base + (steps-1)*15000
		for _, fe := range c.frontends {
			var res promResponse
			code, body := c.raw(fe, "tenant-s", "query_range", url.Values{"query": {"scale_metric"},
				"start": {secs(base)}, "end": {secs(end)}, "step": {"15"}})
			if err := json.Unmarshal([]byte(body), &res); code != http.StatusOK || err != nil || len(res.Data.Result) != nSeries {
				t.Fatalf("%s: frontend %s range query: %d, %d series, want %d: %.300s", when, fe.HTTPAddr, code, len(res.Data.Result), nSeries, body)
			}
			for _, s := range res.Data.Result {
				i, err := strconv.Atoi(s.Metric["series"])
				if err != nil || len(s.Values) != int(steps) {
					t.Fatalf("%s: frontend %s series %v: %d points, want %d", when, fe.HTTPAddr, s.Metric, len(s.Values), steps)
				}
				for k, p := range s.Values {
					if want := strconv.FormatFloat(float64(i)*100+float64(k), 'f', -1, 64); p[1] != want {
						t.Fatalf("%s: frontend %s series %d point %d = %v, want %s", when, fe.HTTPAddr, i, k, p[1], want)
					}
				}
			}
			// sum over i of (100i + last step)
			want := strconv.Itoa(100*nSeries*(nSeries-1)/2 + nSeries*int(steps-1))
			code, body = c.raw(fe, "tenant-s", "query", url.Values{"query": {"sum(scale_metric)"}, "time": {secs(end)}})
			res = promResponse{}
			if err := json.Unmarshal([]byte(body), &res); code != http.StatusOK || err != nil || len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != want {
				t.Fatalf("%s: frontend %s sum(scale_metric): %d %.300s, want %s", when, fe.HTTPAddr, code, body, want)
			}
		}
	}
	for step := range int64(8) {
		push(step)
	}
	// A frontend's queries go to whichever scheduler stream is free first:
	// read until both schedulers have dispatched some, so that killing one
	// takes away a scheduler in use.
	c.schedulers[0].EventuallyNil(20*time.Second, "both schedulers to dispatch queries", func() error {
		checkAll("all running", 8)
		for i, s := range c.schedulers {
			if n := metricOf(t, c.client, s, "cortex_query_scheduler_queue_duration_seconds_count"); n == 0 {
				return fmt.Errorf("scheduler %d dispatched none", i)
			}
		}
		return nil
	})

	// 2. kill -9 of a scheduler: both frontends still answer, through the
	// other, and see it gone.
	c.schedulers[0].Kill()
	checkAll("a scheduler killed", 8)
	survivor := c.schedulers[1]
	for _, fe := range c.frontends {
		waitReady(fe, c.client)
	}
	c.waitStreams(survivor, 2*3, 3*2)

	// 3. kill -9 of a querier: the two left run every query.
	c.queriers[0].Kill()
	c.waitStreams(survivor, 2*3, 2*2)
	checkAll("a scheduler and a querier killed", 8)

	// 4. kill -9 of the whole of zone-a: every acknowledged sample is still
	// read, and zone-b and zone-c acknowledge new writes.
	c.ingesters[0].Kill()
	checkAll("zone-a killed", 8)
	for step := int64(8); step < 12; step++ {
		push(step)
	}
	checkAll("writes after zone-a was killed", 12)

	// A querier whose -querier.frontend-client certificate comes from a
	// foreign CA is refused by the scheduler, and both logs say why.
	c.seed = c.ingesters[1].GossipAddr() // the first seed was zone-a's ingester
	stranger := startQuerier("querier-stranger", "stranger", survivor.GRPCAddr)
	stranger.WaitLog("-querier.frontend-client")
	survivor.WaitLog("TLS handshake refused")
	if !regexp.MustCompile(`which no CA in -server\.grpc-tls-ca-path=\S+ signed`).MatchString(survivor.Output()) {
		t.Fatalf("scheduler log does not say why the stranger was refused:\n%s", grepLines(survivor.Output(), "refused"))
	}
	if n := metricOf(t, c.client, survivor, "cortex_query_scheduler_connected_querier_clients"); n != 2*2 {
		t.Fatalf("cortex_query_scheduler_connected_querier_clients = %v after the stranger tried, want 4", n)
	}
	checkAll("after the stranger", 12)

	// 5. A silence created through alertmanager 1 is listed by 2 and 3 and
	// honoured by all; an alert it does not match is notified once.
	hook := testkit.NewAlertWebhook(t)
	cfg := fmt.Sprintf("alertmanager_config: |\n%s\n", indent(hook.Config("/a"), "  "))
	if code, body := do(t, c.client, http.MethodPost, "https://"+am[0].HTTPAddr+"/api/v1/alerts", "tenant-a", cfg); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/alerts: %d %s", code, body)
	}
	// Until a replica runs tenant-a it answers the tenant's API by
	// forwarding to another, and alerts posted meanwhile never reach it
	// (alerts are not replicated state: the ruler resends them). Wait until
	// each runs the tenant, so that each lists the silence itself.
	for i, p := range am {
		p.Eventually(20*time.Second, "am-"+itoa(i)+" to run tenant-a", func() bool {
			return metricOf(t, c.client, p, "cortex_alertmanager_tenants") == 1
		})
	}
	id := ams.createSilence(am[0], "Maintenance")
	for _, p := range am[1:] {
		ams.waitSilence(p, id)
	}
	ams.postAlert(am[2], "Maintenance")
	am[2].EventuallyNil(20*time.Second, "every replica to hold back Maintenance", func() error {
		var got []float64
		for _, p := range am {
			got = append(got, metricOf(t, c.client, p, `alertmanager_notifications_suppressed_total{reason="silence",user="tenant-a"}`))
		}
		if slices.Contains(got, 0) {
			return fmt.Errorf("silenced notifications per replica %v, webhook received %v", got, hook.Received("/a"))
		}
		return nil
	})
	queries := make([]float64, len(am))
	for i, p := range am {
		queries[i] = metricOf(t, c.client, p, `alertmanager_nflog_queries_total{user="tenant-a"}`)
	}
	ams.postAlert(am[2], "Unplanned")
	hook.WaitFor(t, "/a", "Unplanned")
	// Once every replica's pipeline has checked the replicated notification
	// log for it, a second notification would have been sent already.
	for i, p := range am {
		p.Eventually(20*time.Second, "am-"+itoa(i)+"'s notification pipeline to check the log for Unplanned", func() bool {
			return metricOf(t, c.client, p, `alertmanager_nflog_queries_total{user="tenant-a"}`) > queries[i]
		})
	}
	if got := countOf(hook.Received("/a"), "Unplanned"); got != 1 {
		t.Fatalf("Unplanned notified %d times: %v", got, hook.Received("/a"))
	}
	hook.Never(t, "/a", "Maintenance")
}
