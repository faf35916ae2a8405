package alertmanager

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/shardring"
	cortextenant "github.com/cortex-tls/cortex/pkg/tenant"
)

// adminTestAM is an alertmanager over a filesystem bucket holding configs,
// not started: the administrative pages read the storage only.
func adminTestAM(t *testing.T, store alertstore.Store) *MultitenantAlertmanager {
	t.Helper()
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("defaults", flag.PanicOnError))
	cfg.DataDir = t.TempDir()
	am, err := New(cfg, store, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return am
}

func adminBucketStore(t *testing.T) alertstore.Store {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return alertstore.NewBucketStore(bkt)
}

func adminCall(h http.Handler, method, tenant string, header http.Header) (int, string, http.Header) {
	req := httptest.NewRequest(method, "/", nil)
	if tenant != "" {
		req.Header.Set(cortextenant.HeaderName, tenant)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

const secretConfig = `route:
  receiver: team
receivers:
- name: team
  webhook_configs:
  - url: https://hooks.example.com/very-secret-path
    http_config:
      basic_auth:
        username: alice
        password: hunter2
  slack_configs:
  - api_url: https://hooks.slack.com/services/T0/B0/xoxb-secret
    channel: '#alerts'
`

// TestListAllConfigsMasksSecrets: every tenant's configuration, in tenant
// order, as a map of tenant to template_files and alertmanager_config, the
// latter as Alertmanager writes it: passwords and secret URLs are
// "<secret>"; a configuration that does not parse is not shown at all.
func TestListAllConfigsMasksSecrets(t *testing.T) {
	store := adminBucketStore(t)
	ctx := context.Background()
	for tenant, c := range map[string]alertstore.AlertConfig{
		"tenant-b": {AlertmanagerConfig: secretConfig, TemplateFiles: map[string]string{"team.tmpl": `{{ define "x" }}y{{ end }}`}},
		"tenant-a": {AlertmanagerConfig: "route:\n  receiver: r\nreceivers:\n- name: r\n"},
		"tenant-c": {AlertmanagerConfig: "route: [password: hunter3\n"},
	} {
		if err := store.SetAlertConfig(ctx, tenant, c); err != nil {
			t.Fatal(err)
		}
	}
	am := adminTestAM(t, store)
	code, body, header := adminCall(http.HandlerFunc(am.ListAllConfigs), http.MethodGet, "", nil)
	if code != http.StatusOK || header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET: %d %s %s", code, header.Get("Content-Type"), body)
	}
	for _, secret := range []string{"hunter2", "hunter3", "very-secret-path", "xoxb-secret"} {
		if strings.Contains(body, secret) {
			t.Errorf("the list shows the secret %q:\n%s", secret, body)
		}
	}
	for _, want := range []string{
		"tenant-a:\n    template_files: {}\n    alertmanager_config: |\n        global:\n",
		"                username: alice\n                password: <secret>\n",
		"            url: <secret>\n",
		"            api_url: <secret>\n",
		"            channel: '#alerts'\n",
		"tenant-b:\n    template_files:\n        team.tmpl: '{{ define \"x\" }}y{{ end }}'\n",
		"tenant-c:\n    template_files: {}\n    alertmanager_config: |\n        # the stored configuration does not parse as an Alertmanager configuration; not shown\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the list lacks %q:\n%s", want, body)
		}
	}
	a, b, c := strings.Index(body, "tenant-a:"), strings.Index(body, "tenant-b:"), strings.Index(body, "tenant-c:")
	if a != 0 || b < a || c < b {
		t.Errorf("tenants not in order (%d, %d, %d):\n%s", a, b, c, body)
	}

	// No tenant: Cortex's empty answer.
	code, body, _ = adminCall(http.HandlerFunc(adminTestAM(t, adminBucketStore(t)).ListAllConfigs), http.MethodGet, "", nil)
	if code != http.StatusOK || body != "" {
		t.Errorf("GET with no configuration: %d %q, want 200 and an empty body", code, body)
	}
}

type failingListStore struct{ alertstore.Store }

func (failingListStore) ListAllUsers(context.Context) ([]string, error) {
	return nil, errors.New("bucket unreachable")
}

func TestListAllConfigsStoreFailure(t *testing.T) {
	am := adminTestAM(t, failingListStore{adminBucketStore(t)})
	code, body, _ := adminCall(http.HandlerFunc(am.ListAllConfigs), http.MethodGet, "", nil)
	if code != http.StatusInternalServerError || body != "unable to list all users: bucket unreachable\n" {
		t.Errorf("GET with a failing store: %d %q", code, body)
	}
}

