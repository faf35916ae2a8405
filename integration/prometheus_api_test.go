package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// TestPrometheusAPIPaths asks the real binary, over mutual TLS, for the
// Prometheus API paths Grafana and promtool use beyond queries: through
// the query-frontend (which passes them to a querier over the gRPC link)
// and from a querier directly, format_query and parse_query answer as
// Prometheus does, status/tsdb answers each tenant the head statistics of
// its own series, and paths a Cortex cluster does not serve answer 404
// with Prometheus's not_found error instead of 405.
func TestPrometheusAPIPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	c := newFrontendCluster(t)
	now := time.Now().UnixMilli()
	for tenantID, n := range map[string]int{"team-a": 3, "team-b": 1} {
		req := &prompb.WriteRequest{}
		for i := range n {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "tsdb_" + strings.TrimPrefix(tenantID, "team-") + "_metric"}, {Name: "job", Value: fmt.Sprint("job-", i)}},
				Samples: []prompb.Sample{{Timestamp: now, Value: 1}},
			})
		}
		if code, body := c.push(tenantID, req); code != http.StatusNoContent {
			t.Fatalf("push for %s: %d %s", tenantID, code, body)
		}
	}
	for _, p := range []struct {
		name string
		addr string
	}{{"query-frontend", c.frontend.HTTPAddr}, {"querier", c.querier.HTTPAddr}} {
		t.Run(p.name, func(t *testing.T) {
			base := "https://" + p.addr + "/prometheus/api/v1/"
			query := url.QueryEscape(`sum(rate(up{job="a"}[5m]))by(job)`)
			code, body := do(t, c.client, http.MethodGet, base+"format_query?query="+query, "team-a", nil)
			if want := `{"status":"success","data":"sum by (job) (rate(up{job=\"a\"}[5m]))"}`; code != http.StatusOK || body != want {
				t.Errorf("format_query: got %d %s, want 200 %s", code, body, want)
			}
			code, body = do(t, c.client, http.MethodGet, base+"parse_query?query="+query, "team-a", nil)
			if code != http.StatusOK || !strings.HasPrefix(body, `{"status":"success","data":{"expr":{"args":[{"anchored":false,"matchers":[{"name":"job","type":"=","value":"a"},{"name":"__name__","type":"=","value":"up"}],"name":"up","offset":0,"offsetExpr":null,"range":300000,`) ||
				!strings.HasSuffix(body, `"grouping":["job"],"op":"sum","param":null,"type":"aggregation","without":false}}`) {
				t.Errorf("parse_query: got %d %s", code, body)
			}
			code, body = do(t, c.client, http.MethodGet, base+"format_query?query="+url.QueryEscape("sum(up"), "team-a", nil)
			if want := `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:7: parse error: unclosed left parenthesis"}`; code != http.StatusBadRequest || body != want {
				t.Errorf("format_query of a bad expression: got %d %s, want 400 %s", code, body, want)
			}
			for tenantID, want := range map[string]string{
				"team-a": `{"numSeries":3,"metrics":[{"name":"tsdb_a_metric","value":3}],"pairs":[{"name":"__name__=tsdb_a_metric","value":3},{"name":"job=job-0","value":1},{"name":"job=job-1","value":1},{"name":"job=job-2","value":1}]}`,
				"team-b": `{"numSeries":1,"metrics":[{"name":"tsdb_b_metric","value":1}],"pairs":[{"name":"__name__=tsdb_b_metric","value":1},{"name":"job=job-0","value":1}]}`,
			} {
				code, body := do(t, c.client, http.MethodGet, base+"status/tsdb", tenantID, nil)
				var res struct {
					Status string `json:"status"`
					Data   struct {
						HeadStats struct {
							NumSeries uint64 `json:"numSeries"`
							MinTime   int64  `json:"minTime"`
							MaxTime   int64  `json:"maxTime"`
						} `json:"headStats"`
						SeriesCountByMetricName     json.RawMessage `json:"seriesCountByMetricName"`
						SeriesCountByLabelValuePair json.RawMessage `json:"seriesCountByLabelValuePair"`
					} `json:"data"`
				}
				if code != http.StatusOK {
					t.Errorf("status/tsdb of %s: got %d %s", tenantID, code, body)
					continue
				}
				if err := json.Unmarshal([]byte(body), &res); err != nil {
					t.Fatalf("status/tsdb of %s: %v: %s", tenantID, err, body)
				}
				got := fmt.Sprintf(`{"numSeries":%d,"metrics":%s,"pairs":%s}`, res.Data.HeadStats.NumSeries, res.Data.SeriesCountByMetricName, res.Data.SeriesCountByLabelValuePair)
				if res.Status != "success" || got != want || res.Data.HeadStats.MinTime != now || res.Data.HeadStats.MaxTime != now {
					t.Errorf("status/tsdb of %s: got %s\n(%s)\nwant %s, minTime and maxTime %d", tenantID, got, body, want, now)
				}
			}
			for _, path := range []string{"status/config", "status/flags", "status/runtimeinfo", "targets", "targets/metadata", "alertmanagers"} {
				code, body := do(t, c.client, http.MethodGet, base+path, "team-a", nil)
				if want := `{"status":"error","errorType":"not_found","error":"/prometheus/api/v1/` + path + ` is not served by the Prometheus API of this cluster"}`; code != http.StatusNotFound || body != want {
					t.Errorf("%s: got %d %s, want 404 %s", path, code, body, want)
				}
			}
			code, body = do(t, c.client, http.MethodGet, base+"status/buildinfo", "team-a", nil)
			if code != http.StatusOK || !strings.Contains(body, `"version":`) {
				t.Errorf("status/buildinfo: got %d %s", code, body)
			}
			if code, _ := do(t, c.client, http.MethodDelete, base+"query", "team-a", nil); code != http.StatusMethodNotAllowed {
				t.Errorf("DELETE query: got %d, want 405", code)
			}
			if code, _ := do(t, c.client, http.MethodGet, base+"status/config", "", nil); code != http.StatusUnauthorized {
				t.Errorf("status/config without a tenant: got %d, want 401", code)
			}
		})
	}
}
