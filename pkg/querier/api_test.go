package querier

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

const t0 = int64(1700000000000) // ms; the tests query at whole seconds from here

// apiCluster is a cluster holding, for tenant team-a, two "up" series
// sampled every 15 s for a minute, one native histogram, and metadata.
func apiCluster(t *testing.T, opts clusterOpts) (*testCluster, *httptest.Server) {
	t.Helper()
	c := newCluster(t, opts)
	var a, b []prompb.Sample
	for i := range int64(5) {
		a = append(a, sample(t0+i*15000, float64(i+1)))
		b = append(b, sample(t0+i*15000, float64(10*(i+1))))
	}
	c.add("team-a",
		series(map[string]string{"__name__": "up", "job": "a", "instance": "x"}, a...),
		series(map[string]string{"__name__": "up", "job": "b", "instance": "y"}, b...),
		prompb.TimeSeries{
			Labels:     prompb.FromLabels(labels.FromStrings("__name__", "requests_hist", "job", "a"), nil),
			Histograms: []prompb.Histogram{prompb.FromIntHistogram(t0+60000, testHistogram(0))},
		},
	)
	for _, f := range c.ingesters {
		f.metadata["team-a"] = []*client.MetricMetadata{
			{MetricFamilyName: "up", Type: "gauge", Help: "Whether the target is up."},
			{MetricFamilyName: "requests_hist", Type: "histogram", Help: "Requests.", Unit: "seconds"},
		}
	}
	return c, c.server(t)
}

func do(t *testing.T, req *http.Request, tenantID string) (int, string) {
	t.Helper()
	if tenantID != "" {
		req.Header.Set(tenant.HeaderName, tenantID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// 401 and 405 come from the tenant middleware and the mux, not the API.
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusUnauthorized && ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", req.Method, req.URL, ct)
	}
	return resp.StatusCode, string(body)
}

func get(t *testing.T, srv *httptest.Server, path, tenantID string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req, tenantID)
}

func post(t *testing.T, srv *httptest.Server, path string, form url.Values, tenantID string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req, tenantID)
}