// TestDeleteUserConfig: the request's tenant's configuration, and no
// other, leaves the storage; 200 also when there is none; refused without
// a tenant, from another site, and on a read-only storage.
func TestDeleteUserConfig(t *testing.T) {
	store := adminBucketStore(t)
	ctx := context.Background()
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		if err := store.SetAlertConfig(ctx, tenant, alertstore.AlertConfig{AlertmanagerConfig: "route:\n  receiver: r\nreceivers:\n- name: r\n"}); err != nil {
			t.Fatal(err)
		}
	}
	am := adminTestAM(t, store)
	del := cortextenant.HTTPMiddleware(true, http.HandlerFunc(am.DeleteUserConfig))
	for range 2 {
		if code, body, _ := adminCall(del, http.MethodPost, "tenant-a", nil); code != http.StatusOK || body != "" {
			t.Fatalf("POST as tenant-a: %d %q", code, body)
		}
	}
	if _, err := store.GetAlertConfig(ctx, "tenant-a"); !errors.Is(err, alertstore.ErrNotFound) {
		t.Errorf("tenant-a's configuration after the deletion: %v", err)
	}
	if _, err := store.GetAlertConfig(ctx, "tenant-b"); err != nil {
		t.Errorf("tenant-b's configuration after tenant-a's deletion: %v", err)
	}
	if code, body, _ := adminCall(del, http.MethodPost, "", nil); code != http.StatusUnauthorized || !strings.Contains(body, "no org id") {
		t.Errorf("POST without a tenant: %d %q", code, body)
	}
	if code, body, _ := adminCall(del, http.MethodPost, "tenant-b", http.Header{"Sec-Fetch-Site": {"cross-site"}}); code != http.StatusForbidden || !strings.Contains(body, "another site") {
		t.Errorf("POST from another site: %d %q", code, body)
	}
	if _, err := store.GetAlertConfig(ctx, "tenant-b"); err != nil {
		t.Errorf("tenant-b's configuration after a cross-site request: %v", err)
	}

	local := cortextenant.HTTPMiddleware(true, http.HandlerFunc(adminTestAM(t, alertstore.NewLocalStore(t.TempDir())).DeleteUserConfig))
	if code, body, _ := adminCall(local, http.MethodPost, "tenant-a", nil); code != http.StatusNotImplemented || !strings.Contains(body, alertstore.ErrReadOnly.Error()) {
		t.Errorf("POST on a local storage: %d %q, want 501", code, body)
	}
}

// TestStatusPage: without a gossip cluster or sharding, the page says so;
// with sharding it shows the ring instance and links the ring page. (The
// gossip cluster's node and members: TestAdminAPIMutualTLS, in the real
// binary.)
func TestStatusPage(t *testing.T) {
	am := adminTestAM(t, adminBucketStore(t))
	code, body, header := adminCall(am.StatusHandler(), http.MethodGet, "", nil)
	if code != http.StatusOK || header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET: %d %s", code, header.Get("Content-Type"))
	}
	for _, want := range []string{
		"<h1>Cortex Alertmanager Status</h1>",
		"<p>Alertmanager gossip-based clustering is disabled.</p>",
		"<p>Sharding is disabled (-alertmanager.sharding-enabled=false): every tenant runs on this alertmanager.</p>",
		"<p>Tenants with an Alertmanager running here: 0</p>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}

	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	sharding := shardingConfig(t, "-alertmanager.sharding-enabled", "-alertmanager.sharding-ring.instance-id=am-0", "-alertmanager.sharding-ring.replication-factor=2")
	m, err := shardring.NewMember(sharding.ShardingRing, RingName, RingKey, kv, "127.0.0.1", 9095, ring.ACTIVE, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("defaults", flag.PanicOnError))
	cfg.DataDir = t.TempDir()
	cfg.Sharding = sharding
	sharded, err := New(cfg, adminBucketStore(t), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), WithSharding(m, nil))
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ = adminCall(sharded.StatusHandler(), http.MethodGet, "", nil)
	for _, want := range []string{
		"<p>Alertmanager gossip-based clustering is disabled. The tenants are sharded over the alertmanager ring: each tenant's replicas exchange its state over the alertmanager gRPC service.</p>",
		"<dt>Instance ID</dt><dd>am-0</dd>\n<dt>Address</dt><dd>127.0.0.1:9095</dd>\n<dt>State</dt><dd>ACTIVE</dd>\n<dt>Replication factor</dt><dd>2</dd>",
		`<a href="ring">alertmanager ring</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the sharded alertmanager's page lacks %q:\n%s", want, body)
		}
	}
}
