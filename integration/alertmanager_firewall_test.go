package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// amMetric adds up p's samples of metric name whose labels contain labels.
func amMetric(t *testing.T, client *http.Client, p *testkit.Cortex, name, labels string) float64 {
	t.Helper()
	_, body := get(t, client, "https://"+p.HTTPAddr+"/metrics")
	return metricSum(body, name, labels)
}

// TestAlertmanagerReceiversFirewall: with
// -alertmanager.receivers-firewall-block-cidr-networks=127.0.0.0/8, a
// receiver on 127.0.0.1 is not called; the failure is logged and counted.
// A tenant whose override clears the list is notified by the same process.
func TestAlertmanagerReceiversFirewall(t *testing.T) {
	t.Parallel()
	certs, hc, hook, configs := startConfigsWithTenantA(t)
	postAMConfig(t, hc, configs, "tenant-b", hook.Config("/b"))
	runtimeFile := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(runtimeFile, []byte("overrides:\n  tenant-b:\n    alertmanager_receivers_firewall_block_cidr_networks: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	flags := append(alertmanagerFlags(certs, configs, filepath.Join(t.TempDir(), "alertmanager"), filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key")),
		"-alertmanager.receivers-firewall-block-cidr-networks=127.0.0.0/8",
		"-runtime-config.file="+runtimeFile)
	am := testkit.StartCortex(t, flags...)
	base := "https://" + am.HTTPAddr + "/alertmanager/api/v2"
	waitReady(am, hc)
	waitStatus(t, am, hc, base+"/status", "tenant-a", 200)
	waitStatus(t, am, hc, base+"/status", "tenant-b", 200)

	for _, tenantID := range []string{"tenant-a", "tenant-b"} {
		if code, body := do(t, hc, "POST", base+"/alerts", tenantID, []map[string]any{{"labels": map[string]string{"alertname": "Down"}}}); code != 200 {
			t.Fatalf("posting for %s: %d %s", tenantID, code, body)
		}
	}
	hook.WaitFor(t, "/b", "Down")
	am.Eventually(20*time.Second, "tenant-a's blocked notification counted", func() bool {
		return amMetric(t, hc, am, "alertmanager_notifications_failed_total", `integration="webhook",reason="other",user="tenant-a"`) >= 1
	})
	am.WaitLog("receiver address 127.0.0.1 is blocked: it is in 127.0.0.0/8 (-alertmanager.receivers-firewall-block-cidr-networks)")
	if got := hook.Received("/a"); len(got) != 0 {
		t.Fatalf("the blocked receiver was called with %v", got)
	}
	if n := amMetric(t, hc, am, "alertmanager_notifications_failed_total", `user="tenant-b"`); n != 0 {
		t.Fatalf("tenant-b, its list cleared: %v failed notifications", n)
	}
}
