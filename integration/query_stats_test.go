package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestQueryStatsAndExperimentalFunctionsMutualTLS runs a query-frontend
// with its results cache keeping samples statistics over a querier with
// per-step statistics and experimental functions, an ingester and a
// distributor, each its own process with mutual TLS on every link: a range
// query asked with stats=all answers the queryable samples of each step,
// its split parts' joined, and answers them again from the cache without
// asking the querier; a query using sort_by_label_desc answers sorted.
func TestQueryStatsAndExperimentalFunctionsMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	t.Parallel()
	base := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	base.ingDirs = []string{filepath.Join(base.dir, "ingester-0")}
	base.client = httpClient(tlsClient(t, clientConfig(base.certs, "client")))
	c := &frontendCluster{cluster: base}
	c.ingesters = []*testkit.Cortex{c.start("-target=ingester", "-distributor.replication-factor=1", "-ingester.lifecycler.ID=ingester-0",
		"-ingester.lifecycler.addr=127.0.0.1", "-blocks-storage.tsdb.dir="+c.ingDirs[0])}
	c.distributor = c.start("-target=distributor", "-distributor.replication-factor=1")
	queryFlags := []string{"-querier.per-step-stats-enabled=true", "-querier.enable-promql-experimental-functions=true"}
	c.frontend = testkit.StartCortex(t, append(mtlsFlags(c.certs), append(queryFlags,
		"-target=query-frontend",
		"-ring.store=memberlist",
		"-memberlist.bind-port=0",
		"-querier.split-queries-by-interval=2m",
		"-frontend.cache-results=true",
		"-frontend.cache-queryable-samples-stats=true",
	)...)...)
	c.querier = c.start(append(queryFlags,
		"-target=querier",
		"-distributor.replication-factor=1",
		"-querier.frontend-address="+c.frontend.GRPCAddr,
		"-querier.worker-parallelism=2",
		"-querier.frontend-client.tls-cert-path="+filepath.Join(c.certs, "client.crt"),
		"-querier.frontend-client.tls-key-path="+filepath.Join(c.certs, "client.key"),
		"-querier.frontend-client.tls-ca-path="+filepath.Join(c.certs, "root.crt"),
	)...)
	c.queriers = []*testkit.Cortex{c.querier}
	for _, p := range []*testkit.Cortex{c.distributor, c.frontend, c.ingesters[0], c.querier} {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, 1)
	c.waitActiveIngesters(c.querier, 1)
	c.waitConnected(2)

	// 4 series sampled every 15s for 10 minutes, ending 3 minutes ago:
	// old enough to be cached (-frontend.max-cache-freshness=1m).
	start := time.Now().Add(-13 * time.Minute).Truncate(time.Minute).UnixMilli()
	for step := int64(0); step < 40; step++ {
		req := &prompb.WriteRequest{}
		for i := range 4 {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "st_metric"}, {Name: "job", Value: fmt.Sprintf("job-%d", i)}},
				Samples: []prompb.Sample{{Timestamp: start + step*15_000, Value: float64(step)}},
			})
		}
		if code, body := c.push("tenant-a", req); code != http.StatusNoContent {
			t.Fatalf("push step %d: %d %s", step, code, body)
		}
	}

	// count_over_time over 1m reads the 4 samples of each series in the
	// minute before each step: 16 a step, over 7 steps split into parts of 2m.
	params := url.Values{"query": {"count_over_time(st_metric[1m])"}, "start": {secs(start + 3*60_000)}, "end": {secs(start + 9*60_000)}, "step": {"60"}, "stats": {"all"}}
	type samples struct {
		PerStep [][2]float64 `json:"totalQueryableSamplesPerStep"`
		Total   int64        `json:"totalQueryableSamples"`
	}
	statsOf := func(body string) samples {
		var a struct {
			Data struct {
				Stats struct {
					Samples samples `json:"samples"`
				} `json:"stats"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("decoding %s: %v", body, err)
		}
		return a.Data.Stats.Samples
	}
	code, body := c.raw(c.frontend, "tenant-a", "query_range", params)
	if code != http.StatusOK {
		t.Fatalf("query_range through the frontend: %d %s", code, body)
	}
	got := statsOf(body)
	if len(got.PerStep) != 7 || got.Total != 7*16 {
		t.Fatalf("samples statistics %+v, want 16 at each of 7 steps: %s", got, body)
	}
	for i, s := range got.PerStep {
		if want := [2]float64{float64(start+int64(3+i)*60_000) / 1000, 16}; s != want {
			t.Fatalf("step %d: %v, want %v", i, s, want)
		}
	}
	asked := queriesRun(t, c, c.querier)
	code, cached := c.raw(c.frontend, "tenant-a", "query_range", params)
	if code != http.StatusOK || cached != body {
		t.Fatalf("cached answer: %d %s\nwant %s", code, cached, body)
	}
	if ran := queriesRun(t, c, c.querier) - asked; ran != 0 {
		t.Fatalf("the querier ran %v queries for a cached answer", ran)
	}

	at := secs(start + 39*15_000)
	code, body = c.raw(c.frontend, "tenant-a", "query", url.Values{"query": {`sort_by_label_desc(st_metric, "job")`}, "time": {at}})
	want := fmt.Sprintf(`{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"__name__":"st_metric","job":"job-3"},"value":[%[1]s,"39"]},{"metric":{"__name__":"st_metric","job":"job-2"},"value":[%[1]s,"39"]},`+
		`{"metric":{"__name__":"st_metric","job":"job-1"},"value":[%[1]s,"39"]},{"metric":{"__name__":"st_metric","job":"job-0"},"value":[%[1]s,"39"]}]}}`, trimSecs(at))
	if code != http.StatusOK || body != want {
		t.Fatalf("sort_by_label_desc through the frontend: %d %s\nwant %s", code, body, want)
	}
}

// trimSecs writes seconds as Prometheus' JSON does: no trailing zeros.
func trimSecs(s string) string {
	f, _ := strconv.ParseFloat(s, 64)
	return strconv.FormatFloat(f, 'f', -1, 64)
}
