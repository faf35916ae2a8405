package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestHATracker runs two distributors sharing the elected replicas over a
// memberlist KV with mutual TLS gossip: two Prometheus replicas of one
// cluster push the same series, one through each distributor; only the
// elected replica's samples are stored, without the replica label, and
// once it falls silent for the failover timeout the other one's are. The
// status page shows every tenant: an identity bound to one tenant by
// -auth.client-tenants-file gets 403.
func TestHATracker(t *testing.T) {
	pki := testkit.NewPKI(t, "root")
	pki.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(t, "team-ha", certgen.Options{DNSNames: []string{"localhost"}})
	certs := pki.Dir
	// "client" is the identity of the processes' own calls.
	allow := filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(allow, []byte("clients:\n  client: ['*']\n  team-ha: [team-ha]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: t.TempDir(), certs: certs}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	c.ingDirs = []string{filepath.Join(c.dir, "ingester-0")}
	c.ingesters = []*testkit.Cortex{c.start(
		"-target=ingester",
		"-distributor.replication-factor=1",
		"-ingester.lifecycler.ID=ingester-0",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+c.ingDirs[0],
	)}
	haFlags := []string{
		"-target=distributor",
		"-distributor.replication-factor=1",
		"-distributor.ha-tracker.enable=true",
		"-distributor.ha-tracker.enable-for-all-users=true",
		"-distributor.ha-tracker.store=memberlist",
		"-distributor.ha-tracker.update-timeout=1s",
		"-distributor.ha-tracker.update-timeout-jitter-max=0s",
		"-distributor.ha-tracker.failover-timeout=3s",
		"-auth.client-tenants-file=" + allow,
	}
	distA := c.start(haFlags...)
	distB := c.start(haFlags...)
	c.querier = c.start("-target=querier", "-distributor.replication-factor=1")
	for _, p := range []*testkit.Cortex{c.ingesters[0], distA, distB, c.querier} {
		waitReady(p, c.client)
	}
	for _, p := range []*testkit.Cortex{distA, distB, c.querier} {
		c.waitActiveIngesters(p, 1)
	}

	haFailover(t, c, distA, distB, "team-ha")

	tenantClient := httpClient(tlsClient(t, clientConfig(certs, "team-ha")))
	code, page := do(t, tenantClient, http.MethodGet, "https://"+distA.HTTPAddr+"/distributor/ha_tracker", "", nil)
	if code != http.StatusForbidden || !strings.Contains(page, `only identities given "*" in -auth.client-tenants-file`) {
		t.Fatalf("an identity bound to one tenant reading /distributor/ha_tracker: %d %s, want 403", code, page)
	}
}

// haFailover pushes one series as two replicas of cluster "prom" of
// tenantID, replica-0 through distA and replica-1 through distB, which
// share the elections: replica-0 is elected and stored without the
// replica label, replica-1 answered 202; once replica-0 is silent for the
// failover timeout, replica-1 is elected and distA follows.
func haFailover(t *testing.T, c *cluster, distA, distB *testkit.Cortex, tenantID string) {
	t.Helper()
	push := func(p *testkit.Cortex, replica string, v float64) int {
		t.Helper()
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "ha_up"}, {Name: "__replica__", Value: replica}, {Name: "cluster", Value: "prom"}, {Name: "job", Value: "node"}},
			Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: v}},
		}}}
		raw, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r, _ := http.NewRequest("POST", "https://"+p.HTTPAddr+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
		r.Header.Set("Content-Encoding", "snappy")
		r.Header.Set("Content-Type", "application/x-protobuf")
		r.Header.Set("X-Scope-OrgID", tenantID)
		resp, err := c.client.Do(r)
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusAccepted && len(b) != 0 {
			t.Fatalf("202 with a body: %q", b)
		}
		return resp.StatusCode
	}

	if code := push(distA, "replica-0", 1); code != http.StatusNoContent {
		t.Fatalf("replica-0 through distributor A: %d, want 204", code)
	}
	// Distributor B learns the election by gossip.
	distB.EventuallyNil(20*time.Second, "distributor B's /distributor/ha_tracker to show replica-0 elected", func() error {
		code, page := tryGet(c.client, "https://"+distB.HTTPAddr+"/distributor/ha_tracker")
		if code != http.StatusOK || !strings.Contains(page, "<td>"+tenantID+"</td><td>prom</td><td>replica-0</td>") {
			return fmt.Errorf("%d %s", code, page)
		}
		return nil
	})
	if code := push(distB, "replica-1", 2); code != http.StatusAccepted {
		t.Fatalf("replica-1 through distributor B: %d, want 202", code)
	}
	if got := metricOf(t, c.client, distB, `cortex_distributor_deduped_samples_total{cluster="prom",user="`+tenantID+`"}`); got != 1 {
		t.Fatalf("distributor B's deduped samples: %v, want 1", got)
	}

	// One series, without the replica label, with replica-0's value.
	result := func() (string, error) {
		out, err := c.tryQuery(tenantID, "query", url.Values{"query": {`ha_up`}})
		if err != nil {
			return "", err
		}
		var s []string
		for _, r := range out.Data.Result {
			s = append(s, fmt.Sprintf("%v=%v", r.Metric, r.Value[1]))
		}
		return strings.Join(s, ";"), nil
	}
	want := "map[__name__:ha_up cluster:prom job:node]=1"
	c.querier.EventuallyNil(20*time.Second, "ha_up to be "+want, func() error {
		got, err := result()
		if err != nil || got != want {
			return fmt.Errorf("%q, %v", got, err)
		}
		return nil
	})

	// replica-0 falls silent: within the failover timeout replica-1 is
	// elected and its samples stored.
	distB.EventuallyNil(20*time.Second, "replica-1 to be elected after the failover timeout", func() error {
		if code := push(distB, "replica-1", 2); code != http.StatusNoContent {
			return fmt.Errorf("push answered %d", code)
		}
		return nil
	})
	want = "map[__name__:ha_up cluster:prom job:node]=2"
	c.querier.EventuallyNil(20*time.Second, "ha_up to be "+want, func() error {
		got, err := result()
		if err != nil || got != want {
			return fmt.Errorf("%q, %v", got, err)
		}
		return nil
	})
	// Distributor A follows: its page shows replica-1 elected.
	distA.EventuallyNil(20*time.Second, "distributor A's /distributor/ha_tracker to show replica-1 elected", func() error {
		code, page := tryGet(c.client, "https://"+distA.HTTPAddr+"/distributor/ha_tracker")
		if code != http.StatusOK || !strings.Contains(page, "<td>"+tenantID+"</td><td>prom</td><td>replica-1</td>") {
			return fmt.Errorf("%d %s", code, page)
		}
		return nil
	})
	if code := push(distA, "replica-0", 1); code != http.StatusAccepted {
		t.Fatalf("replica-0 through distributor A after the failover: %d, want 202", code)
	}
}