func TestAPIQueries(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{})
	const (
		upVector = `{"status":"success","data":{"resultType":"vector","result":[` +
			`{"metric":{"__name__":"up","instance":"x","job":"a"},"value":[1700000060,"5"]},` +
			`{"metric":{"__name__":"up","instance":"y","job":"b"},"value":[1700000060,"50"]}]}}`
		upMatrix = `{"status":"success","data":{"resultType":"matrix","result":[` +
			`{"metric":{"__name__":"up","instance":"x","job":"a"},"values":[[1700000000,"1"],[1700000030,"3"],[1700000060,"5"]]}]}}`
	)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"instant", "/prometheus/api/v1/query?query=up&time=1700000060", upVector},
		{"instant RFC 3339", "/prometheus/api/v1/query?query=up&time=2023-11-14T22:14:20Z", upVector},
		{"legacy prefix", "/api/prom/api/v1/query?query=up&time=1700000060", upVector},
		{"range", `/prometheus/api/v1/query_range?query=up{job="a"}&start=1700000000&end=1700000060&step=30`, upMatrix},
		{"range with duration step", `/prometheus/api/v1/query_range?query=up{job="a"}&start=1700000000&end=1700000060&step=30s`, upMatrix},
		{"aggregation", "/prometheus/api/v1/query?query=sum(up)&time=1700000045",
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000045,"44"]}]}}`},
		{"rate over replicas", `/prometheus/api/v1/query?query=rate(up{job="b"}[1m])&time=1700000060`,
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"y","job":"b"},"value":[1700000060,"0.6666666666666666"]}]},` +
				`"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"]}`},
		{"scalar at a fractional time", "/prometheus/api/v1/query?query=1%2B1&time=1700000060.5",
			`{"status":"success","data":{"resultType":"scalar","result":[1700000060.5,"2"]}}`},
		{"native histogram", "/prometheus/api/v1/query?query=requests_hist&time=1700000060",
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"requests_hist","job":"a"},"histogram":[1700000060,` +
				`{"count":"5","sum":"10","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","2"],[0,"1","2","2"]]}]}]}}`},
		{"limit truncates with a warning", "/prometheus/api/v1/query?query=up&time=1700000060&limit=1",
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"x","job":"a"},"value":[1700000060,"5"]}]},"warnings":["results truncated due to limit"]}`},
		{"no data", "/prometheus/api/v1/query?query=nothing&time=1700000060",
			`{"status":"success","data":{"resultType":"vector","result":[]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv, tc.path, "team-a")
			if code != http.StatusOK || body != tc.want {
				t.Fatalf("got %d\n%s\nwant 200\n%s", code, body, tc.want)
			}
		})
	}

	t.Run("POST form", func(t *testing.T) {
		code, body := post(t, srv, "/prometheus/api/v1/query_range", url.Values{
			"query": {`up{job="a"}`}, "start": {"1700000000"}, "end": {"1700000060"}, "step": {"30"},
		}, "team-a")
		if code != http.StatusOK || body != upMatrix {
			t.Fatalf("got %d %s", code, body)
		}
		code, body = post(t, srv, "/prometheus/api/v1/query", url.Values{"query": {"up"}, "time": {"1700000060"}}, "team-a")
		if code != http.StatusOK || body != upVector {
			t.Fatalf("got %d %s", code, body)
		}
	})

	t.Run("tenants are isolated", func(t *testing.T) {
		code, body := get(t, srv, "/prometheus/api/v1/query?query=up&time=1700000060", "team-b")
		if want := `{"status":"success","data":{"resultType":"vector","result":[]}}`; code != http.StatusOK || body != want {
			t.Fatalf("team-b sees: %d %s", code, body)
		}
		code, body = get(t, srv, "/prometheus/api/v1/labels", "team-b")
		if want := `{"status":"success","data":[]}`; code != http.StatusOK || body != want {
			t.Fatalf("team-b labels: %d %s", code, body)
		}
		if code, _ := get(t, srv, "/prometheus/api/v1/query?query=up", ""); code != http.StatusUnauthorized {
			t.Fatalf("no tenant: %d", code)
		}
	})
}

func TestAPIErrors(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{})
	rangeQ := "/prometheus/api/v1/query_range?query=up&start=1700000000&end=1700000060"
	for _, tc := range []struct {
		name, method, path string
		code               int
		want               string // the whole body, or its start when it ends with "..."
	}{
		{"zero step", "GET", rangeQ + "&step=0", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"}`},
		{"bad step", "GET", rangeQ + "&step=abc", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": cannot parse \"abc\" to a valid duration"}`},
		{"too many points", "GET", "/prometheus/api/v1/query_range?query=up&start=0&end=11001&step=1", 400,
			`{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}`},
		{"end before start", "GET", "/prometheus/api/v1/query_range?query=up&start=2&end=1&step=1", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": end timestamp must not be before start time"}`},
		{"missing start", "GET", "/prometheus/api/v1/query_range?query=up&end=1&step=1", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": cannot parse \"\" to a valid timestamp"}`},
		{"bad time", "GET", "/prometheus/api/v1/query?query=up&time=yesterday", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\": invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp"}`},
		{"bad query", "GET", "/prometheus/api/v1/query?query=up{", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:4: parse error: ...`},
		{"bad timeout", "GET", "/prometheus/api/v1/query?query=up&timeout=-1s", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"timeout\": ...`},
		{"timeout", "GET", "/prometheus/api/v1/query?query=up&timeout=0.000001", 503,
			`{"status":"error","errorType":"timeout","error":"query timed out in ...`},
		{"execution error", "GET", `/prometheus/api/v1/query?query=label_replace(up,"x","y","z","(")`, 422,
			`{"status":"error","errorType":"execution","error":"invalid regular expression in label_replace(): ("}`},
		{"series without match", "GET", "/prometheus/api/v1/series", 400,
			`{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}`},
		{"series with an empty matcher", "GET", "/prometheus/api/v1/series?match[]=" + url.QueryEscape(`{job=~".*"}`), 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"match[]\": match[] must contain at least one non-empty matcher"}`},
		{"labels with a bad matcher", "GET", "/prometheus/api/v1/labels?match[]=up{", 400,
			`{"status":"error","errorType":"bad_data","error":"1:4: parse error: ...`},
		{"metadata bad limit", "GET", "/prometheus/api/v1/metadata?limit=x", 400,
			`{"status":"error","errorType":"bad_data","error":"limit must be a number"}`},
		{"bad limit", "GET", "/prometheus/api/v1/labels?limit=-1", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": limit must be non-negative"}`},
		{"series bad start", "GET", "/prometheus/api/v1/series?match[]=up&start=x", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": invalid time value for 'start': cannot parse \"x\" to a valid timestamp"}`},
		{"label values bad end", "GET", "/prometheus/api/v1/label/job/values?end=x", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": invalid time value for 'end': cannot parse \"x\" to a valid timestamp"}`},
		{"series bad limit", "GET", "/prometheus/api/v1/series?match[]=up&limit=-1", 400,
			`{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": limit must be non-negative"}`},
		{"label values by POST", "POST", "/prometheus/api/v1/label/job/values", 405, "..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			code, body := do(t, req, "team-a")
			want, prefix := strings.CutSuffix(tc.want, "...")
			if code != tc.code || (prefix && !strings.HasPrefix(body, want)) || (!prefix && body != want) {
				t.Fatalf("got %d\n%s\nwant %d\n%s", code, body, tc.code, tc.want)
			}
		})
	}
}

func TestAPIMetadataEndpoints(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{})
	for _, tc := range []struct {
		name, path, want string
	}{
		{"series", "/prometheus/api/v1/series?match[]=up&start=1700000000&end=1700000060",
			`{"status":"success","data":[{"__name__":"up","instance":"x","job":"a"},{"__name__":"up","instance":"y","job":"b"}]}`},
		{"series, several matchers", "/prometheus/api/v1/series?match[]=" + url.QueryEscape(`up{job="b"}`) + "&match[]=requests_hist",
			`{"status":"success","data":[{"__name__":"requests_hist","job":"a"},{"__name__":"up","instance":"y","job":"b"}]}`},
		{"series, limit", "/prometheus/api/v1/series?match[]=up&limit=1",
			`{"status":"success","data":[{"__name__":"up","instance":"x","job":"a"}],"warnings":["results truncated due to limit"]}`},
		{"series, outside the range", "/prometheus/api/v1/series?match[]=up&start=1600000000&end=1600000060",
			`{"status":"success","data":[]}`},
		{"labels", "/prometheus/api/v1/labels",
			`{"status":"success","data":["__name__","instance","job"]}`},
		{"labels with match[]", "/prometheus/api/v1/labels?match[]=requests_hist",
			`{"status":"success","data":["__name__","job"]}`},
		{"label values", "/prometheus/api/v1/label/job/values",
			`{"status":"success","data":["a","b"]}`},
		{"label values with match[]", "/prometheus/api/v1/label/instance/values?match[]=" + url.QueryEscape(`up{job="b"}`) + "&start=1700000000&end=1700000060",
			`{"status":"success","data":["y"]}`},
		{"metric names", "/prometheus/api/v1/label/__name__/values",
			`{"status":"success","data":["requests_hist","up"]}`},
		{"label values, unknown label", "/prometheus/api/v1/label/nope/values",
			`{"status":"success","data":[]}`},
		{"metadata", "/prometheus/api/v1/metadata",
			`{"status":"success","data":{"requests_hist":[{"type":"histogram","unit":"seconds","help":"Requests."}],"up":[{"type":"gauge","unit":"","help":"Whether the target is up."}]}}`},
		{"metadata of a metric", "/prometheus/api/v1/metadata?metric=up",
			`{"status":"success","data":{"up":[{"type":"gauge","unit":"","help":"Whether the target is up."}]}}`},
		{"metadata, limit", "/prometheus/api/v1/metadata?limit=1",
			`{"status":"success","data":{"requests_hist":[{"type":"histogram","unit":"seconds","help":"Requests."}]}}`},
		{"metadata, unknown metric", "/prometheus/api/v1/metadata?metric=nope",
			`{"status":"success","data":{}}`},
		{"exemplars", "/prometheus/api/v1/query_exemplars?query=up",
			`{"status":"success","data":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv, tc.path, "team-a")
			if code != http.StatusOK || body != tc.want {
				t.Fatalf("got %d\n%s\nwant 200\n%s", code, body, tc.want)
			}
		})
	}

	t.Run("labels by POST", func(t *testing.T) {
		code, body := post(t, srv, "/prometheus/api/v1/labels", url.Values{"match[]": {"requests_hist"}}, "team-a")
		if want := `{"status":"success","data":["__name__","job"]}`; code != http.StatusOK || body != want {
			t.Fatalf("got %d %s", code, body)
		}
	})

	t.Run("buildinfo", func(t *testing.T) {
		code, body := get(t, srv, "/prometheus/api/v1/status/buildinfo", "team-a")
		for _, key := range []string{`"version":`, `"revision":`, `"branch":`, `"buildUser":`, `"buildDate":`, `"goVersion":"go`} {
			if code != http.StatusOK || !strings.Contains(body, key) {
				t.Fatalf("got %d %s, want %s", code, body, key)
			}
		}
	})
}

