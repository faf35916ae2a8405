package configs

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/configs/db"
	"github.com/cortex-tls/cortex/pkg/configs/db/dbtest"
)

const validAM = `route:
  receiver: team
receivers:
- name: team
  webhook_configs:
  - url: https://hooks.example/alert
`

// invalidAM misspells a field on line 6.
const invalidAM = `route:
  receiver: team
receivers:
- name: team
  webhook_configs:
  - urll: https://hooks.example/alert
`

const validRules = `groups:
- name: g
  rules:
  - alert: Down
    expr: up == 0
    for: 5m
`

type client struct {
	t *testing.T
	h http.Handler
}

func (c client) do(method, path, tenantID, body string) (int, string) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if tenantID != "" {
		req.Header.Set("X-Scope-OrgID", tenantID)
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newAPI(t *testing.T, uri string) (client, *db.DB) {
	t.Helper()
	d, err := db.Open(context.Background(), uri, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return client{t: t, h: NewAPI(d, slog.New(slog.DiscardHandler)).Handler(true)}, d
}

func TestAPI(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, uri string) {
		c, _ := newAPI(t, uri)
		const am = "/api/prom/configs/alertmanager"

		// No tenant: 401 on every tenant endpoint.
		for _, ep := range []struct{ method, path string }{
			{"GET", am}, {"POST", am}, {"POST", am + "/validate"}, {"GET", "/api/prom/configs/rules"},
			{"POST", "/api/prom/configs/rules"}, {"DELETE", "/api/prom/configs/deactivate"}, {"POST", "/api/prom/configs/restore"},
			{"GET", "/api/prom/configs/templates"}, {"POST", "/api/prom/configs/templates"},
		} {
			if code, body := c.do(ep.method, ep.path, "", "{}"); code != http.StatusUnauthorized {
				t.Errorf("%s %s without a tenant: %d %s, want 401", ep.method, ep.path, code, body)
			}
		}

		if code, _ := c.do("GET", am, "a", ""); code != http.StatusNotFound {
			t.Fatalf("GET before any config: %d, want 404", code)
		}
		post := AlertmanagerConfig{AlertmanagerConfig: validAM, TemplateFiles: map[string]string{"t.tmpl": `{{ define "x" }}{{ .Status }}{{ end }}`}}
		if code, body := c.do("POST", am, "a", jsonBody(t, post)); code != http.StatusNoContent {
			t.Fatalf("POST a valid config: %d %s", code, body)
		}
		code, body := c.do("GET", am, "a", "")
		var got View[AlertmanagerConfig]
		if code != 200 || json.Unmarshal([]byte(body), &got) != nil || got.ID <= 0 || got.Config.AlertmanagerConfig != validAM || got.Config.TemplateFiles["t.tmpl"] != post.TemplateFiles["t.tmpl"] {
			t.Fatalf("GET: %d %s", code, body)
		}
		// The raw JSON has exactly the contract's shape.
		var raw map[string]any
		_ = json.Unmarshal([]byte(body), &raw)
		if _, ok := raw["deleted_at"]; ok || raw["config"] == nil || raw["id"] == nil {
			t.Fatalf("GET body shape: %s", body)
		}

		// Isolation: b sees nothing of a.
		if code, _ := c.do("GET", am, "b", ""); code != http.StatusNotFound {
			t.Fatalf("tenant b GET: %d, want 404", code)
		}

		// An invalid config: 400 with the parser's line and field; nothing stored.
		code, body = c.do("POST", am, "a", jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: invalidAM}))
		if code != http.StatusBadRequest || !strings.Contains(body, "line 6") || !strings.Contains(body, "field urll not found") {
			t.Fatalf("POST an invalid config: %d %s, want 400 naming line 6 and field urll", code, body)
		}
		code, body = c.do("GET", am, "a", "")
		var after View[AlertmanagerConfig]
		if code != 200 || json.Unmarshal([]byte(body), &after) != nil || after.ID != got.ID {
			t.Fatalf("GET after a refused POST: %d %s, want version %d untouched", code, body, got.ID)
		}
		// Semantic errors, broken templates, malformed bodies.
		for name, tc := range map[string]struct{ body, want string }{
			"unknown receiver": {jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: "route:\n  receiver: nobody\n"}), `undefined receiver "nobody"`},
			"no route":         {jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: "global:\n  resolve_timeout: 1m\n"}), "no routes provided"},
			"empty":            {jsonBody(t, AlertmanagerConfig{}), "alertmanager_config is empty"},
			"template":         {jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: validAM, TemplateFiles: map[string]string{"bad.tmpl": "{{ define \"x\" }}\n{{ .Foo"}}), `invalid template file "bad.tmpl"`},
			"template name":    {jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: validAM, TemplateFiles: map[string]string{"../x": "hi"}}), "invalid template file name"},
			"not JSON":         {validAM, "invalid JSON body"},
		} {
			if code, body := c.do("POST", am, "a", tc.body); code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("%s: %d %s, want 400 with %q", name, code, body, tc.want)
			}
		}

		// validate: JSON or raw YAML bodies; nothing stored.
		for name, tc := range map[string]struct {
			body string
			code int
			want string
		}{
			"json valid":   {jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: validAM}), 200, `{"status":"success"}`},
			"yaml valid":   {validAM, 200, `{"status":"success"}`},
			"json invalid": {jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: invalidAM}), 400, `"status":"error","error":"invalid Alertmanager config: yaml: unmarshal errors:\n  line 6: field urll not found`},
			"yaml invalid": {invalidAM, 400, `line 6: field urll not found`},
		} {
			if code, body := c.do("POST", am+"/validate", "b", tc.body); code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("validate %s: %d %s, want %d with %s", name, code, body, tc.code, tc.want)
			}
		}
		if code, _ := c.do("GET", am, "b", ""); code != http.StatusNotFound {
			t.Fatalf("validate stored a config for b: GET %d", code)
		}

		// Private API: all, since, deactivated tenants with deleted_at.
		post2 := AlertmanagerConfig{AlertmanagerConfig: validAM}
		if code, body := c.do("POST", am, "b", jsonBody(t, post2)); code != http.StatusNoContent {
			t.Fatalf("POST b: %d %s", code, body)
		}
		all := private[AlertmanagerConfig](t, c, "/private/api/prom/configs/alertmanager")
		if len(all.Configs) != 2 || all.Configs["a"].ID != got.ID || all.Configs["b"].ID <= got.ID || all.Configs["b"].Config.TemplateFiles == nil {
			t.Fatalf("private, all: %+v", all)
		}
		idB := all.Configs["b"].ID
		if since := private[AlertmanagerConfig](t, c, "/private/api/prom/configs/alertmanager?since="+itoa(got.ID)); len(since.Configs) != 1 || since.Configs["b"].ID != idB {
			t.Fatalf("private since=%d: %+v", got.ID, since)
		}
		if code, body := c.do("GET", "/private/api/prom/configs/alertmanager?since=x", "", ""); code != http.StatusBadRequest {
			t.Fatalf("since=x: %d %s", code, body)
		}

		if code, body := c.do("DELETE", "/api/prom/configs/deactivate", "a", ""); code != http.StatusOK {
			t.Fatalf("deactivate: %d %s", code, body)
		}
		if code, _ := c.do("GET", am, "a", ""); code != http.StatusNotFound {
			t.Fatalf("GET after deactivate: %d, want 404", code)
		}
		code, body = c.do("GET", "/private/api/prom/configs/alertmanager?since="+itoa(idB), "", "")
		var since ConfigsResponse[AlertmanagerConfig]
		if code != 200 || json.Unmarshal([]byte(body), &since) != nil || len(since.Configs) != 1 || since.Configs["a"].DeletedAt == nil || since.Configs["a"].ID <= idB || !strings.Contains(body, `"deleted_at":"`) {
			t.Fatalf("private after deactivate: %d %s", code, body)
		}
		if code, body := c.do("POST", "/api/prom/configs/restore", "a", ""); code != http.StatusOK {
			t.Fatalf("restore: %d %s", code, body)
		}
		if code, body := c.do("GET", am, "a", ""); code != 200 || !strings.Contains(body, `"t.tmpl"`) {
			t.Fatalf("GET after restore: %d %s", code, body)
		}
		if code, _ := c.do("DELETE", "/api/prom/configs/deactivate", "nobody", ""); code != http.StatusNotFound {
			t.Fatalf("deactivate a tenant without configs: %d, want 404", code)
		}

		// Rules.
		const rules = "/api/prom/configs/rules"
		if code, _ := c.do("GET", rules, "a", ""); code != http.StatusNotFound {
			t.Fatalf("GET rules before any: %d", code)
		}
		if code, body := c.do("POST", rules, "a", jsonBody(t, RulesConfig{RulesFiles: map[string]string{"r.yaml": validRules}, RuleFormatVersion: "2"})); code != http.StatusNoContent {
			t.Fatalf("POST rules: %d %s", code, body)
		}
		code, body = c.do("GET", rules, "a", "")
		var rv View[RulesConfig]
		if code != 200 || json.Unmarshal([]byte(body), &rv) != nil || rv.Config.RulesFiles["r.yaml"] != validRules || rv.Config.RuleFormatVersion != "2" {
			t.Fatalf("GET rules: %d %s", code, body)
		}
		for name, tc := range map[string]struct {
			cfg  RulesConfig
			want string
		}{
			"bad expr":    {RulesConfig{RulesFiles: map[string]string{"r.yaml": strings.Replace(validRules, "up == 0", "up ==", 1)}, RuleFormatVersion: "2"}, `invalid rules file "r.yaml"`},
			"bad field":   {RulesConfig{RulesFiles: map[string]string{"r.yaml": strings.Replace(validRules, "for:", "fore:", 1)}, RuleFormatVersion: "2"}, "field fore not found"},
			"version one": {RulesConfig{RulesFiles: map[string]string{"r.yaml": validRules}, RuleFormatVersion: "1"}, "unsupported rule_format_version"},
		} {
			if code, body := c.do("POST", rules, "a", jsonBody(t, tc.cfg)); code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("rules %s: %d %s, want 400 with %q", name, code, body, tc.want)
			}
		}
		pr := private[RulesConfig](t, c, "/private/api/prom/configs/rules?since=0")
		if len(pr.Configs) != 1 || pr.Configs["a"].ID != rv.ID {
			t.Fatalf("private rules: %+v", pr)
		}
	})
}

