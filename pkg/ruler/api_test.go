package ruler_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/api"
	"github.com/cortex-tls/cortex/pkg/ruler"
	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// newStore is the store the ruler API writes to by default: the bucket
// store over a filesystem bucket.
func newStore(t *testing.T) *rulestore.BucketStore {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return rulestore.NewBucketStore(bkt, nil)
}

// newConfigAPI mounts the configuration API over store on the process's
// route table, tenants required, as the ruler module does.
func newConfigAPI(t *testing.T, store rulestore.Store, limits validation.Limits, perTenant map[string]*validation.Limits) http.Handler {
	t.Helper()
	mux := http.NewServeMux()
	a := api.New(mux, true, "ruler", api.Auth{})
	a.RegisterRulerConfigAPI(ruler.NewConfigAPI(store, validation.NewOverrides(limits, func() map[string]*validation.Limits { return perTenant }), nil), []string{"/prometheus", "/api/prom"})
	return mux
}

type answer struct {
	code        int
	body        string
	contentType string
	allow       string
}

func call(t *testing.T, h http.Handler, method, path, tenantID, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if tenantID != "" {
		req.Header.Set(tenant.HeaderName, tenantID)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{code: rec.Code, body: rec.Body.String(), contentType: rec.Header().Get("Content-Type"), allow: rec.Header().Get("Allow")}
}

func expect(t *testing.T, what string, got answer, code int, body string) {
	t.Helper()
	if got.code != code || got.body != body {
		t.Errorf("%s: got %d %q, want %d %q", what, got.code, got.body, code, body)
	}
}

const (
	accepted = `{"status":"success","data":null,"errorType":"","error":""}`

	recordingGroup = `name: node
interval: 15s
rules:
- record: job:up:sum
  expr: sum by (job) (up)
- alert: InstanceDown
  expr: up == 0
  for: 5m
  labels:
    severity: page
  annotations:
    summary: "{{ $labels.instance }} is down"
`
	// The group as Cortex answers it: yaml.v3, four-space indents,
	// labels before annotations.
	recordingGroupYAML = `name: node
interval: 15s
rules:
    - record: job:up:sum
      expr: sum by (job) (up)
    - alert: InstanceDown
      expr: up == 0
      for: 5m
      labels:
        severity: page
      annotations:
        summary: '{{ $labels.instance }} is down'
`
	// Within a namespace's list, yaml.v3 indents a group's rules by two.
	nestedGroupYAML = `    - name: node
      interval: 15s
      rules:
        - record: job:up:sum
          expr: sum by (job) (up)
        - alert: InstanceDown
          expr: up == 0
          for: 5m
          labels:
            severity: page
          annotations:
            summary: '{{ $labels.instance }} is down'
`
)

func TestConfigAPIStoresListsAndDeletesGroups(t *testing.T) {
	store := newStore(t)
	h := newConfigAPI(t, store, validation.Limits{}, nil)

	// Nothing yet.
	expect(t, "empty listing", call(t, h, http.MethodGet, "/api/v1/rules", "team-a", ""), http.StatusNotFound, "no rule groups found\n")

	// A namespace with a slash, escaped as cortextool escapes it.
	got := call(t, h, http.MethodPost, "/api/v1/rules/infra%2Fnodes", "team-a", recordingGroup)
	expect(t, "create", got, http.StatusAccepted, accepted)
	if got.contentType != "application/json" {
		t.Errorf("create answered Content-Type %q, want application/json", got.contentType)
	}
	if g, err := store.GetRuleGroup(context.Background(), "team-a", "infra/nodes", "node"); err != nil || len(g.Group.Rules) != 2 || g.Group.Rules[1].Labels["severity"] != "page" {
		t.Fatalf("stored group: %+v, %v", g, err)
	}
	// A JSON body, as Grafana's rule editor posts it, in a second namespace.
	expect(t, "create from JSON", call(t, h, http.MethodPost, "/api/v1/rules/apps", "team-a",
		`{"name":"latency","interval":"1m","rules":[{"alert":"SlowRequests","expr":"histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m])) > 1","for":"10m","labels":{"severity":"warning"}}]}`),
		http.StatusAccepted, accepted)

	got = call(t, h, http.MethodGet, "/api/v1/rules/infra%2Fnodes/node", "team-a", "")
	expect(t, "get group", got, http.StatusOK, recordingGroupYAML)
	if got.contentType != "application/yaml" {
		t.Errorf("get group answered Content-Type %q, want application/yaml", got.contentType)
	}
	expect(t, "namespace listing", call(t, h, http.MethodGet, "/api/v1/rules/infra%2Fnodes", "team-a", ""), http.StatusOK,
		"infra/nodes:\n"+nestedGroupYAML)
	wantAll := `apps:
    - name: latency
      interval: 1m
      rules:
        - alert: SlowRequests
          expr: histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m])) > 1
          for: 10m
          labels:
            severity: warning
infra/nodes:
` + nestedGroupYAML
	expect(t, "full listing", call(t, h, http.MethodGet, "/api/v1/rules", "team-a", ""), http.StatusOK, wantAll)
	// Cortex's legacy path, and the paths Grafana's rule editor derives from
	// a Cortex or Mimir data source at either prefix, answer the same.
	for _, p := range []string{"/api/prom/rules", "/prometheus/rules", "/prometheus/config/v1/rules", "/api/prom/config/v1/rules"} {
		expect(t, p, call(t, h, http.MethodGet, p, "team-a", ""), http.StatusOK, wantAll)
		expect(t, p+"/{namespace}/{groupName}", call(t, h, http.MethodGet, p+"/infra%2Fnodes/node", "team-a", ""), http.StatusOK, recordingGroupYAML)
	}

	// Another tenant sees none of it.
	expect(t, "other tenant's listing", call(t, h, http.MethodGet, "/api/v1/rules", "team-b", ""), http.StatusNotFound, "no rule groups found\n")
	expect(t, "other tenant's group", call(t, h, http.MethodGet, "/api/v1/rules/infra%2Fnodes/node", "team-b", ""), http.StatusNotFound, "group does not exist\n")
	expect(t, "other tenant's delete", call(t, h, http.MethodDelete, "/api/v1/rules/apps", "team-b", ""), http.StatusNotFound, "group namespace does not exist\n")

	// Replacing a group keeps one group of that name.
	expect(t, "replace", call(t, h, http.MethodPost, "/api/v1/rules/infra%2Fnodes", "team-a", "name: node\nrules:\n- record: job:up:count\n  expr: count by (job) (up)\n"), http.StatusAccepted, accepted)
	expect(t, "replaced group", call(t, h, http.MethodGet, "/api/v1/rules/infra%2Fnodes/node", "team-a", ""), http.StatusOK,
		"name: node\nrules:\n    - record: job:up:count\n      expr: count by (job) (up)\n")

	// Deletes, under both prefixes.
	expect(t, "delete group", call(t, h, http.MethodDelete, "/api/prom/rules/infra%2Fnodes/node", "team-a", ""), http.StatusAccepted, accepted)
	expect(t, "deleted group", call(t, h, http.MethodGet, "/api/v1/rules/infra%2Fnodes/node", "team-a", ""), http.StatusNotFound, "group does not exist\n")
	expect(t, "delete it again", call(t, h, http.MethodDelete, "/api/v1/rules/infra%2Fnodes/node", "team-a", ""), http.StatusNotFound, "group does not exist\n")
	expect(t, "delete namespace", call(t, h, http.MethodDelete, "/prometheus/config/v1/rules/apps", "team-a", ""), http.StatusAccepted, accepted)
	expect(t, "listing after deletes", call(t, h, http.MethodGet, "/api/v1/rules", "team-a", ""), http.StatusNotFound, "no rule groups found\n")

	// The route table requires the tenant.
	if got := call(t, h, http.MethodGet, "/api/v1/rules", "", ""); got.code != http.StatusUnauthorized || !strings.Contains(got.body, tenant.HeaderName) {
		t.Errorf("request without a tenant: %d %q, want 401 naming %s", got.code, got.body, tenant.HeaderName)
	}
	if got := call(t, h, http.MethodPut, "/api/v1/rules/apps", "team-a", recordingGroup); got.code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", got.code)
	}
}