func TestAPIIngesterFailures(t *testing.T) {
	c, srv := apiCluster(t, clusterOpts{})
	c.ingesters[2].fail.Store(true)
	if code, body := get(t, srv, "/prometheus/api/v1/query?query=sum(up)&time=1700000060", "team-a"); code != http.StatusOK || !strings.Contains(body, `"55"`) {
		t.Fatalf("one ingester down: %d %s", code, body)
	}
	c.ingesters[1].fail.Store(true)
	code, body := get(t, srv, "/prometheus/api/v1/query?query=sum(up)&time=1700000060", "team-a")
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, `{"status":"error","errorType":"unavailable","error":"expanding series: too few ingesters answered (at most 1 of 3 may fail)`) {
		t.Fatalf("two ingesters down: %d %s", code, body)
	}
	code, body = get(t, srv, "/prometheus/api/v1/label/job/values", "team-a")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"errorType":"unavailable"`) {
		t.Fatalf("label values, two ingesters down: %d %s", code, body)
	}
}

func TestAPILimits(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxSeriesPerQuery = 1 }})
	code, body := get(t, srv, "/prometheus/api/v1/query?query=up&time=1700000060", "team-a")
	if code != http.StatusUnprocessableEntity || !strings.HasPrefix(body, `{"status":"error","errorType":"execution","error":"expanding series: the query hit the max number of series limit (limit: 1 series`) {
		t.Fatalf("got %d %s", code, body)
	}
	// The engine's own sample limit answers as in Prometheus.
	_, srv = apiCluster(t, clusterOpts{cfg: func(c *Config) { c.MaxSamples = 2 }})
	code, body = get(t, srv, `/prometheus/api/v1/query_range?query=up{job="a"}&start=1700000000&end=1700000060&step=15`, "team-a")
	if want := `{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}`; code != http.StatusUnprocessableEntity || body != want {
		t.Fatalf("got %d %s", code, body)
	}
}

