package integration

import (
	"fmt"
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

// newZoneCluster is a distributor, a querier and n ingesters, ingester i
// in zones[i%3], every process with mutual TLS, replication factor 3 and
// zone awareness; flags are the distributor's and querier's own.
func newZoneCluster(t *testing.T, n int, flags ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	for i := range n {
		c.startZoneIngester(i)
	}
	c.distributor = c.start(append([]string{"-target=distributor", "-distributor.zone-awareness-enabled=true"}, flags...)...)
	c.querier = c.start(append([]string{"-target=querier", "-distributor.zone-awareness-enabled=true"}, flags...)...)
	for _, p := range append([]*testkit.Cortex{c.distributor, c.querier}, c.ingesters...) {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, n)
	c.waitActiveIngesters(c.querier, n)
	return c
}

// startZoneIngester starts ingester i, in zones[i%3], zone-aware.
func (c *cluster) startZoneIngester(i int) {
	c.t.Helper()
	c.ingDirs = append(c.ingDirs, filepath.Join(c.dir, "ingester-"+itoa(i)))
	c.ingesters = append(c.ingesters, c.start(
		"-target=ingester",
		"-ingester.lifecycler.ID=ingester-"+itoa(i),
		"-ingester.lifecycler.addr=127.0.0.1",
		"-ingester.availability-zone="+zones[i%len(zones)],
		"-distributor.zone-awareness-enabled=true",
		"-blocks-storage.tsdb.dir="+c.ingDirs[i],
	))
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
	c := newZoneCluster(t, 3)

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

// TestIngesterShuffleShardingAcrossZones runs six ingesters, two per zone,
// with a tenant shard of 3: the tenant's series are held by one ingester of
// each zone only, its queries reach only those, and losing the zone of one
// of them loses nothing acknowledged.
func TestIngesterShuffleShardingAcrossZones(t *testing.T) {
	if testing.Short() {
		t.Skip("starts eight processes")
	}
	t.Parallel()
	const lookback = 2 * time.Second
	c := newZoneCluster(t, 6,
		"-distributor.sharding-strategy=shuffle-sharding",
		"-distributor.ingestion-tenant-shard-size=3",
		"-querier.shuffle-sharding-ingesters-lookback-period="+lookback.String(),
	)
	// Once every ingester registered longer ago than the lookback, the
	// querier asks the tenant's shard alone.
	registered := time.Now()
	c.querier.Eventually(10*time.Second, "the lookback period to pass since the ingesters registered", func() bool {
		return time.Since(registered) > lookback+time.Second
	})

	const nSeries = 30
	base := time.Now().Add(-5 * time.Minute).Truncate(time.Minute).UnixMilli()
	push := func(step int64) {
		t.Helper()
		req := &prompb.WriteRequest{}
		for i := range nSeries {
			req.Timeseries = append(req.Timeseries, series("shard_metric", i, base+step*15000, float64(i)))
		}
		if code, body := c.push("tenant-s", req); code != http.StatusNoContent {
			t.Fatalf("push step %d: %d %s", step, code, body)
		}
	}
	count := func(steps int64) {
		t.Helper()
		at := strconv.FormatFloat(float64(base+(steps-1)*15000)/1000, 'f', 3, 64)
		res := c.query("tenant-s", "query", url.Values{"query": {"count(shard_metric)"}, "time": {at}})
		if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != strconv.Itoa(nSeries) {
			t.Fatalf("count(shard_metric): %+v, want %d", res.Data.Result, nSeries)
		}
		rng := c.query("tenant-s", "query_range", url.Values{"query": {`shard_metric{series="5"}`},
			"start": {strconv.FormatInt(base/1000, 10)}, "end": {at}, "step": {"15"}})
		if len(rng.Data.Result) != 1 || len(rng.Data.Result[0].Values) != int(steps) {
			t.Fatalf("range query of series 5: %+v, want %d points", rng.Data.Result, steps)
		}
	}
	for step := range int64(4) {
		push(step)
	}

	// Replicas land where the tenant's shard is: one ingester per zone.
	var shard []int
	inZone := map[string]int{}
	c.ingesters[0].EventuallyNil(10*time.Second, "three ingesters holding every series", func() error {
		shard = shard[:0]
		clear(inZone)
		for i, p := range c.ingesters {
			switch n := metricOf(t, c.client, p, "cortex_ingester_memory_series"); n {
			case nSeries:
				shard = append(shard, i)
				inZone[zones[i%3]]++
			case 0:
			default:
				return fmt.Errorf("ingester-%d holds %v series, want %d or none", i, n, nSeries)
			}
		}
		if len(shard) != 3 || len(inZone) != 3 {
			return fmt.Errorf("ingesters %v hold the series, in zones %v", shard, inZone)
		}
		return nil
	})

	// The querier dials an ingester when it first asks it: it asks only
	// the shard, at least the two zones of a quorum. Without the shard it
	// would ask every ingester of two zones, four.
	count(4)
	if n := metricOf(t, c.client, c.querier, `cortex_ingester_clients{client="querier"}`); n < 2 || n > 3 {
		t.Fatalf("the querier holds connections to %v ingesters, want 2 or 3: those of the tenant's shard %v", n, shard)
	}

	// kill -9 the shard's member of one zone: the two others make the quorum.
	c.ingesters[shard[0]].Kill()
	count(4)
	for step := int64(4); step < 8; step++ {
		push(step)
	}
	count(8)
}