func TestConfigAPIRefusesInvalidGroups(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"empty body", "", "invalid rules config: rule group name must not be empty"},
		{"no name", "interval: 15s\nrules:\n- record: up_rule\n  expr: up\n", "invalid rules config: rule group name must not be empty"},
		{"no rules", "name: rg_name\ninterval: 15s\n", "invalid rules config: rule group 'rg_name' has no rules"},
		{"bad expression", "name: g\nrules:\n- record: job:up:sum\n  expr: sum by (job (up)\n",
			`4:9: group "g", rule 1, "job:up:sum": could not parse expression: 1:13: parse error: unexpected "(" in grouping opts, expected "," or ")"`},
		{"bad expression of the second rule", "name: g\nrules:\n- record: a:b\n  expr: up\n- alert: Broken\n  expr: rate(up[5m]) >\n",
			`6:9: group "g", rule 2, "Broken": could not parse expression: 1:15: parse error: unexpected end of input`},
		{"bad for", "name: g\nrules:\n- alert: Slow\n  expr: up > 1\n  for: 5x\n",
			`5:8: group "g", rule 1, "Slow": field for: unknown unit "x" in duration "5x"`},
		{"negative for", "name: g\nrules:\n- alert: Slow\n  expr: up > 1\n  for: -5m\n",
			`5:8: group "g", rule 1, "Slow": field for: not a valid duration string: "-5m"`},
		{"for on a recording rule", "name: g\nrules:\n- record: job:up:sum\n  expr: sum(up)\n  for: 5m\n",
			`3:11: group "g", rule 1, "job:up:sum": invalid field 'for' in recording rule`},
		{"record and alert", "name: g\nrules:\n- record: a:b\n  alert: AB\n  expr: up\n",
			`3:11: 4:10: group "g", rule 1, "AB": only one of 'record' and 'alert' must be set`},
		{"no expression", "name: g\nrules:\n- record: a:b\n",
			`0:0: group "g", rule 1, "a:b": field 'expr' must be set in rule`},
		{"misspelt field", "name: g\nrules:\n- record: a:b\n  expresion: up\n",
			`4:3: group "g", rule 1, "a:b": field "expresion" not found in a rule (fields: record, alert, expr, for, keep_firing_for, labels, annotations)`},
		{"misspelt group field", "name: g\nintervall: 1m\nrules:\n- record: a:b\n  expr: up\n",
			`unable to decode rule group: 2:1: field "intervall" not found in a rule group (fields: name, interval, query_offset, limit, rules, labels)`},
		{"bad interval", "name: g\ninterval: often\nrules:\n- record: a:b\n  expr: up\n",
			`unable to decode rule group: 2:11: field interval: not a valid duration string: "often"`},
		{"labels as a list", "name: g\nrules:\n- alert: A\n  expr: up\n  labels: [a, b]\n",
			`5:11: group "g", rule 1, "A": field labels: line 5: cannot unmarshal !!seq into map[string]string`},
		{"duplicate recording rule", "name: g\nrules:\n- record: job:up:sum\n  expr: sum by (job) (up)\n- record: job:up:sum\n  expr: sum by (job) (up{env=\"prod\"})\n",
			`5:3: group "g", rule 2, "job:up:sum": duplicate of rule 1: both record the same series (same name and labels)`},
		{"duplicate alert", "name: g\nrules:\n- alert: Down\n  expr: up == 0\n  labels: {severity: page}\n- alert: Down\n  expr: up == 0\n  labels: {severity: page}\n",
			`6:3: group "g", rule 2, "Down": duplicate of rule 1: the same alert (same name, expression and labels)`},
		{"bad label name", "name: g\nrules:\n- alert: A\n  expr: up\n  labels:\n    __name__: x\n",
			`group "g", rule 1, "A": invalid label name: __name__`},
		{"bad annotation template", "name: g\nrules:\n- alert: A\n  expr: up\n  annotations:\n    summary: '{{ .Foo '\n",
			`group "g", rule 1, "A": annotation "summary": template: __alert_A:1: unclosed action`},
		{"bad group label", "name: g\nlabels:\n  __name__: x\nrules:\n- record: a:b\n  expr: up\n",
			`invalid rules config: group "g": invalid label name: __name__`},
		{"a federated group", "name: g\nsource_tenants: [team-b]\nrules:\n- record: a:b\n  expr: up\n",
			"unable to decode rule group: 2:17: field source_tenants: federated rule groups (rules over other tenants' data) are not supported; remove source_tenants"},
		{"a rule file", "groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: up\n",
			"unable to decode rule group: 1:1: the body is a rule file (a list of groups): post each group on its own, as a mapping with name, interval and rules"},
		{"two documents", "name: g\nrules:\n- record: a:b\n  expr: up\n---\nname: h\n",
			"unable to decode rule group: the body holds more than one YAML document; post one rule group per request"},
		{"not YAML", "name: g\nrules:\n- record: a:b\n  expr: up\n   bad: indent\n",
			"unable to decode rule group: yaml: line 5: mapping values are not allowed in this context"},
		{"duplicate key", "name: g\nname: h\nrules:\n- record: a:b\n  expr: up\n",
			`unable to decode rule group: 2:1: field "name" given twice, first at line 1`},
		{"duplicate key in a rule", "name: g\nrules:\n- record: a:b\n  expr: up\n  expr: down\n",
			`5:3: group "g", rule 1, "a:b": field "expr" given twice, first at line 4`},
		{"rules not a list", "name: g\nrules: up\n",
			`unable to decode rule group: 2:8: field rules: want a list of rules, got "up"`},
		{"a list", "- name: g\n",
			"unable to decode rule group: 1:1: want a mapping with name, interval and rules, got a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newStore(t)
			h := newConfigAPI(t, store, validation.Limits{}, nil)
			expect(t, "create", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", tc.body), http.StatusBadRequest, tc.want+"\n")
			if groups, _ := store.ListRuleGroups(context.Background(), "team-a", ""); len(groups) != 0 {
				t.Errorf("a refused group was stored: %+v", groups)
			}
		})
	}
}

