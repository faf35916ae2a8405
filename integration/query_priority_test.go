package integration

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestQueryPriorityThroughScheduler: with a tenant's query priorities in
// the runtime configuration, the query-frontend's priority for each query
// reaches the query-scheduler over mutual TLS, and a new priority in the
// file applies without a restart.
func TestQueryPriorityThroughScheduler(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	t.Parallel()
	runtimeFile := filepath.Join(t.TempDir(), "runtime.yaml")
	write := func(priority int) {
		t.Helper()
		content := fmt.Sprintf(`overrides:
  team-a:
    query_priority:
      enabled: true
      default_priority: 1
      priorities:
        - priority: %d
          query_attributes:
            - regex: .*slo.*
              api_type: query
`, priority)
		if err := os.WriteFile(runtimeFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(10)
	runtime := []string{"-runtime-config.file=" + runtimeFile, "-runtime-config.reload-period=100ms"}

	base := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	base.ingDirs = []string{filepath.Join(base.dir, "ingester-0")}
	base.client = httpClient(tlsClient(t, clientConfig(base.certs, "client")))
	c := &schedulerCluster{cluster: base}
	c.ingesters = []*testkit.Cortex{c.start("-target=ingester", "-distributor.replication-factor=1", "-ingester.lifecycler.ID=ingester-0",
		"-ingester.lifecycler.addr=127.0.0.1", "-blocks-storage.tsdb.dir="+c.ingDirs[0])}
	flags := append(append(mtlsFlags(c.certs), runtime...), "-target=query-scheduler", "-log.level=info")
	sched := testkit.StartCortex(t, append(flags, clientTLSFlags(c.certs, "query-scheduler.grpc-client-config", "client")...)...)
	c.schedulers = []*testkit.Cortex{sched}
	fe := c.startFrontend("client", sched.GRPCAddr, runtime...)
	q := c.start(append([]string{
		"-target=querier",
		"-distributor.replication-factor=1",
		"-querier.scheduler-address=" + sched.GRPCAddr,
		"-querier.id=querier-0",
		"-querier.worker-parallelism=1",
	}, clientTLSFlags(c.certs, "querier.frontend-client", "client")...)...)
	for _, p := range []*testkit.Cortex{c.ingesters[0], sched, fe, q} {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(q, 1)
	c.waitStreams(sched, 3, 1)

	enqueued := func(priority string) float64 {
		_, body := get(t, c.client, "https://"+sched.HTTPAddr+"/metrics")
		return metricSum(body, "cortex_request_queue_requests_total", `priority="`+priority+`",user="team-a"`)
	}
	ask := func(query string) {
		t.Helper()
		if code, body := c.raw(fe, "team-a", "query", url.Values{"query": {query}}); code != 200 {
			t.Fatalf("%s: %d %s", query, code, body)
		}
	}
	ask("sum(slo_errors)")
	ask("up")
	if n10, n1 := enqueued("10"), enqueued("1"); n10 != 1 || n1 != 1 {
		t.Fatalf(`cortex_request_queue_requests_total{user="team-a"}: priority 10 %v, priority 1 %v; want 1 each`, n10, n1)
	}

	write(20)
	fe.EventuallyNil(20*time.Second, "the new priority to apply", func() error {
		ask("sum(slo_errors)")
		if n := enqueued("20"); n == 0 {
			return fmt.Errorf("no query of priority 20 yet")
		}
		return nil
	})
}
