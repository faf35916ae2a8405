package cortex

import (
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestRulerInAll: -target=all runs the ruler, which answers Prometheus'
// rules and alerts API with empty lists for a tenant with no rule, then
// evaluates a stored recording rule whose result is written through the
// distributor and queried back from the ingester.
func TestRulerInAll(t *testing.T) {
	cfg := loadConfig(t, "-ruler.evaluation-interval=1s", "-ruler.poll-interval=1s", "-ruler.enable-api=true")
	c := startProcess(t, cfg)
	for _, path := range []string{"/prometheus/api/v1/rules", "/api/prom/api/v1/rules"} {
		if code, body := get(t, c, http.MethodGet, path, "X-Scope-OrgID", "team-a"); code != http.StatusOK || body != `{"status":"success","data":{"groups":[]}}` {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	if code, body := get(t, c, http.MethodGet, "/prometheus/api/v1/alerts", "X-Scope-OrgID", "team-a"); code != http.StatusOK || body != `{"status":"success","data":{"alerts":[]}}` {
		t.Errorf("/prometheus/api/v1/alerts: %d %s", code, body)
	}
	if code, _ := get(t, c, http.MethodGet, "/prometheus/api/v1/rules"); code != http.StatusUnauthorized {
		t.Errorf("/prometheus/api/v1/rules without a tenant: %d, want 401", code)
	}

	// The group is stored through the configuration API (-ruler.enable-api).
	req, err := http.NewRequest(http.MethodPost, "http://"+c.Server.HTTPAddr().String()+"/api/v1/rules/ns",
		strings.NewReader("name: constants\nrules:\n  - record: team_a:answer\n    expr: vector(42)\n"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Scope-OrgID", "team-a")
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/v1/rules/ns: %s", resp.Status)
	}
	testkit.Eventually(t, 30*time.Second, "team_a:answer queried back", func() bool {
		code, body := get(t, c, http.MethodGet, "/prometheus/api/v1/query?query=team_a:answer", "X-Scope-OrgID", "team-a")
		return code == http.StatusOK && strings.Contains(body, `"value":[`) && strings.Contains(body, `,"42"]`)
	})
	code, body := get(t, c, http.MethodGet, "/prometheus/api/v1/rules", "X-Scope-OrgID", "team-a")
	if code != http.StatusOK || !strings.Contains(body, `"name":"constants","file":"ns","rules":[{"name":"team_a:answer","query":"vector(42)","labels":{},"health":"ok"`) {
		t.Errorf("team-a's rules: %d %s", code, body)
	}
	// Another tenant sees neither the rule nor its result.
	if code, body := get(t, c, http.MethodGet, "/prometheus/api/v1/query?query=team_a:answer", "X-Scope-OrgID", "team-b"); code != http.StatusOK || strings.Contains(body, "42") {
		t.Errorf("team-b's query: %d %s", code, body)
	}
	if code, body := get(t, c, http.MethodGet, "/prometheus/api/v1/rules", "X-Scope-OrgID", "team-b"); code != http.StatusOK || body != `{"status":"success","data":{"groups":[]}}` {
		t.Errorf("team-b's rules: %d %s", code, body)
	}
}

func TestRulerTargetNeedsASharedRing(t *testing.T) {
	_, err := New(loadConfig(t, "-target=ruler"), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "-ring.store=inmemory only works when every component runs in one process (-target=all), but -target=ruler") {
		t.Fatalf("got %v, want the in-memory ring refused for -target=ruler", err)
	}
}

func TestRulerAlertmanagerClientFilesCheckedAtStartup(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing-ca.crt")
	_, err := New(loadConfig(t, "-ruler.alertmanager-url=https://127.0.0.1:9/alertmanager", "-ruler.alertmanager-client.tls-ca-path="+missing), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "-ruler.alertmanager-client.tls-ca-path="+missing+": file does not exist") {
		t.Fatalf("got %v, want the missing -ruler.alertmanager-client.tls-ca-path file named", err)
	}
	_, err = New(loadConfig(t, "-ruler.alertmanager-url=http://127.0.0.1:9", "-ruler.alertmanager-client.tls-ca-path="+missing), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "is plain HTTP but -ruler.alertmanager-client.tls-* flags are set") {
		t.Fatalf("got %v, want the plain HTTP URL with TLS flags refused", err)
	}
}
