package querier

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestAPIFormatQuery(t *testing.T) {
	c, srv := apiCluster(t, clusterOpts{})
	const long = `sum by (job) (rate(http_requests_total{job="api",status=~"5.."}[5m])) / sum by (job) (rate(http_requests_total{job="api"}[5m])) > 0.01`
	// Prometheus's parser.Prettify layout: each operand of a binary
	// expression indented one level deeper than its operator.
	data, _ := json.Marshal("" +
		"    sum by (job) (rate(http_requests_total{job=\"api\",status=~\"5..\"}[5m]))\n" +
		"  /\n" +
		"    sum by (job) (rate(http_requests_total{job=\"api\"}[5m]))\n" +
		">\n" +
		"  0.01")
	want := `{"status":"success","data":` + string(data) + `}`
	for _, prefix := range []string{"/prometheus", "/api/prom"} {
		code, body := get(t, srv, prefix+"/api/v1/format_query?query="+url.QueryEscape(long), "team-a")
		if code != http.StatusOK || body != want {
			t.Errorf("GET %s: got %d %s\nwant 200 %s", prefix, code, body, want)
		}
	}
	code, body := post(t, srv, "/prometheus/api/v1/format_query", url.Values{"query": {"sum(up{job='a'})by(instance)"}}, "team-a")
	if want := `{"status":"success","data":"sum by (instance) (up{job=\"a\"})"}`; code != http.StatusOK || body != want {
		t.Errorf("POST: got %d %s, want 200 %s", code, body, want)
	}
	code, body = get(t, srv, "/prometheus/api/v1/format_query?query="+url.QueryEscape("sum(up"), "team-a")
	if want := `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:7: parse error: unclosed left parenthesis"}`; code != http.StatusBadRequest || body != want {
		t.Errorf("bad query: got %d %s, want 400 %s", code, body, want)
	}
	code, _ = get(t, srv, "/prometheus/api/v1/format_query?query=up", "")
	if code != http.StatusUnauthorized {
		t.Errorf("no tenant: got %d, want 401", code)
	}
	for i, f := range c.ingesters {
		if n := f.queries.Load(); n != 0 {
			t.Errorf("ingester %d was asked %d queries to format an expression", i, n)
		}
	}
}

func TestAPIParseQuery(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{})
	code, body := get(t, srv, "/prometheus/api/v1/parse_query?query="+url.QueryEscape(`sum by (job) (rate(up{job="a"}[5m] offset 1m))`), "team-a")
	if code != http.StatusOK {
		t.Fatalf("got %d %s", code, body)
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Type     string   `json:"type"`
			Op       string   `json:"op"`
			Grouping []string `json:"grouping"`
			Without  bool     `json:"without"`
			Expr     struct {
				Type string `json:"type"`
				Func struct {
					Name       string `json:"name"`
					ReturnType string `json:"returnType"`
				} `json:"func"`
				Args []struct {
					Type     string              `json:"type"`
					Name     string              `json:"name"`
					Range    int64               `json:"range"`
					Offset   int64               `json:"offset"`
					Matchers []map[string]string `json:"matchers"`
				} `json:"args"`
			} `json:"expr"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	d := resp.Data
	if resp.Status != "success" || d.Type != "aggregation" || d.Op != "sum" || strings.Join(d.Grouping, ",") != "job" || d.Without {
		t.Fatalf("aggregation: %s", body)
	}
	if d.Expr.Type != "call" || d.Expr.Func.Name != "rate" || d.Expr.Func.ReturnType != "vector" || len(d.Expr.Args) != 1 {
		t.Fatalf("call: %s", body)
	}
	arg := d.Expr.Args[0]
	if arg.Type != "matrixSelector" || arg.Name != "up" || arg.Range != 300000 || arg.Offset != 60000 || len(arg.Matchers) != 2 ||
		arg.Matchers[0]["name"] != "job" || arg.Matchers[0]["type"] != "=" || arg.Matchers[0]["value"] != "a" ||
		arg.Matchers[1]["name"] != "__name__" || arg.Matchers[1]["value"] != "up" {
		t.Fatalf("selector: %s", body)
	}
	code, body = post(t, srv, "/prometheus/api/v1/parse_query", url.Values{"query": {`-foo offset 1m`}}, "team-a")
	if want := `{"status":"success","data":{"expr":{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":60000,"offsetExpr":null,"smoothed":false,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"op":"-","type":"unaryExpr"}}`; code != http.StatusOK || body != want {
		t.Errorf("POST: got %d %s, want 200 %s", code, body, want)
	}
	code, body = get(t, srv, "/prometheus/api/v1/parse_query?query="+url.QueryEscape(`up{`), "team-a")
	if code != http.StatusBadRequest || !strings.HasPrefix(body, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:4: parse error: `) {
		t.Errorf("bad query: got %d %s", code, body)
	}
}

// The tenant's expression limits apply to format_query and parse_query as
// to the query routes: the parser's time grows with the nesting.
func TestAPIParseExpressionLimits(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{})
	deep := strings.Repeat("(", 20000) + "up" + strings.Repeat(")", 20000)
	for _, path := range []string{"/format_query", "/parse_query"} {
		code, body := post(t, srv, "/prometheus/api/v1"+path, url.Values{"query": {deep}}, "team-a")
		if want := `{"status":"error","errorType":"bad_data","error":"the query expression nests deeper than the limit of 256 levels at byte 256 (-query-frontend.max-query-expression-depth): every bracket, unary operator and binary operator in a chain adds a level"}`; code != http.StatusBadRequest || body != want {
			t.Errorf("%s: got %d %.300s, want 400 %s", path, code, body, want)
		}
	}
}
