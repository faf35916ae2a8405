package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestAdminAPIMutualTLS: a -target=all process with mutual TLS and
// -auth.client-tenants-file serves Cortex's administrative API. Every
// tenant's rule groups and Alertmanager configurations (secrets masked)
// are listed to the identity given every tenant and refused (403) to one
// bound to a tenant; that identity deletes its own tenant's rule groups and
// Alertmanager configuration, and not another tenant's; the status page
// shows the alertmanager's gossip cluster node.
func TestAdminAPIMutualTLS(t *testing.T) {
	t.Parallel()
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "member", certgen.Options{DNSNames: []string{"member"}, IPs: testkit.LoopbackIPs()})
	p.Client(t, "tenant-a")
	allow := filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(allow, []byte("clients:\n  client: ['*']\n  tenant-a: [tenant-a]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, admin := startBlocksProcess(t, p.Dir,
		"-auth.client-tenants-file="+allow,
		"-blocks-storage.filesystem.dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
		"-ruler.enable-api=true",
		"-ruler-storage.filesystem.dir="+t.TempDir(),
		"-alertmanager.storage.path="+filepath.Join(t.TempDir(), "am"),
		"-alertmanager-storage.backend=filesystem",
		"-alertmanager-storage.filesystem.dir="+t.TempDir(),
		"-experimental.alertmanager.enable-api=true",
		"-alertmanager.cluster.listen-address=127.0.0.1:0",
		"-alertmanager.cluster.tls-cert-path="+filepath.Join(p.Dir, "member.crt"),
		"-alertmanager.cluster.tls-key-path="+filepath.Join(p.Dir, "member.key"),
		"-alertmanager.cluster.tls-ca-path="+p.CAPath,
		"-alertmanager.cluster.tls-allowed-client-names=member",
	)
	base := "https://" + proc.HTTPAddr
	tenantA := httpClient(tlsClient(t, clientConfig(p.Dir, "tenant-a")))

	const amConfig = "alertmanager_config: |\n" +
		"  route: {receiver: team}\n" +
		"  receivers:\n" +
		"  - name: team\n" +
		"    webhook_configs:\n" +
		"    - url: https://hooks.example.com/secret-path-%s\n" +
		"      http_config: {basic_auth: {username: alice, password: hunter-%s}}\n"
	for _, c := range []struct {
		client *http.Client
		tenant string
	}{{tenantA, "tenant-a"}, {admin.client, "tenant-b"}} {
		cfg := strings.ReplaceAll(amConfig, "%s", c.tenant)
		if code, body := do(t, c.client, http.MethodPost, base+"/api/v1/alerts", c.tenant, cfg); code != http.StatusCreated {
			t.Fatalf("storing %s's Alertmanager configuration: %d %s", c.tenant, code, body)
		}
		if code, body := do(t, c.client, http.MethodPost, base+"/api/v1/rules/infra", c.tenant, rulerAPITestGroup); code != http.StatusAccepted {
			t.Fatalf("storing %s's rule group: %d %s", c.tenant, code, body)
		}
	}

	// Every tenant's data: the admin identity only.
	for _, path := range []string{"/ruler/rule_groups", "/multitenant_alertmanager/configs", "/multitenant_alertmanager/status"} {
		if code, body := get(t, tenantA, base+path); code != http.StatusForbidden || !strings.Contains(body, `only identities given "*" in -auth.client-tenants-file`) {
			t.Errorf("tenant-a GET %s: %d %s, want 403", path, code, body)
		}
	}
	group := "    infra:\n        - name: node\n          interval: 1s\n          rules:\n            - record: job:ruler_api_up:sum\n              expr: sum by (job) (ruler_api_up)\n"
	if code, body := get(t, admin.client, base+"/ruler/rule_groups"); code != http.StatusOK || body != "tenant-a:\n"+group+"tenant-b:\n"+group {
		t.Errorf("GET /ruler/rule_groups: %d %q", code, body)
	}
	code, body := get(t, admin.client, base+"/multitenant_alertmanager/configs")
	if code != http.StatusOK || !strings.HasPrefix(body, "tenant-a:\n    template_files: {}\n    alertmanager_config: |\n") || !strings.Contains(body, "\ntenant-b:\n") ||
		strings.Count(body, "password: <secret>\n") != 2 || strings.Count(body, "url: <secret>\n") != 2 {
		t.Errorf("GET /multitenant_alertmanager/configs: %d\n%s", code, body)
	}
	for _, secret := range []string{"hunter-", "secret-path-"} {
		if strings.Contains(body, secret) {
			t.Errorf("GET /multitenant_alertmanager/configs shows %q:\n%s", secret, body)
		}
	}
	code, body = get(t, admin.client, base+"/multitenant_alertmanager/status")
	node := regexp.MustCompile(`<dt>Addr</dt><dd>127\.0\.0\.1</dd>\s*<dt>Port</dt><dd>[1-9][0-9]*</dd>\s*<dt>Status</dt><dd>(ready|settling)</dd>`)
	if code != http.StatusOK || !node.MatchString(body) || strings.Count(body, "<tr><td>") != 1 || !strings.Contains(body, "<p>Sharding is disabled") {
		t.Errorf("GET /multitenant_alertmanager/status: %d\n%s", code, body)
	}

	// tenant-a deletes its own configurations, not tenant-b's.
	for _, path := range []string{"/ruler/delete_tenant_config", "/multitenant_alertmanager/delete_tenant_config"} {
		if code, body := do(t, tenantA, http.MethodPost, base+path, "tenant-b", nil); code != http.StatusForbidden || !strings.Contains(body, `client "tenant-a" may not act for tenant "tenant-b"`) {
			t.Errorf("tenant-a POST %s as tenant-b: %d %s, want 403", path, code, body)
		}
		if code, body := do(t, tenantA, http.MethodPost, base+path, "tenant-a", nil); code != http.StatusOK || body != "" {
			t.Errorf("tenant-a POST %s: %d %q, want 200", path, code, body)
		}
	}
	if code, body := get(t, admin.client, base+"/ruler/rule_groups"); code != http.StatusOK || body != "tenant-b:\n"+group {
		t.Errorf("GET /ruler/rule_groups after tenant-a's deletion: %d %q", code, body)
	}
	code, body = get(t, admin.client, base+"/multitenant_alertmanager/configs")
	if code != http.StatusOK || !strings.HasPrefix(body, "tenant-b:\n") || strings.Contains(body, "tenant-a") {
		t.Errorf("GET /multitenant_alertmanager/configs after tenant-a's deletion: %d\n%s", code, body)
	}
	if code, body := do(t, tenantA, http.MethodGet, base+"/api/v1/alerts", "tenant-a", nil); code != http.StatusNotFound {
		t.Errorf("tenant-a's Alertmanager configuration after its deletion: %d %s", code, body)
	}
}