// A query waits for a slot while -querier.max-concurrent queries run, and
// times out in the queue as Prometheus's does.
func TestAPIConcurrencyLimit(t *testing.T) {
	c, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) {
		c.MaxConcurrent = 1
		c.Timeout = 5 * time.Second
	}})
	block := make(chan struct{})
	for _, f := range c.ingesters {
		f.block = block
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/prometheus/api/v1/query?query=up&time=1700000060", nil)
		req.Header.Set(tenant.HeaderName, "team-a")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testkit.Eventually(t, 10*time.Second, "the first query to reach an ingester", func() bool {
		return c.ingesters[0].queries.Load()+c.ingesters[1].queries.Load()+c.ingesters[2].queries.Load() > 0
	})
	// The request's own timeout ends its wait in the queue.
	code, body := get(t, srv, "/prometheus/api/v1/query?query=up&time=1700000060&timeout=0.2", "team-a")
	close(block)
	wg.Wait()
	if want := `{"status":"error","errorType":"timeout","error":"query timed out in query queue"}`; code != http.StatusServiceUnavailable || body != want {
		t.Fatalf("got %d %s, want 503 %s", code, body, want)
	}
	// Once the slot is free, queries run again.
	if code, body := get(t, srv, "/prometheus/api/v1/query?query=up&time=1700000060", "team-a"); code != http.StatusOK {
		t.Fatalf("after the queue drained: %d %s", code, body)
	}
}

func TestAPICompressionAndMetrics(t *testing.T) {
	c, srv := apiCluster(t, clusterOpts{})
	for i := range 100 {
		c.add("team-a", series(map[string]string{"__name__": "many", "i": strconv.Itoa(i)}, sample(t0, 1)))
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/prometheus/api/v1/series?match[]=many", nil)
	req.Header.Set(tenant.HeaderName, "team-a")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("got %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}

	mfs, err := c.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, mf := range mfs {
		if mf.GetName() != "cortex_querier_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			found = append(found, strings.Join(ls, ","))
		}
	}
	if want := "method=GET,route=prometheus_api_v1_series,status_code=200,ws=false"; len(found) != 1 || found[0] != want {
		t.Fatalf("request duration series %v, want [%s]", found, want)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{"prometheus_engine_queries", "cortex_ingester_clients"} {
		if !slices.Contains(names, want) {
			t.Fatalf("%s not registered: %v", want, names)
		}
	}
}