// TestTemplates: the templates endpoint reads and replaces the template
// files of the tenant's Alertmanager configuration, keeping its
// alertmanager_config, for that tenant only.
func TestTemplates(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, uri string) {
		c, _ := newAPI(t, uri)
		const am, tp = "/api/prom/configs/alertmanager", "/api/prom/configs/templates"
		getTemplates := func(tenantID string) (int, View[TemplatesConfig], string) {
			t.Helper()
			code, body := c.do("GET", tp, tenantID, "")
			var v View[TemplatesConfig]
			if code == http.StatusOK {
				if err := json.Unmarshal([]byte(body), &v); err != nil {
					t.Fatalf("GET templates as %s: %v in %s", tenantID, err, body)
				}
			}
			return code, v, body
		}
		getAM := func(tenantID string) View[AlertmanagerConfig] {
			t.Helper()
			code, body := c.do("GET", am, tenantID, "")
			var v View[AlertmanagerConfig]
			if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil {
				t.Fatalf("GET alertmanager as %s: %d %s", tenantID, code, body)
			}
			return v
		}

		if code, _, body := getTemplates("a"); code != http.StatusNotFound {
			t.Fatalf("GET templates before any config: %d %s, want 404", code, body)
		}
		first := map[string]string{"old.tmpl": `{{ define "old" }}old{{ end }}`}
		if code, body := c.do("POST", am, "a", jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: validAM, TemplateFiles: first})); code != http.StatusNoContent {
			t.Fatalf("POST alertmanager: %d %s", code, body)
		}
		v0 := getAM("a")
		code, got, body := getTemplates("a")
		if code != http.StatusOK || got.ID != v0.ID || len(got.Config.TemplateFiles) != 1 || got.Config.TemplateFiles["old.tmpl"] != first["old.tmpl"] || strings.Contains(body, "alertmanager_config") {
			t.Fatalf("GET templates: %d %s, want version %d with old.tmpl only", code, body, v0.ID)
		}

		// POST replaces the files and keeps alertmanager_config.
		files := map[string]string{
			"a.tmpl": `{{ define "slack.title" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}{{ end }}`,
			"b.tmpl": "{{ define \"b\" }}\n{{ range .Alerts }}{{ .Labels.instance }}\n{{ end }}{{ end }}",
		}
		if code, body := c.do("POST", tp, "a", jsonBody(t, TemplatesConfig{TemplateFiles: files})); code != http.StatusNoContent || body != "" {
			t.Fatalf("POST templates: %d %q, want 204", code, body)
		}
		code, got, body = getTemplates("a")
		if code != http.StatusOK || got.ID <= v0.ID || len(got.Config.TemplateFiles) != 2 || got.Config.TemplateFiles["a.tmpl"] != files["a.tmpl"] || got.Config.TemplateFiles["b.tmpl"] != files["b.tmpl"] {
			t.Fatalf("GET templates after POST: %d %s, want a.tmpl and b.tmpl in a version above %d", code, body, v0.ID)
		}
		if v := getAM("a"); v.ID != got.ID || v.Config.AlertmanagerConfig != validAM || len(v.Config.TemplateFiles) != 2 {
			t.Fatalf("alertmanager config after POST templates: %+v, want version %d, the same alertmanager_config and the new files", v, got.ID)
		}
		// The alertmanagers' poll sees the new version with the files.
		all := private[AlertmanagerConfig](t, c, "/private/api/prom/configs/alertmanager?since="+itoa(v0.ID))
		if pv := all.Configs["a"]; len(all.Configs) != 1 || pv.ID != got.ID || pv.Config.AlertmanagerConfig != validAM || pv.Config.TemplateFiles["a.tmpl"] != files["a.tmpl"] {
			t.Fatalf("private API after POST templates: %+v", all)
		}

		// Another tenant reads none of a's templates, and its own POST
		// leaves a's untouched.
		if code, _, body := getTemplates("b"); code != http.StatusNotFound {
			t.Fatalf("tenant b GET templates: %d %s, want 404", code, body)
		}
		own := map[string]string{"b-only.tmpl": `{{ define "b" }}b{{ end }}`}
		if code, body := c.do("POST", tp, "b", jsonBody(t, TemplatesConfig{TemplateFiles: own})); code != http.StatusNoContent {
			t.Fatalf("tenant b POST templates: %d %s", code, body)
		}
		if code, bv, body := getTemplates("b"); code != http.StatusOK || len(bv.Config.TemplateFiles) != 1 || bv.Config.TemplateFiles["b-only.tmpl"] != own["b-only.tmpl"] {
			t.Fatalf("tenant b GET templates: %d %s, want only its own file", code, body)
		}
		// b had no Alertmanager configuration: it has one with only the
		// templates (its alertmanagers run the fallback with them).
		if bv := getAM("b"); bv.Config.AlertmanagerConfig != "" {
			t.Fatalf("tenant b's alertmanager_config: %q, want empty", bv.Config.AlertmanagerConfig)
		}
		if code, av, body := getTemplates("a"); code != http.StatusOK || av.ID != got.ID || len(av.Config.TemplateFiles) != 2 {
			t.Fatalf("tenant a after b's POST: %d %s, want version %d unchanged", code, body, got.ID)
		}

		// Refused posts store nothing.
		for name, tc := range map[string]struct {
			body string
			code int
			want string
		}{
			"parse error":   {jsonBody(t, TemplatesConfig{TemplateFiles: map[string]string{"bad.tmpl": "{{ define \"x\" }}\n{{ .Foo"}}), 400, `invalid template file "bad.tmpl"`},
			"path name":     {jsonBody(t, TemplatesConfig{TemplateFiles: map[string]string{"../../etc/x": "hi"}}), 400, `invalid template file name "../../etc/x"`},
			"unknown func":  {jsonBody(t, TemplatesConfig{TemplateFiles: map[string]string{"f.tmpl": `{{ readFile "/etc/passwd" }}`}}), 400, `function "readFile" not defined`},
			"other field":   {jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: validAM, TemplateFiles: files}), 400, `unknown field "alertmanager_config": POST /api/prom/configs/templates takes only template_files; post alertmanager_config to /api/prom/configs/alertmanager`},
			"not JSON":      {"{{ define }}", 400, "invalid JSON body"},
			"body too big":  {jsonBody(t, TemplatesConfig{TemplateFiles: map[string]string{"big.tmpl": strings.Repeat("x", maxBodySize)}}), 413, "request body over 10485760 bytes"},
			"unknown field": {`{"template_file": {}}`, 400, `unknown field "template_file"`},
		} {
			if code, body := c.do("POST", tp, "a", tc.body); code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("POST templates, %s: %d %s, want %d with %q", name, code, body, tc.code, tc.want)
			}
		}
		if code, av, body := getTemplates("a"); code != http.StatusOK || av.ID != got.ID {
			t.Fatalf("after refused posts: %d %s, want version %d", code, body, got.ID)
		}

		// The stored configuration, alertmanager_config and templates
		// together, is bounded like a posted one.
		bigAM := validAM + "# " + strings.Repeat("x", 6<<20) + "\n"
		if code, body := c.do("POST", am, "c", jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: bigAM})); code != http.StatusNoContent {
			t.Fatalf("POST a 6 MiB alertmanager config: %d %.200s", code, body)
		}
		tooMuch := jsonBody(t, TemplatesConfig{TemplateFiles: map[string]string{"big.tmpl": strings.Repeat("y", 5<<20)}})
		if code, body := c.do("POST", tp, "c", tooMuch); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "the tenant's Alertmanager configuration with these template files is over 10485760 bytes") {
			t.Fatalf("POST 5 MiB of templates onto 6 MiB: %d %s, want 413", code, body)
		}
		if code, cv, _ := getTemplates("c"); code != http.StatusOK || len(cv.Config.TemplateFiles) != 0 {
			t.Fatalf("c's templates after a refused POST: %d %+v", code, cv)
		}

		// An empty object clears the files.
		if code, body := c.do("POST", tp, "a", `{"template_files": {}}`); code != http.StatusNoContent {
			t.Fatalf("POST no templates: %d %s", code, body)
		}
		if code, av, body := getTemplates("a"); code != http.StatusOK || av.Config.TemplateFiles == nil || len(av.Config.TemplateFiles) != 0 || !strings.Contains(body, `"template_files":{}`) {
			t.Fatalf("GET after clearing: %d %s", code, body)
		}
		if v := getAM("a"); v.Config.AlertmanagerConfig != validAM {
			t.Fatalf("clearing the templates changed alertmanager_config: %q", v.Config.AlertmanagerConfig)
		}

		// Deactivation hides the templates; DELETE is the method, as in Cortex.
		if code, body := c.do("POST", "/api/prom/configs/deactivate", "a", ""); code != http.StatusMethodNotAllowed {
			t.Fatalf("POST deactivate: %d %s, want 405 (Cortex serves DELETE)", code, body)
		}
		if code, body := c.do("DELETE", "/api/prom/configs/deactivate", "a", ""); code != http.StatusOK {
			t.Fatalf("DELETE deactivate: %d %s", code, body)
		}
		if code, _, body := getTemplates("a"); code != http.StatusNotFound {
			t.Fatalf("GET templates of a deactivated tenant: %d %s, want 404", code, body)
		}
		// Templates posted for a deactivated tenant make a configuration of
		// their own: the deactivated alertmanager_config stays deactivated.
		if code, body := c.do("POST", tp, "a", jsonBody(t, TemplatesConfig{TemplateFiles: own})); code != http.StatusNoContent {
			t.Fatalf("POST templates for a deactivated tenant: %d %s", code, body)
		}
		if v := getAM("a"); v.Config.AlertmanagerConfig != "" || v.Config.TemplateFiles["b-only.tmpl"] != own["b-only.tmpl"] {
			t.Fatalf("after POST templates for a deactivated tenant: %+v, want only the templates", v)
		}
	})
}

