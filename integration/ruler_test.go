package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/configs"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// rulerTestRules: a recording rule, and an alert on its result as read back
// from the ingesters.
const rulerTestRules = `groups:
- name: answers
  rules:
  - record: tenant_a:answer
    expr: vector(42)
  - alert: AnswerTooHigh
    expr: tenant_a:answer > 40
    labels:
      severity: page
`

// rulerCluster runs a configs service holding tenant-a's rules and both
// tenants' Alertmanager configurations (each notifying its own path of an
// HTTPS webhook), a multi-tenant alertmanager polling it, and a -target=all
// process whose ruler reads the rules from the configs service
// (-ruler-storage.backend=configdb) and sends alerts to the alertmanager
// with the -ruler.alertmanager-client.tls-* flags given. Every link is
// mutual TLS.
func rulerCluster(t *testing.T, amClientFlags func(certs string) []string) (all, am *testkit.Cortex, hc *http.Client, hook *testkit.AlertWebhook) {
	t.Helper()
	certs, hc, hook, cfgs := startConfigsWithTenantA(t)
	postAMConfig(t, hc, cfgs, "tenant-b", hook.Config("/b"))
	if code, out := do(t, hc, http.MethodPost, "https://"+cfgs.HTTPAddr+"/api/prom/configs/rules", "tenant-a",
		configs.RulesConfig{RuleFormatVersion: "2", RulesFiles: map[string]string{"answers.yaml": rulerTestRules}}); code != http.StatusNoContent {
		t.Fatalf("POST tenant-a's rules: %d %s", code, out)
	}
	am = testkit.StartCortex(t, alertmanagerFlags(certs, cfgs, filepath.Join(t.TempDir(), "am"), filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key"))...)
	waitReady(am, hc)

	flags := append(append(mtlsFlags(certs), ingesterClientFlags(certs)...),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
		"-ruler-storage.backend=configdb",
		"-ruler-storage.configs.url=https://"+cfgs.HTTPAddr,
		"-ruler-storage.configs.tls-cert-path="+filepath.Join(certs, "client.crt"),
		"-ruler-storage.configs.tls-key-path="+filepath.Join(certs, "client.key"),
		"-ruler-storage.configs.tls-ca-path="+filepath.Join(certs, "root.crt"),
		"-ruler.alertmanager-url=https://"+am.HTTPAddr+"/alertmanager",
		"-ruler.evaluation-interval=1s",
		"-ruler.poll-interval=1s",
		"-ruler.resend-delay=1s",
	)
	all = testkit.StartCortex(t, append(flags, amClientFlags(certs)...)...)
	waitReady(all, hc)
	return all, am, hc, hook
}

// TestRulerMutualTLS: rules stored in the configs service are evaluated for
// their tenant; the recording rule's result is queried back, the alert on it
// reaches the tenant's webhook through the multi-tenant alertmanager, and
// the other tenant sees none of it.
func TestRulerMutualTLS(t *testing.T) {
	t.Parallel()
	all, am, hc, hook := rulerCluster(t, func(certs string) []string {
		return []string{
			"-ruler.alertmanager-client.tls-cert-path=" + filepath.Join(certs, "client.crt"),
			"-ruler.alertmanager-client.tls-key-path=" + filepath.Join(certs, "client.key"),
			"-ruler.alertmanager-client.tls-ca-path=" + filepath.Join(certs, "root.crt"),
		}
	})
	base := "https://" + all.HTTPAddr + "/prometheus/api/v1"
	query := base + "/query?query=" + url.QueryEscape("tenant_a:answer")
	all.EventuallyNil(30*time.Second, "tenant_a:answer queried back", func() error {
		if code, body := do(t, hc, http.MethodGet, query, "tenant-a", nil); code != http.StatusOK || !strings.Contains(body, `"__name__":"tenant_a:answer"`) || !strings.Contains(body, `,"42"]`) {
			return fmt.Errorf("it answers %d %s", code, body)
		}
		return nil
	})
	hook.WaitFor(t, "/a", "AnswerTooHigh")

	code, body := do(t, hc, http.MethodGet, base+"/rules", "tenant-a", nil)
	if code != http.StatusOK || !strings.Contains(body, `{"name":"answers","file":"answers.yaml","rules":[{"name":"tenant_a:answer","query":"vector(42)","labels":{},"health":"ok"`) ||
		!strings.Contains(body, `"state":"firing","name":"AnswerTooHigh","query":"tenant_a:answer \u003e 40"`) {
		t.Errorf("tenant-a's rules: %d %s", code, body)
	}
	code, body = do(t, hc, http.MethodGet, base+"/alerts", "tenant-a", nil)
	if code != http.StatusOK || !strings.Contains(body, `"labels":{"alertname":"AnswerTooHigh","severity":"page"}`) {
		t.Errorf("tenant-a's alerts: %d %s", code, body)
	}

	// tenant-b has neither the rules, nor their results, nor the alert.
	for path, want := range map[string]string{
		"/rules":  `{"status":"success","data":{"groups":[]}}`,
		"/alerts": `{"status":"success","data":{"alerts":[]}}`,
	} {
		if code, body := do(t, hc, http.MethodGet, base+path, "tenant-b", nil); code != http.StatusOK || body != want {
			t.Errorf("tenant-b's %s: %d %s, want %s", path, code, body, want)
		}
	}
	if code, body := do(t, hc, http.MethodGet, query, "tenant-b", nil); code != http.StatusOK || !strings.Contains(body, `"result":[]`) {
		t.Errorf("tenant-b's query of tenant_a:answer: %d %s", code, body)
	}
	if got := hook.Received("/b"); len(got) != 0 {
		t.Errorf("tenant-b's webhook received %v", got)
	}
	sent := `cortex_prometheus_notifications_sent_total{alertmanager="https://` + am.HTTPAddr + `/alertmanager/api/v2/alerts",user="tenant-a"}`
	if v := metricOf(t, hc, all, sent); v < 1 {
		t.Errorf("%s = %v, want at least 1", sent, v)
	}
}

// TestRulerAlertmanagerForeignCA: with a CA that did not sign the
// alertmanager's certificate in -ruler.alertmanager-client.tls-ca-path, no
// alert is sent and the log names the flag; once the file holds the right
// CA, the next send succeeds without a restart.
func TestRulerAlertmanagerForeignCA(t *testing.T) {
	t.Parallel()
	var caPath, rootCA string
	all, am, hc, hook := rulerCluster(t, func(certs string) []string {
		caPath = testkit.WriteBundle(t, t.TempDir(), "foreign-ca", testkit.NewCA(t, "foreign"))
		rootCA = filepath.Join(certs, "root.crt")
		return []string{
			"-ruler.alertmanager-client.tls-cert-path=" + filepath.Join(certs, "client.crt"),
			"-ruler.alertmanager-client.tls-key-path=" + filepath.Join(certs, "client.key"),
			"-ruler.alertmanager-client.tls-ca-path=" + caPath,
			"-tls.reload-interval=200ms",
		}
	})
	all.WaitLog("-ruler.alertmanager-client: TLS connection to " + am.HTTPAddr + " refused: server certificate")
	all.WaitLog("is not signed by a CA in -ruler.alertmanager-client.tls-ca-path=" + caPath)
	errorsTotal := `cortex_prometheus_notifications_errors_total{alertmanager="https://` + am.HTTPAddr + `/alertmanager/api/v2/alerts",user="tenant-a"}`
	all.Eventually(20*time.Second, errorsTotal, func() bool { return metricOf(t, hc, all, errorsTotal) > 0 })
	if got := hook.Received("/a"); len(got) != 0 {
		t.Fatalf("tenant-a's webhook received %v through an alertmanager the ruler does not trust", got)
	}

	b, err := os.ReadFile(rootCA)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, caPath, b, 0o644)
	hook.WaitFor(t, "/a", "AnswerTooHigh")
}
