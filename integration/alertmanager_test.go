package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// waitStatus polls url as tenantID until it answers want.
func waitStatus(t *testing.T, p *testkit.Cortex, c *http.Client, url, tenantID string, want int) {
	t.Helper()
	p.EventuallyNil(20*time.Second, fmt.Sprintf("GET %s as %s to answer %d", url, tenantID, want), func() error {
		if code, body := do(t, c, "GET", url, tenantID, nil); code != want {
			return fmt.Errorf("it answers %d %s", code, body)
		}
		return nil
	})
}

// waitSilenced waits until p's notification pipeline for tenantID has held
// back a silenced notification: after that, a notification it sent anyway
// would have reached the webhook.
func waitSilenced(t *testing.T, p *testkit.Cortex, c *http.Client, tenantID string) {
	t.Helper()
	p.Eventually(20*time.Second, "a silenced notification of "+tenantID, func() bool {
		return metricOf(t, c, p, `alertmanager_notifications_suppressed_total{reason="silence",user="`+tenantID+`"}`) >= 1
	})
}

// startConfigsService runs -target=configs on SQLite with mutual TLS.
func startConfigsService(t *testing.T, certs string, hc *http.Client) *testkit.Cortex {
	t.Helper()
	flags := append(mtlsFlags(certs), "-target=configs", "-configs.database.uri=file:"+filepath.Join(t.TempDir(), "configs.db"))
	p := testkit.StartCortex(t, flags...)
	waitReady(p, hc)
	return p
}

// startConfigsWithTenantA writes certificates and starts a webhook and a
// configs service holding tenant-a's configuration, which notifies the
// webhook's /a. It returns the certificates' directory and a client with
// the client certificate.
func startConfigsWithTenantA(t *testing.T) (certs string, hc *http.Client, hook *testkit.AlertWebhook, configs *testkit.Cortex) {
	t.Helper()
	certs = certDir(t)
	hc = httpClient(tlsClient(t, clientConfig(certs, "client")))
	hook = testkit.NewAlertWebhook(t)
	configs = startConfigsService(t, certs, hc)
	postAMConfig(t, hc, configs, "tenant-a", hook.Config("/a"))
	return certs, hc, hook, configs
}

func postAMConfig(t *testing.T, hc *http.Client, configs *testkit.Cortex, tenantID, cfg string) {
	t.Helper()
	code, body := do(t, hc, "POST", "https://"+configs.HTTPAddr+"/api/prom/configs/alertmanager", tenantID,
		map[string]any{"alertmanager_config": cfg, "template_files": map[string]string{"extra.tmpl": `{{ define "extra" }}hello{{ end }}`}})
	if code/100 != 2 {
		t.Fatalf("posting %s's config: %d %s", tenantID, code, body)
	}
}

func alertmanagerFlags(certs string, configs *testkit.Cortex, storage, cert, key string) []string {
	return append(mtlsFlags(certs),
		"-target=alertmanager",
		"-alertmanager.configs.url=https://"+configs.HTTPAddr,
		"-alertmanager.configs.tls-cert-path="+cert,
		"-alertmanager.configs.tls-key-path="+key,
		"-alertmanager.configs.tls-ca-path="+filepath.Join(certs, "root.crt"),
		"-alertmanager.configs.poll-interval=200ms",
		"-alertmanager.storage.path="+storage,
	)
}

