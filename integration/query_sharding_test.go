package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestQueryShardingMutualTLS runs a query-frontend with
// -frontend.query-vertical-shard-size=4 over two queriers, an ingester and
// a distributor, each its own process with mutual TLS on every link:
// shardable range and instant queries answer what a querier answers
// whole, as 4 shard queries that both queriers run, and the ingester
// reads each series once per query (each shard query only its shard's);
// the others run whole.
func TestQueryShardingMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	t.Parallel()
	base := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	base.ingDirs = []string{filepath.Join(base.dir, "ingester-0")}
	base.client = httpClient(tlsClient(t, clientConfig(base.certs, "client")))
	c := &frontendCluster{cluster: base}
	c.ingesters = []*testkit.Cortex{c.start("-target=ingester", "-distributor.replication-factor=1", "-ingester.lifecycler.ID=ingester-0",
		"-ingester.lifecycler.addr=127.0.0.1", "-blocks-storage.tsdb.dir="+c.ingDirs[0])}
	c.distributor = c.start("-target=distributor", "-distributor.replication-factor=1")
	c.frontend = testkit.StartCortex(t, append(mtlsFlags(c.certs),
		"-target=query-frontend",
		"-ring.store=memberlist",
		"-memberlist.bind-port=0",
		"-frontend.query-vertical-shard-size=4",
	)...)
	for range 2 {
		c.queriers = append(c.queriers, c.startQuerier("client"))
	}
	c.querier = c.queriers[0]
	for _, p := range append([]*testkit.Cortex{c.distributor, c.frontend, c.ingesters[0]}, c.queriers...) {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, 1)
	for _, q := range c.queriers {
		c.waitActiveIngesters(q, 1)
	}
	c.waitConnected(4)

	const nSeries = 40
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	for step := int64(0); step < 30; step++ {
		req := &prompb.WriteRequest{}
		for i := range nSeries {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "qs_metric"}, {Name: "instance", Value: fmt.Sprintf("i%02d", i)}, {Name: "job", Value: fmt.Sprintf("job-%d", i%8)}},
				Samples: []prompb.Sample{{Timestamp: start + step*15_000, Value: float64(step*int64(i+1)) + 0.25*float64(i%3)}},
			})
		}
		if code, body := c.push("tenant-a", req); code != http.StatusNoContent {
			t.Fatalf("push step %d: %d %s", step, code, body)
		}
	}
	at := secs(start + 29*15_000)
	rangeParams := func(q string) url.Values {
		return url.Values{"query": {q}, "start": {secs(start + 60_000)}, "end": {at}, "step": {"15"}}
	}
	queries := []struct {
		query   string
		sharded bool
	}{
		{`sum by (job) (rate(qs_metric[2m]))`, true},
		{`count by (job) (qs_metric)`, true},
		{`avg without (instance) (qs_metric)`, true},
		{`max by (job) (qs_metric) / on (job) sum by (job) (qs_metric)`, true},
		{`sum(qs_metric)`, false},
	}
	enginesBefore := []float64{queriesRun(t, c, c.queriers[0]), queriesRun(t, c, c.queriers[1])}
	shardQueries := 0.0
	for _, q := range queries {
		for _, api := range []struct {
			path   string
			params url.Values
		}{{"query_range", rangeParams(q.query)}, {"query", url.Values{"query": {q.query}, "time": {at}}}} {
			seriesBefore := metricOf(t, c.client, c.ingesters[0], "cortex_ingester_queried_series_sum")
			code, sharded := c.raw(c.frontend, "tenant-a", api.path, api.params)
			if code != 200 {
				t.Fatalf("%s %s through the frontend: %d %s", api.path, q.query, code, sharded)
			}
			read := metricOf(t, c.client, c.ingesters[0], "cortex_ingester_queried_series_sum") - seriesBefore
			code, whole := c.raw(c.queriers[1], "tenant-a", api.path, api.params)
			if code != 200 {
				t.Fatalf("%s %s on a querier: %d %s", api.path, q.query, code, whole)
			}
			if err := sameSeries(sharded, whole); err != nil {
				t.Errorf("%s %s: %v\nsharded: %.500s\nwhole:   %.500s", api.path, q.query, err, sharded, whole)
			}
			if !strings.Contains(whole, `"metric"`) {
				t.Errorf("%s %s: empty answer %s", api.path, q.query, whole)
			}
			// Selectors read by the query, each series once whether sharded or not.
			selectors := float64(strings.Count(q.query, "qs_metric"))
			if q.sharded {
				shardQueries += 4
				if read != selectors*nSeries {
					t.Errorf("%s %s: the ingester read %v series for the 4 shard queries, want %v", api.path, q.query, read, selectors*nSeries)
				}
			}
		}
	}
	if got := c.metric("cortex_frontend_sharded_queries_total"); got != shardQueries {
		t.Errorf("cortex_frontend_sharded_queries_total = %v, want %v", got, shardQueries)
	}
	for i, q := range c.queriers {
		if ran := queriesRun(t, c, q) - enginesBefore[i]; ran == 0 {
			t.Errorf("querier %d ran no query", i)
		}
	}
}

// queriesRun is the number of queries p's engine evaluated.
func queriesRun(t *testing.T, c *frontendCluster, p *testkit.Cortex) float64 {
	t.Helper()
	_, body := get(t, c.client, "https://"+p.HTTPAddr+"/metrics")
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "prometheus_engine_query_duration_seconds_count{") && strings.Contains(l, `slice="inner_eval"`) && strings.Contains(l, `engine="querier"`) {
			v, _ := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
			return v
		}
	}
	return 0
}

// sameSeries compares two answers of the Prometheus API: the same result
// type and the same series with the same points, in any order.
func sameSeries(got, want string) error {
	type answer struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  json.RawMessage   `json:"value"`
				Values json.RawMessage   `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	index := func(s string) (string, map[string]string, error) {
		var a answer
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			return "", nil, err
		}
		out := map[string]string{}
		for _, r := range a.Data.Result {
			k, _ := json.Marshal(r.Metric)
			out[string(k)] = string(r.Value) + string(r.Values)
		}
		return a.Status + " " + a.Data.ResultType, out, nil
	}
	gt, g, err := index(got)
	if err != nil {
		return err
	}
	wt, w, err := index(want)
	if err != nil {
		return err
	}
	if gt != wt || len(g) != len(w) {
		return fmt.Errorf("%s with %d series, want %s with %d", gt, len(g), wt, len(w))
	}
	for k, v := range w {
		if g[k] != v {
			return fmt.Errorf("series %s: %.200s, want %.200s", k, g[k], v)
		}
	}
	return nil
}
