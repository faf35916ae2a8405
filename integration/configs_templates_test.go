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

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/configs"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestConfigsTemplatesReachAlertmanager posts a tenant's template files to
// a -target=configs process (mutual TLS, -auth.client-tenants-file) at
// /api/prom/configs/templates and checks that a -target=alertmanager
// polling it renders the tenant's notifications with them: the webhook URL
// is the tenant's template. Another tenant's identity cannot read them, and
// a new version of the files reaches the alertmanager without a restart.
func TestConfigsTemplatesReachAlertmanager(t *testing.T) {
	t.Parallel()
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Client(t, "tenant-a")
	p.Client(t, "tenant-b")
	certs := p.Dir
	allow := filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(allow, []byte("clients:\n  client: ['*']\n  tenant-a: [tenant-a]\n  tenant-b: [tenant-b]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hc := httpClient(tlsClient(t, clientConfig(certs, "client")))
	asA := httpClient(tlsClient(t, clientConfig(certs, "tenant-a")))
	asB := httpClient(tlsClient(t, clientConfig(certs, "tenant-b")))
	hook := testkit.NewAlertWebhook(t)

	cfgsProc := testkit.StartCortex(t, append(mtlsFlags(certs), "-target=configs",
		"-configs.database.uri=file:"+filepath.Join(t.TempDir(), "configs.db"), "-auth.client-tenants-file="+allow)...)
	waitReady(cfgsProc, hc)
	base := "https://" + cfgsProc.HTTPAddr
	templates := base + "/api/prom/configs/templates"

	// The receiver's URL is rendered by the tenant's template "hook.url".
	const marker = "/to-be-templated"
	plain := "url: " + hook.Server.URL + marker + "\n"
	amCfg := hook.Config(marker)
	if !strings.Contains(amCfg, plain) {
		t.Fatalf("no %q in the webhook configuration:\n%s", plain, amCfg)
	}
	amCfg = "templates: ['*.tmpl']\n" + strings.Replace(amCfg, plain, "url: '{{ template \"hook.url\" . }}'\n", 1)
	hookTemplate := func(path string) configs.TemplatesConfig {
		return configs.TemplatesConfig{TemplateFiles: map[string]string{"hook.tmpl": `{{ define "hook.url" }}` + hook.Server.URL + path + `{{ end }}`}}
	}
	if code, out := do(t, asA, http.MethodPost, base+"/api/prom/configs/alertmanager", "tenant-a", configs.AlertmanagerConfig{AlertmanagerConfig: amCfg}); code != http.StatusNoContent {
		t.Fatalf("POST tenant-a's Alertmanager configuration: %d %s", code, out)
	}
	if code, out := do(t, asA, http.MethodPost, templates, "tenant-a", hookTemplate("/a-templated")); code != http.StatusNoContent {
		t.Fatalf("POST tenant-a's templates: %d %s", code, out)
	}
	code, out := do(t, asA, http.MethodGet, templates, "tenant-a", nil)
	var view configs.View[configs.TemplatesConfig]
	if code != http.StatusOK || json.Unmarshal([]byte(out), &view) != nil || view.Config.TemplateFiles["hook.tmpl"] != hookTemplate("/a-templated").TemplateFiles["hook.tmpl"] {
		t.Fatalf("GET tenant-a's templates: %d %s", code, out)
	}

	// Another tenant's identity: refused for tenant-a, nothing of its own.
	if code, out := do(t, asB, http.MethodGet, templates, "tenant-a", nil); code != http.StatusForbidden || strings.Contains(out, "hook.url") {
		t.Fatalf("identity tenant-b reading tenant-a's templates: %d %s, want 403", code, out)
	}
	if code, out := do(t, asB, http.MethodPost, templates, "tenant-a", hookTemplate("/stolen")); code != http.StatusForbidden {
		t.Fatalf("identity tenant-b writing tenant-a's templates: %d %s, want 403", code, out)
	}
	if code, out := do(t, asB, http.MethodGet, templates, "tenant-b", nil); code != http.StatusNotFound || strings.Contains(out, "hook.url") {
		t.Fatalf("identity tenant-b reading its own templates: %d %s, want 404", code, out)
	}

	storage := filepath.Join(t.TempDir(), "alertmanager")
	am := testkit.StartCortex(t, alertmanagerFlags(certs, cfgsProc, storage, filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key"))...)
	amBase := "https://" + am.HTTPAddr + "/alertmanager/api/v2"
	waitReady(am, hc)
	waitStatus(t, am, hc, amBase+"/status", "tenant-a", 200)
	postAlert := func(name string) {
		t.Helper()
		if code, body := do(t, hc, http.MethodPost, amBase+"/alerts", "tenant-a", []map[string]any{{"labels": map[string]string{"alertname": name}}}); code != 200 {
			t.Fatalf("posting %s: %d %s", name, code, body)
		}
	}
	postAlert("Templated")
	hook.WaitFor(t, "/a-templated", "Templated")
	if got := hook.Received(marker); len(got) != 0 {
		t.Fatalf("the untemplated path received %v", got)
	}

	// A new version of the files: the alertmanager's next poll applies it.
	if code, out := do(t, asA, http.MethodPost, templates, "tenant-a", hookTemplate("/a-v2")); code != http.StatusNoContent {
		t.Fatalf("POST tenant-a's new templates: %d %s", code, out)
	}
	n := 0
	am.EventuallyNil(20*time.Second, "a notification rendered with the new template", func() error {
		n++
		postAlert(fmt.Sprintf("Reloaded%d", n))
		if got := hook.Received("/a-v2"); len(got) == 0 {
			return fmt.Errorf("/a-v2 received nothing; /a-templated received %v", hook.Received("/a-templated"))
		}
		return nil
	})

	// Deactivation (DELETE, as in Cortex) stops the tenant's Alertmanager.
	if code, out := do(t, asA, http.MethodPost, base+"/api/prom/configs/deactivate", "tenant-a", nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST deactivate: %d %s, want 405", code, out)
	}
	if code, out := do(t, asA, http.MethodDelete, base+"/api/prom/configs/deactivate", "tenant-a", nil); code != http.StatusOK {
		t.Fatalf("DELETE deactivate: %d %s", code, out)
	}
	waitStatus(t, am, hc, amBase+"/status", "tenant-a", 404)
}