func TestConfigAPIAcceptsUsualGroups(t *testing.T) {
	h := newConfigAPI(t, newStore(t), validation.Limits{}, nil)
	for name, body := range map[string]string{
		// A warning and a critical threshold of one alert, as the
		// Kubernetes mixins write them.
		"alerts sharing a name": `name: volumes
rules:
- alert: KubePersistentVolumeFillingUp
  expr: kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes < 0.03
  for: 1m
  labels: {severity: critical}
- alert: KubePersistentVolumeFillingUp
  expr: kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes < 0.15
  for: 1h
  labels: {severity: warning}
`,
		// Quantiles of one recorded series, told apart by their labels.
		"recordings told apart by labels": `name: quantiles
rules:
- record: job:latency:quantile
  expr: histogram_quantile(0.5, sum by (job, le) (rate(latency_bucket[5m])))
  labels: {quantile: "0.5"}
- record: job:latency:quantile
  expr: histogram_quantile(0.99, sum by (job, le) (rate(latency_bucket[5m])))
  labels: {quantile: "0.99"}
`,
		"every group field": `name: all
interval: 30s
query_offset: 1m
limit: 100
labels: {team: infra}
rules:
- alert: Down
  expr: up == 0
  keep_firing_for: 5m
`,
		// Grafana's rule editor, with no source tenants.
		"an empty source_tenants": `{"name":"grafana","source_tenants":[],"rules":[{"alert":"Down","expr":"up == 0","for":"5m","labels":{},"annotations":{}}]}`,
		"a UTF-8 metric name":     "name: utf8\nrules:\n- record: \"job:up.sum\"\n  expr: sum by (job) ({\"up.total\"})\n",
	} {
		expect(t, name, call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", body), http.StatusAccepted, accepted)
	}
}

func TestConfigAPILimits(t *testing.T) {
	store := newStore(t)
	limits := validation.Limits{RulerMaxRulesPerRuleGroup: 2, RulerMaxRuleGroupsPerTenant: 2}
	// team-b has its own limits from the runtime configuration.
	h := newConfigAPI(t, store, limits, map[string]*validation.Limits{"team-b": {RulerMaxRulesPerRuleGroup: 3, RulerMaxRuleGroupsPerTenant: 1}})
	group := func(name string, rules int) string {
		b := "name: " + name + "\nrules:\n"
		for i := range rules {
			b += fmt.Sprintf("- record: r:%d\n  expr: up\n", i)
		}
		return b
	}

	expect(t, "three rules", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", group("big", 3)), http.StatusBadRequest,
		`rule group "big": per-user rules per rule group limit (limit: 2 actual: 3) exceeded (-ruler.max-rules-per-rule-group)`+"\n")
	expect(t, "two rules", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", group("one", 2)), http.StatusAccepted, accepted)
	expect(t, "second group", call(t, h, http.MethodPost, "/api/v1/rules/other", "team-a", group("two", 1)), http.StatusAccepted, accepted)
	expect(t, "third group", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", group("three", 1)), http.StatusBadRequest,
		`rule group "three": per-user rule groups limit (limit: 2 actual: 3) exceeded (-ruler.max-rule-groups-per-tenant)`+"\n")
	// Replacing a group at the limit adds none.
	expect(t, "replacing at the limit", call(t, h, http.MethodPost, "/api/v1/rules/other", "team-a", group("two", 2)), http.StatusAccepted, accepted)
	// The same group name in another namespace is another group.
	expect(t, "same name elsewhere", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", group("two", 1)), http.StatusBadRequest,
		`rule group "two": per-user rule groups limit (limit: 2 actual: 3) exceeded (-ruler.max-rule-groups-per-tenant)`+"\n")

	// Per-tenant overrides.
	expect(t, "team-b's three rules", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-b", group("big", 3)), http.StatusAccepted, accepted)
	expect(t, "team-b's second group", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-b", group("more", 1)), http.StatusBadRequest,
		`rule group "more": per-user rule groups limit (limit: 1 actual: 2) exceeded (-ruler.max-rule-groups-per-tenant)`+"\n")
}

func TestConfigAPIExpressionLimits(t *testing.T) {
	store := newStore(t)
	h := newConfigAPI(t, store, validation.Limits{MaxQueryExpressionSizeBytes: 64, MaxQueryExpressionDepth: 8}, nil)
	long := "sum by (job) (rate(http_requests_total{code=~\"5..\", env=\"production\"}[5m]))"
	expect(t, "long expression", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", "name: g\nrules:\n- record: job:errors:rate5m\n  expr: '"+long+"'\n"), http.StatusBadRequest,
		fmt.Sprintf(`4:9: group "g", rule 1, "job:errors:rate5m": the rule expression is %d bytes long, over the limit of 64 bytes (-query-frontend.max-query-expression-size-bytes)`, len(long))+"\n")
	deep := strings.Repeat("(", 10) + "up" + strings.Repeat(")", 10)
	expect(t, "deep expression", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", "name: g\nrules:\n- alert: Deep\n  expr: "+deep+"\n"), http.StatusBadRequest,
		`4:9: group "g", rule 1, "Deep": the rule expression nests deeper than the limit of 8 levels at byte 8 (-query-frontend.max-query-expression-depth): every bracket, unary operator and binary operator in a chain adds a level`+"\n")
	expect(t, "expression within the limits", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", "name: g\nrules:\n- record: job:up:sum\n  expr: sum by (job) (up)\n"), http.StatusAccepted, accepted)
}

func TestConfigAPIBoundsTheBody(t *testing.T) {
	store := newStore(t)
	h := newConfigAPI(t, store, validation.Limits{}, nil)
	body := "name: big\nrules:\n- record: a:b\n  expr: up\n" + "# " + strings.Repeat("x", ruler.MaxRuleGroupBytes) + "\n"
	expect(t, "oversized body", call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", body), http.StatusRequestEntityTooLarge,
		"request body too large: a rule group may be at most 1048576 bytes\n")
	if groups, _ := store.ListRuleGroups(context.Background(), "team-a", ""); len(groups) != 0 {
		t.Errorf("an oversized group was stored: %+v", groups)
	}
}

func TestConfigAPIReadOnlyStore(t *testing.T) {
	// The local store: the operator's rule files, read-only.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "team-a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "team-a", "ns"), []byte("groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newConfigAPI(t, rulestore.NewLocalStore(dir, nil), validation.Limits{}, nil)
	expect(t, "listing", call(t, h, http.MethodGet, "/api/v1/rules", "team-a", ""), http.StatusOK, "ns:\n    - name: g\n      rules:\n        - record: a:b\n          expr: up\n")

	refusal := "-ruler-storage.backend=local is read-only; edit the rule files under -ruler-storage.local.directory=" + dir + ": rule store is read-only\n"
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/rules/ns", "name: g\nrules:\n- record: a:b\n  expr: up\n"},
		{http.MethodDelete, "/api/v1/rules/ns/g", ""},
		{http.MethodDelete, "/api/v1/rules/ns", ""},
	} {
		got := call(t, h, c.method, c.path, "team-a", c.body)
		expect(t, c.method+" "+c.path, got, http.StatusMethodNotAllowed, refusal)
		if got.allow != http.MethodGet {
			t.Errorf("%s %s: Allow %q, want GET", c.method, c.path, got.allow)
		}
	}
}

// failingBucket is object storage that cannot be reached.
type failingBucket struct {
	objstore.Bucket
	err error
}

func (b failingBucket) Iter(context.Context, string, func(string) error, ...objstore.IterOption) error {
	return b.err
}

func (b failingBucket) IterWithAttributes(context.Context, string, func(objstore.IterObjectAttributes) error, ...objstore.IterOption) error {
	return b.err
}

func (b failingBucket) Get(context.Context, string) (io.ReadCloser, error) { return nil, b.err }

func (b failingBucket) Exists(context.Context, string) (bool, error) { return false, b.err }

func (b failingBucket) Upload(context.Context, string, io.Reader, ...objstore.ObjectUploadOption) error {
	return b.err
}

func (b failingBucket) Delete(context.Context, string) error { return b.err }

func TestConfigAPIStoreFailures(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const unreachable = "dial tcp 127.0.0.1:9000: connect: connection refused"
	store := rulestore.NewBucketStore(failingBucket{Bucket: bkt, err: errors.New(unreachable)}, nil)
	h := newConfigAPI(t, store, validation.Limits{RulerMaxRuleGroupsPerTenant: 5}, nil)
	for _, c := range []struct{ what, method, path, body string }{
		{"listing", http.MethodGet, "/api/v1/rules", ""},
		{"get", http.MethodGet, "/api/v1/rules/ns/g", ""},
		{"delete group", http.MethodDelete, "/api/v1/rules/ns/g", ""},
		{"delete namespace", http.MethodDelete, "/api/v1/rules/ns", ""},
		// The group-count limit needs the tenant's groups.
		{"create under a group limit", http.MethodPost, "/api/v1/rules/ns", "name: g\nrules:\n- record: a:b\n  expr: up\n"},
	} {
		got := call(t, h, c.method, c.path, "team-a", c.body)
		var resp struct{ Status, ErrorType, Error string }
		if got.code != http.StatusInternalServerError || json.Unmarshal([]byte(got.body), &resp) != nil ||
			resp.Status != "error" || resp.ErrorType != "server_error" || !strings.Contains(resp.Error, unreachable) {
			t.Errorf("%s: got %d %q, want 500 with a server_error naming %q", c.what, got.code, got.body, unreachable)
		}
	}

	h = newConfigAPI(t, store, validation.Limits{}, nil)
	got := call(t, h, http.MethodPost, "/api/v1/rules/ns", "team-a", "name: g\nrules:\n- record: a:b\n  expr: up\n")
	if got.code != http.StatusInternalServerError || !strings.Contains(got.body, unreachable) {
		t.Errorf("create with a failing write: got %d %q, want 500 naming %q", got.code, got.body, unreachable)
	}
}

func TestConfigAPIIsOffByDefault(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{{nil, false}, {[]string{"-ruler.enable-api"}, true}} {
		var cfg ruler.APIConfig
		fs := flag.NewFlagSet("ruler", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if cfg.EnableAPI != tc.want {
			t.Errorf("%q: EnableAPI %v, want %v", tc.args, cfg.EnableAPI, tc.want)
		}
	}
}

func TestConfigAPIRefusesCrossSiteWrites(t *testing.T) {
	store := newStore(t)
	h := newConfigAPI(t, store, validation.Limits{}, nil)
	group := "name: g\nrules:\n- record: a:b\n  expr: up\n"
	send := func(method, path string, header ...string) answer {
		req := httptest.NewRequest(method, path, strings.NewReader(group))
		req.Header.Set(tenant.HeaderName, "team-a")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return answer{code: rec.Code, body: rec.Body.String()}
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/rules/ns"},
		{http.MethodDelete, "/api/v1/rules/ns"},
		{http.MethodDelete, "/api/v1/rules/ns/g"},
	} {
		expect(t, c.method+" "+c.path+" from another site", send(c.method, c.path, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden,
			"forbidden: rule groups are not changed by a browser request from another site (cross-origin request detected from Sec-Fetch-Site header)\n")
		if got := send(c.method, c.path, "Origin", "https://evil.example"); got.code != http.StatusForbidden {
			t.Errorf("%s %s with a foreign Origin: %d %q, want 403", c.method, c.path, got.code, got.body)
		}
	}
	if groups, _ := store.ListRuleGroups(context.Background(), "team-a", ""); len(groups) != 0 {
		t.Errorf("a cross-site write was stored: %+v", groups)
	}
	// The same site's pages, and clients that are not browsers, write.
	expect(t, "same-origin POST", send(http.MethodPost, "/api/v1/rules/ns", "Sec-Fetch-Site", "same-origin"), http.StatusAccepted, accepted)
	expect(t, "reading from another site", send(http.MethodGet, "/api/v1/rules/ns/g", "Sec-Fetch-Site", "cross-site"), http.StatusOK, "name: g\nrules:\n    - record: a:b\n      expr: up\n")
	expect(t, "DELETE without browser headers", send(http.MethodDelete, "/api/v1/rules/ns/g"), http.StatusAccepted, accepted)
}
