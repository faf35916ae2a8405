package alertmanager

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	cortextenant "github.com/cortex-tls/cortex/pkg/tenant"
)

func configAPICall(t *testing.T, am *MultitenantAlertmanager, tenant, method, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, ConfigAPIPath, strings.NewReader(body))
	req.Header.Set(cortextenant.HeaderName, tenant)
	rec := httptest.NewRecorder()
	cortextenant.HTTPMiddleware(true, am.ConfigHandler()).ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestConfigAPIWritesTheBucket(t *testing.T) {
	h := newHarness(t)
	var st alertstore.Config
	st.Backend = bucket.Filesystem
	st.Filesystem.Directory = filepath.Join(h.dir, "bucket")
	store, err := alertstore.NewStore(context.Background(), st, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(filepath.Join(h.dir, "am"))
	cfg.Configs.URL = ""
	cfg.Configs.PollInterval = time.Hour // polls are driven by the test
	cfg.EnableAPI = true
	am, err := New(cfg, store, slog.New(slog.NewTextHandler(h.logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), am); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), am) })

	if code, body := configAPICall(t, am, "tenant-a", http.MethodGet, ""); code != http.StatusNotFound || !strings.Contains(body, "alertmanager config not found") {
		t.Fatalf("GET before POST: %d %s", code, body)
	}
	posted, err := yaml.Marshal(tenantConfig{AlertmanagerConfig: h.hook.Config("/api")})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := configAPICall(t, am, "tenant-a", http.MethodPost, string(posted)); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	if err := am.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitTenants(t, am, "tenant-a")
	postAlert(t, am, "tenant-a", "FromBucket")
	h.hook.WaitFor(t, "/api", "FromBucket")
	code, body := configAPICall(t, am, "tenant-a", http.MethodGet, "")
	var got tenantConfig
	if code != http.StatusOK || yaml.Unmarshal([]byte(body), &got) != nil || got.AlertmanagerConfig != h.hook.Config("/api") {
		t.Fatalf("GET: %d %s", code, body)
	}
	if code, _ := configAPICall(t, am, "tenant-b", http.MethodGet, ""); code != http.StatusNotFound {
		t.Fatalf("tenant-b read tenant-a's configuration: %d", code)
	}

	// Refused: a file on the host, a path as template name, a body over the bound.
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{"alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r, webhook_configs: [{url: 'https://x', http_config: {bearer_token_file: /etc/shadow}}]}]\n", http.StatusBadRequest, "may not read files on the alertmanager's host"},
		{"alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r}]\ntemplate_files:\n  ../x: y\n", http.StatusBadRequest, `template file name "../x"`},
		{"alertmanager_config: '" + strings.Repeat("x", maxConfigBody) + "'\n", http.StatusRequestEntityTooLarge, "larger than"},
	} {
		if code, body := configAPICall(t, am, "tenant-a", http.MethodPost, tc.body); code != tc.code || !strings.Contains(body, tc.want) {
			t.Fatalf("POST %.60q: %d %s", tc.body, code, body)
		}
	}

	if code, body := configAPICall(t, am, "tenant-a", http.MethodDelete, ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if err := am.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitTenants(t, am)
}

// TestAutoWebhookRoot: a webhook at Cortex's http://internal.monitor
// notifies <-alertmanager.configs.auto-webhook-root>/<tenant>/monitor.
func TestAutoWebhookRoot(t *testing.T) {
	h := newHarness(t)
	h.cfgs.set("tenant-a", strings.Replace(h.hook.Config("/x"), h.hook.Server.URL+"/x", autoWebhookURL, 1), nil)
	cfg := h.config(filepath.Join(h.dir, "am"))
	cfg.AutoWebhookRoot = h.hook.Server.URL + "/root/"
	am := h.start(cfg)
	waitTenants(t, am, "tenant-a")
	postAlert(t, am, "tenant-a", "ToTheRoot")
	h.hook.WaitFor(t, "/root/tenant-a/monitor", "ToTheRoot")

	cfg.AutoWebhookRoot = "internal.monitor"
	if err := cfg.Validate(); err == nil || err.Error() != `-alertmanager.configs.auto-webhook-root="internal.monitor": want http(s)://host[:port][/path]` {
		t.Fatalf("root without a scheme: %v", err)
	}
}
