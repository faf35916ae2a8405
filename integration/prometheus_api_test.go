package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestPrometheusAPIPaths asks the real binary, over mutual TLS, for the
// Prometheus API paths Grafana and promtool use beyond queries: through
// the query-frontend (which passes them to a querier over the gRPC link)
// and from a querier directly, format_query and parse_query answer as
// Prometheus does, and paths a Cortex cluster does not serve answer 404
// with Prometheus's not_found error instead of 405.
func TestPrometheusAPIPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	c := newFrontendCluster(t)
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
			for _, path := range []string{"status/config", "status/flags", "status/runtimeinfo", "status/tsdb", "targets", "targets/metadata", "alertmanagers"} {
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