func TestAuthDisabled(t *testing.T) {
	d, err := db.Open(context.Background(), "file:"+t.TempDir()+"/c.db", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := client{t: t, h: NewAPI(d, slog.New(slog.DiscardHandler)).Handler(false)}
	if code, body := c.do("POST", "/api/prom/configs/alertmanager", "", jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: validAM})); code != http.StatusNoContent {
		t.Fatalf("POST without auth: %d %s", code, body)
	}
	if all := private[AlertmanagerConfig](t, c, "/private/api/prom/configs/alertmanager"); len(all.Configs) != 1 || all.Configs["fake"].ID == 0 {
		t.Fatalf("the config went to %+v, want tenant fake", all)
	}
}

func TestDatabaseURI(t *testing.T) {
	var cfg Config
	fs := newFlagSet()
	cfg.RegisterFlags(fs)
	if string(cfg.Database.URI) != DefaultDatabaseURI {
		t.Fatalf("default URI %q", cfg.Database.URI)
	}
	if err := fs.Parse([]string{"-configs.database.uri=postgres://cortex:s3cret@db:5432/configs"}); err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Database.URI.MarshalYAML()
	if err != nil || strings.Contains(out.(string), "s3cret") || !strings.Contains(out.(string), "cortex:xxxxx@db") {
		t.Fatalf("YAML of the URI: %v %v, want the password masked", out, err)
	}
	if fs.Lookup("configs.database.uri").Value.String() != "postgres://cortex:xxxxx@db:5432/configs" {
		t.Fatalf("flag String: %s", fs.Lookup("configs.database.uri").Value.String())
	}

	// The password file replaces the URI's password.
	pw := t.TempDir() + "/pw"
	if err := writeFile(pw, "from-file\n"); err != nil {
		t.Fatal(err)
	}
	cfg.Database.PasswordFile = pw
	uri, err := cfg.Database.uri()
	if err != nil || uri != "postgres://cortex:from-file@db:5432/configs" {
		t.Fatalf("uri with password file: %q %v", uri, err)
	}
	cfg.Database.URI = "file:x.db"
	if _, err := cfg.Database.uri(); err == nil || !strings.Contains(err.Error(), "only for PostgreSQL") {
		t.Fatalf("password file with SQLite: %v", err)
	}
}

func private[C any](t *testing.T, c client, path string) ConfigsResponse[C] {
	t.Helper()
	code, body := c.do("GET", path, "", "")
	var out ConfigsResponse[C]
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return out
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