// TestAlertmanagerMutualTLS runs a configs service requiring client
// certificates and an alertmanager polling it with the guide's client flags.
func TestAlertmanagerMutualTLS(t *testing.T) {
	t.Parallel()
	certs, hc, hook, configs := startConfigsWithTenantA(t)
	postAMConfig(t, hc, configs, "tenant-b", hook.Config("/b"))

	storage := filepath.Join(t.TempDir(), "alertmanager")
	flags := alertmanagerFlags(certs, configs, storage, filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key"))
	am := testkit.StartCortex(t, flags...)
	base := "https://" + am.HTTPAddr + "/alertmanager/api/v2"
	waitReady(am, hc)
	waitStatus(t, am, hc, base+"/status", "tenant-a", 200)
	waitStatus(t, am, hc, base+"/status", "tenant-b", 200)

	post := func(tenantID, name string) {
		t.Helper()
		if code, body := do(t, hc, "POST", base+"/alerts", tenantID, []map[string]any{{"labels": map[string]string{"alertname": name}}}); code != 200 {
			t.Fatalf("posting %s: %d %s", name, code, body)
		}
	}
	post("tenant-a", "DiskFull")
	hook.WaitFor(t, "/a", "DiskFull")
	if code, body := do(t, hc, "GET", base+"/alerts", "tenant-b", nil); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("tenant-b sees alerts: %d %s", code, body)
	}
	if got := hook.Received("/b"); len(got) != 0 {
		t.Fatalf("tenant-b's webhook received %v", got)
	}

	now := time.Now().UTC()
	code, body := do(t, hc, "POST", base+"/silences", "tenant-a", map[string]any{
		"matchers": []map[string]any{{"name": "alertname", "value": "Maintenance", "isRegex": false, "isEqual": true}},
		"startsAt": now.Format(time.RFC3339), "endsAt": now.Add(time.Hour).Format(time.RFC3339), "createdBy": "integration", "comment": "planned work",
	})
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &created) != nil || created.SilenceID == "" {
		t.Fatalf("posting silence: %d %s", code, body)
	}
	post("tenant-a", "Maintenance")
	post("tenant-a", "Canary")
	hook.WaitFor(t, "/a", "Canary")
	waitSilenced(t, am, hc, "tenant-a")
	hook.Never(t, "/a", "Maintenance")

	// Restart: the silence is loaded from -alertmanager.storage.path.
	am.Stop()
	if err := am.ExitErr(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	am = testkit.StartCortex(t, flags...)
	base = "https://" + am.HTTPAddr + "/alertmanager/api/v2"
	waitReady(am, hc)
	waitStatus(t, am, hc, base+"/status", "tenant-a", 200)
	code, body = do(t, hc, "GET", base+"/silence/"+created.SilenceID, "tenant-a", nil)
	if code != 200 || !strings.Contains(body, `"state":"active"`) {
		t.Fatalf("silence after restart: %d %s", code, body)
	}
	if code, body := do(t, hc, "GET", base+"/silences", "tenant-b", nil); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("tenant-b sees silences: %d %s", code, body)
	}
	post("tenant-a", "Maintenance")
	post("tenant-a", "AfterRestart")
	hook.WaitFor(t, "/a", "AfterRestart")
	waitSilenced(t, am, hc, "tenant-a")
	hook.Never(t, "/a", "Maintenance")

	// Deactivating tenant-b at the configs service stops its Alertmanager.
	if code, body := do(t, hc, "DELETE", "https://"+configs.HTTPAddr+"/api/prom/configs/deactivate", "tenant-b", nil); code/100 != 2 {
		t.Fatalf("deactivate: %d %s", code, body)
	}
	waitStatus(t, am, hc, base+"/status", "tenant-b", 404)
	waitStatus(t, am, hc, base+"/status", "tenant-a", 200)
}

// TestAlertmanagerForeignClientCert: a client certificate from a foreign
// CA cannot fetch configs and the log says why; replacing it on disk lets
// the next poll succeed without a restart.
func TestAlertmanagerForeignClientCert(t *testing.T) {
	t.Parallel()
	certs, hc, hook, configs := startConfigsWithTenantA(t)

	own := t.TempDir()
	cert, key := filepath.Join(own, "am.crt"), filepath.Join(own, "am.key")
	cp := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cp(filepath.Join(certs, "stranger.crt"), cert)
	cp(filepath.Join(certs, "stranger.key"), key)
	flags := append(alertmanagerFlags(certs, configs, filepath.Join(t.TempDir(), "am"), cert, key), "-tls.reload-interval=200ms")
	am := testkit.StartCortex(t, flags...)
	waitReady(am, hc)
	am.WaitLog("does not trust the client certificate -alertmanager.configs.tls-cert-path=" + cert)
	base := "https://" + am.HTTPAddr + "/alertmanager/api/v2"
	if code, body := do(t, hc, "GET", base+"/status", "tenant-a", nil); code != 404 {
		t.Fatalf("tenant-a has an Alertmanager without a fetched config: %d %s", code, body)
	}

	cp(filepath.Join(certs, "client.crt"), cert)
	cp(filepath.Join(certs, "client.key"), key)
	waitStatus(t, am, hc, base+"/status", "tenant-a", 200)
	post := []map[string]any{{"labels": map[string]string{"alertname": "AfterFix"}}}
	if code, body := do(t, hc, "POST", base+"/alerts", "tenant-a", post); code != 200 {
		t.Fatalf("posting: %d %s", code, body)
	}
	hook.WaitFor(t, "/a", "AfterFix")
}
