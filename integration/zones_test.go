package integration

import (
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

var zones = []string{"zone-a", "zone-b", "zone-c"}

// newZoneCluster is a distributor, a querier and three ingesters, one in
// each zone, every process with mutual TLS, replication factor 3 and zone
// awareness.
func newZoneCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	for i, zone := range zones {
		c.ingDirs = append(c.ingDirs, filepath.Join(c.dir, "ingester-"+itoa(i)))
		c.ingesters = append(c.ingesters, c.start(
			"-target=ingester",
			"-ingester.lifecycler.ID=ingester-"+itoa(i),
			"-ingester.lifecycler.addr=127.0.0.1",
			"-ingester.availability-zone="+zone,
			"-distributor.zone-awareness-enabled=true",
			"-blocks-storage.tsdb.dir="+c.ingDirs[i],
		))
	}
	c.distributor = c.start("-target=distributor", "-distributor.zone-awareness-enabled=true")
	c.querier = c.start("-target=querier", "-distributor.zone-awareness-enabled=true")
	for _, p := range append([]*testkit.Cortex{c.distributor, c.querier}, c.ingesters...) {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, 3)
	c.waitActiveIngesters(c.querier, 3)
	return c
}

var ringZone = regexp.MustCompile(`"id":"(ingester-\d)"[^}]*?"zone":"([^"]*)"`)

// TestZoneAwareReplicationLosingAZone writes through a zone-aware ring of
// three ingesters in three zones, kills the whole of zone-a with SIGKILL,
// and checks that every acknowledged sample is still read and that writes
// are still acknowledged by the two zones left.
func TestZoneAwareReplicationLosingAZone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	t.Parallel()
	c := newZoneCluster(t)

	// The distributor's ring holds each ingester in its own zone.
	page, err := c.ringPage(c.distributor)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range ringZone.FindAllStringSubmatch(page, -1) {
		got[m[1]] = m[2]
	}
	for i, zone := range zones {
		if got["ingester-"+itoa(i)] != zone {
			t.Fatalf("ring page zones %v, want ingester-%d in %s:\n%s", got, i, zone, page)
		}
	}

	const nSeries = 40
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	pushStep := func(step int64) {
		t.Helper()
		req := &prompb.WriteRequest{}
		for i := range nSeries {
			req.Timeseries = append(req.Timeseries, series("zone_metric", i, base+step*15000, float64(i)*100+float64(step)))
		}
		if code, body := c.push("tenant-z", req); code != http.StatusNoContent {
			t.Fatalf("push step %d: %d %s", step, code, body)
		}
	}
	// checkAll reads every sample of steps [0, steps) of every series.
	checkAll := func(steps int64) {
		t.Helper()
		end := strconv.FormatFloat(float64(base+(steps-1)*15000)/1000, 'f', 3, 64)
		res := c.query("tenant-z", "query_range", url.Values{"query": {"zone_metric"},
			"start": {strconv.FormatInt(base/1000, 10)}, "end": {end}, "step": {"15"}})
		if len(res.Data.Result) != nSeries {
			t.Fatalf("after %d steps: %d series, want %d", steps, len(res.Data.Result), nSeries)
		}
		for _, s := range res.Data.Result {
			i, err := strconv.Atoi(s.Metric["series"])
			if err != nil {
				t.Fatalf("series label of %v: %v", s.Metric, err)
			}
			if len(s.Values) != int(steps) {
				t.Fatalf("series %d: %d points, want %d: %v", i, len(s.Values), steps, s.Values)
			}
			for k, p := range s.Values {
				if want := strconv.FormatFloat(float64(i)*100+float64(k), 'f', -1, 64); p[1] != want {
					t.Fatalf("series %d point %d = %v, want %s", i, k, p[1], want)
				}
			}
		}
	}

	for step := range int64(8) {
		pushStep(step)
	}
	checkAll(8)
	// With replication factor 3 over three zones, every ingester holds
	// every series.
	for i, p := range c.ingesters {
		if n := metricOf(t, c.client, p, "cortex_ingester_memory_series"); n != nSeries {
			t.Fatalf("ingester-%d (%s) holds %v series, want all %d", i, zones[i], n, nSeries)
		}
	}

	// kill -9 zone-a: its only ingester.
	c.ingesters[0].Kill()
	checkAll(8)
	// The two zones left make the quorum: writes are still acknowledged,
	// and read back.
	for step := int64(8); step < 12; step++ {
		pushStep(step)
	}
	checkAll(12)
	for _, i := range []int{1, 2} {
		if n := metricOf(t, c.client, c.ingesters[i], "cortex_ingester_memory_series"); n != nSeries {
			t.Fatalf("ingester-%d (%s) holds %v series after zone-a's loss, want %d", i, zones[i], n, nSeries)
		}
	}
}
