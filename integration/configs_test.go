package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/configs"
	"github.com/cortex-tls/cortex/pkg/configs/db/dbtest"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const configsTestAMConfig = `route:
  receiver: team
receivers:
- name: team
  webhook_configs:
  - url: https://hooks.example/alert
`

// TestConfigsServiceMutualTLS runs -target=configs with mutual TLS, on
// SQLite and on PostgreSQL, and drives its API over HTTPS as the
// alertmanager's poller and an operator would.
func TestConfigsServiceMutualTLS(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	dbtest.ForEach(t, func(t *testing.T, uri string) {
		flags := append(mtlsFlags(dir), "-target=configs", "-configs.database.uri="+uri)
		p := testkit.StartCortex(t, flags...)
		hc := httpClient(tlsClient(t, clientConfig(dir, "client")))
		base := "https://" + p.HTTPAddr
		waitReady(p, hc)

		// /config never shows the database password.
		if u, err := url.Parse(uri); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				if code, out := do(t, hc, "GET", base+"/config", "", ""); code != 200 || strings.Contains(out, ":"+pw+"@") || !strings.Contains(out, "uri: "+u.Redacted()) {
					t.Fatalf("/config: %d, want the URI with its password masked:\n%s", code, out)
				}
			}
		}

		// No client certificate: the TLS handshake refuses it.
		anon := httpClient(tlsClient(t, tlsconfig.ClientConfig{CAPath: filepath.Join(dir, "root.crt")}))
		if _, err := anon.Get(base + "/private/api/prom/configs/alertmanager"); err == nil {
			t.Fatal("the private API answered a client without a certificate")
		}

		am := base + "/api/prom/configs/alertmanager"
		body, _ := json.Marshal(configs.AlertmanagerConfig{AlertmanagerConfig: configsTestAMConfig, TemplateFiles: map[string]string{"a.tmpl": `{{ define "a" }}A{{ end }}`}})
		if code, out := do(t, hc, "POST", am, "", string(body)); code != http.StatusUnauthorized {
			t.Fatalf("POST without a tenant: %d %s", code, out)
		}
		if code, out := do(t, hc, "POST", am, "tenant-a", string(body)); code != http.StatusNoContent {
			t.Fatalf("POST: %d %s", code, out)
		}
		bad, _ := json.Marshal(configs.AlertmanagerConfig{AlertmanagerConfig: strings.Replace(configsTestAMConfig, "url:", "ur1:", 1)})
		if code, out := do(t, hc, "POST", am, "tenant-a", string(bad)); code != http.StatusBadRequest || !strings.Contains(out, "line 6: field ur1 not found") {
			t.Fatalf("POST an invalid config: %d %s, want 400 with the line and field", code, out)
		}
		code, out := do(t, hc, "GET", am, "tenant-a", "")
		var view configs.View[configs.AlertmanagerConfig]
		if code != 200 || json.Unmarshal([]byte(out), &view) != nil || view.Config.AlertmanagerConfig != configsTestAMConfig || view.Config.TemplateFiles["a.tmpl"] == "" {
			t.Fatalf("GET: %d %s", code, out)
		}
		if code, _ := do(t, hc, "GET", am, "tenant-b", ""); code != http.StatusNotFound {
			t.Fatalf("tenant-b sees a config: %d", code)
		}

		// The pollers' view, then a deactivation they must notice.
		private := base + "/private/api/prom/configs/alertmanager"
		var all configs.ConfigsResponse[configs.AlertmanagerConfig]
		if code, out := do(t, hc, "GET", private+"?since=0", "", ""); code != 200 || json.Unmarshal([]byte(out), &all) != nil || all.Configs["tenant-a"].ID != view.ID {
			t.Fatalf("private API: %d %s", code, out)
		}
		if code, out := do(t, hc, "DELETE", base+"/api/prom/configs/deactivate", "tenant-a", ""); code != 200 {
			t.Fatalf("deactivate: %d %s", code, out)
		}
		var changed configs.ConfigsResponse[configs.AlertmanagerConfig]
		if code, out := do(t, hc, "GET", private+"?since="+itoa(int(view.ID)), "", ""); code != 200 || json.Unmarshal([]byte(out), &changed) != nil ||
			changed.Configs["tenant-a"].DeletedAt == nil || changed.Configs["tenant-a"].ID <= view.ID {
			t.Fatalf("private API after deactivate: %d %s", code, out)
		}
		if code, out := do(t, hc, "POST", base+"/api/prom/configs/restore", "tenant-a", ""); code != 200 {
			t.Fatalf("restore: %d %s", code, out)
		}

		// The configs survive a restart.
		p.Stop()
		if err := p.ExitErr(); err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		p2 := testkit.StartCortex(t, flags...)
		base = "https://" + p2.HTTPAddr
		waitReady(p2, hc)
		if code, out := do(t, hc, "GET", base+"/api/prom/configs/alertmanager", "tenant-a", ""); code != 200 || !strings.Contains(out, "hooks.example") {
			t.Fatalf("GET after a restart: %d %s", code, out)
		}
	})
}
