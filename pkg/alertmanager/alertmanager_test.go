package alertmanager

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/certgen"
	cortextenant "github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// pki is a CA and the files of a server and a client leaf it signed.
type pki struct {
	dir                 string
	ca, server, client  *certgen.Pair
	caPath              string
	clientCrt, clientKy string
}

func newPKI(t *testing.T, dir, name string) *pki {
	t.Helper()
	ca := testkit.NewCA(t, name+" root")
	srv := testkit.ServerLeaf(t, ca, "localhost")
	cl := testkit.ClientLeaf(t, ca, "alertmanager")
	p := &pki{dir: dir, ca: ca, server: srv, client: cl,
		caPath: filepath.Join(dir, name+"-root.crt"), clientCrt: filepath.Join(dir, name+"-client.crt"), clientKy: filepath.Join(dir, name+"-client.key")}
	testkit.WriteFile(t, p.caPath, ca.CertPEM, 0o600)
	testkit.WriteFile(t, p.clientCrt, cl.CertPEM, 0o600)
	testkit.WriteFile(t, p.clientKy, cl.KeyPEM, 0o600)
	return p
}

// fakeConfigs implements the configs service's private endpoint over mTLS.
type fakeConfigs struct {
	mu      sync.Mutex
	nextID  int64
	configs map[string]configView
	srv     *httptest.Server
	hits    int
}

func newFakeConfigs(t *testing.T, p *pki) *fakeConfigs {
	f := &fakeConfigs{configs: map[string]configView{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server.TLSCertificate()}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeConfigs) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != ConfigsPath {
		http.NotFound(w, r)
		return
	}
	since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits++
	out := configsResponse{Configs: map[string]configView{}}
	for id, v := range f.configs {
		if v.ID > since {
			out.Configs[id] = v
		}
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (f *fakeConfigs) set(tenant, amYAML string, templates map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.configs[tenant] = configView{ID: f.nextID, Config: &tenantConfig{AlertmanagerConfig: amYAML, TemplateFiles: templates}}
}

func (f *fakeConfigs) deactivate(tenant string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	v := f.configs[tenant]
	v.ID, v.DeletedAt = f.nextID, time.Now().UTC().Format(time.RFC3339)
	f.configs[tenant] = v
}

type harness struct {
	t      *testing.T
	dir    string
	pki    *pki
	cfgs   *fakeConfigs
	hook   *testkit.AlertWebhook
	hookCA string // the webhook server's certificate, in a file
	loader *tlsconfig.Loader
	logs   *testkit.Buffer
	reg    *prometheus.Registry
}

func newHarness(t *testing.T) *harness {
	dir := t.TempDir()
	p := newPKI(t, dir, "good")
	h := &harness{t: t, dir: dir, pki: p, cfgs: newFakeConfigs(t, p), hook: testkit.NewAlertWebhook(t), logs: &testkit.Buffer{}}
	h.hookCA = filepath.Join(dir, "webhook-ca.pem")
	testkit.WriteFile(t, h.hookCA, []byte(h.hook.CAPEM()), 0o600)
	return h
}

func (h *harness) config(storage string) Config {
	var cfg Config
	cfg.DataDir = storage
	cfg.Retention = time.Hour
	cfg.MaintenanceInterval = time.Minute
	cfg.GCInterval = 30 * time.Minute
	cfg.PersistInterval = 15 * time.Minute
	cfg.MaxRecvMsgSize = 16 << 20
	cfg.Configs.URL = h.cfgs.srv.URL
	cfg.Configs.PollInterval = 100 * time.Millisecond
	cfg.Configs.Timeout = 5 * time.Second
	cfg.Configs.TLS = tlsconfig.ClientConfig{CertPath: h.pki.clientCrt, KeyPath: h.pki.clientKy, CAPath: h.pki.caPath, MinVersion: "VersionTLS12", CommonNameFallback: true}
	return cfg
}

// start runs an alertmanager; it is stopped when the test ends.
func (h *harness) start(cfg Config, opts ...Option) *MultitenantAlertmanager {
	h.t.Helper()
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.loader = tlsconfig.NewLoader(logger, nil)
	h.reg = prometheus.NewRegistry()
	var store alertstore.Store
	if cfg.Configs.URL != "" {
		var st alertstore.Config
		if err := st.Resolve(cfg.Legacy()); err != nil {
			h.t.Fatal(err)
		}
		var err error
		if store, err = alertstore.NewStore(context.Background(), st, h.loader, logger, h.reg); err != nil {
			h.t.Fatal(err)
		}
	}
	am, err := New(cfg, store, logger, h.reg, opts...)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), am); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), am) })
	return am
}

func waitTenants(t *testing.T, am *MultitenantAlertmanager, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	testkit.EventuallyNil(t, 10*time.Second, fmt.Sprintf("running tenants %v", want), func() error {
		if got := slices.Sorted(slices.Values(am.Tenants())); !slices.Equal(got, want) {
			return fmt.Errorf("running: %v", got)
		}
		return nil
	})
}

// waitSilenced waits until a tenant's notification pipeline has held back
// a silenced notification: after that, a notification it sent anyway would
// have reached the webhook.
func waitSilenced(t *testing.T, reg *prometheus.Registry, tenant string) {
	t.Helper()
	testkit.Eventually(t, 15*time.Second, "a silenced notification of "+tenant, func() bool {
		return testkit.MetricSum(t, reg, "alertmanager_notifications_suppressed_total", "user", tenant, "reason", "silence") >= 1
	})
}

func call(t *testing.T, am *MultitenantAlertmanager, tenant, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set(cortextenant.HeaderName, tenant)
	rec := httptest.NewRecorder()
	cortextenant.HTTPMiddleware(true, am.Handler()).ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func postAlert(t *testing.T, am *MultitenantAlertmanager, tenant, name string) {
	t.Helper()
	code, body := call(t, am, tenant, http.MethodPost, APIPrefix+"/alerts", []map[string]any{{"labels": map[string]string{"alertname": name, "severity": "page"}}})
	if code != http.StatusOK {
		t.Fatalf("posting alert %s to %s: %d %s", name, tenant, code, body)
	}
}

func TestTenantsIsolatedSilencePersists(t *testing.T) {
	h := newHarness(t)
	h.cfgs.set("tenant-a", h.hook.Config("/a"), map[string]string{"extra.tmpl": `{{ define "extra" }}hello{{ end }}`})
	h.cfgs.set("tenant-b", h.hook.Config("/b"), nil)
	storage := filepath.Join(h.dir, "am")
	sibling := filepath.Join(h.dir, "sibling")
	testkit.WriteFile(t, sibling, []byte("not ours"), 0o600)

	am := h.start(h.config(storage))
	waitTenants(t, am, "tenant-a", "tenant-b")
	if _, err := os.Stat(filepath.Join(storage, "tenant-a", templatesDir, "extra.tmpl")); err != nil {
		t.Fatalf("template file not written: %v", err)
	}

	postAlert(t, am, "tenant-a", "DiskFull")
	h.hook.WaitFor(t, "/a", "DiskFull")
	if n := notifications(t, h.reg, "tenant-a"); n < 1 {
		t.Fatalf("alertmanager_notifications_total{user=\"tenant-a\"} = %v", n)
	}
	if n := notifications(t, h.reg, "tenant-b"); n != 0 {
		t.Fatalf("alertmanager_notifications_total{user=\"tenant-b\"} = %v", n)
	}

	// Tenant B sees nothing of A.
	code, body := call(t, am, "tenant-b", http.MethodGet, APIPrefix+"/alerts", nil)
	if code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Fatalf("tenant-b alerts: %d %s", code, body)
	}
	code, body = call(t, am, "tenant-a", http.MethodGet, APIPrefix+"/alerts", nil)
	if code != http.StatusOK || !strings.Contains(body, `"DiskFull"`) || !strings.Contains(body, `"name":"hook"`) {
		t.Fatalf("tenant-a alerts: %d %s", code, body)
	}
	if got := h.hook.Received("/b"); len(got) != 0 {
		t.Fatalf("tenant-b's webhook received %v", got)
	}
	// A tenant without a configuration has no Alertmanager.
	if code, body := call(t, am, "tenant-c", http.MethodGet, APIPrefix+"/status", nil); code != http.StatusNotFound {
		t.Fatalf("tenant-c status: %d %s", code, body)
	}
	for _, p := range []string{"/status", "/receivers", "/alerts/groups"} {
		if code, body := call(t, am, "tenant-a", http.MethodGet, APIPrefix+p, nil); code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
	}

	// A silence suppresses the next notification.
	now := time.Now().UTC()
	code, body = call(t, am, "tenant-a", http.MethodPost, APIPrefix+"/silences", map[string]any{
		"matchers": []map[string]any{{"name": "alertname", "value": "Maintenance", "isRegex": false, "isEqual": true}},
		"startsAt": now, "endsAt": now.Add(time.Hour), "createdBy": "test", "comment": "planned",
	})
	if code != http.StatusOK {
		t.Fatalf("posting silence: %d %s", code, body)
	}
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil || created.SilenceID == "" {
		t.Fatalf("silence answer %s: %v", body, err)
	}
	if code, body := call(t, am, "tenant-b", http.MethodGet, APIPrefix+"/silences", nil); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Fatalf("tenant-b silences: %d %s", code, body)
	}
	postAlert(t, am, "tenant-a", "Maintenance")
	postAlert(t, am, "tenant-a", "Canary")
	h.hook.WaitFor(t, "/a", "Canary")
	waitSilenced(t, h.reg, "tenant-a")
	h.hook.Never(t, "/a", "Maintenance")
	code, body = call(t, am, "tenant-a", http.MethodGet, APIPrefix+"/alerts?filter=alertname%3D%22Maintenance%22", nil)
	if code != http.StatusOK || !strings.Contains(body, `"suppressed"`) || !strings.Contains(body, created.SilenceID) {
		t.Fatalf("silenced alert status: %d %s", code, body)
	}

	// Restart on the same storage: the silence is still there and still works.
	if err := services.StopAndAwaitTerminated(context.Background(), am); err != nil {
		t.Fatal(err)
	}
	am2 := h.start(h.config(storage))
	waitTenants(t, am2, "tenant-a", "tenant-b")
	code, body = call(t, am2, "tenant-a", http.MethodGet, APIPrefix+"/silence/"+created.SilenceID, nil)
	if code != http.StatusOK || !strings.Contains(body, `"state":"active"`) {
		t.Fatalf("silence after restart: %d %s", code, body)
	}
	postAlert(t, am2, "tenant-a", "Maintenance")
	postAlert(t, am2, "tenant-a", "AfterRestart")
	h.hook.WaitFor(t, "/a", "AfterRestart")
	waitSilenced(t, h.reg, "tenant-a")
	h.hook.Never(t, "/a", "Maintenance")
	// Expiring the silence through the API.
	if code, body := call(t, am2, "tenant-a", http.MethodDelete, APIPrefix+"/silence/"+created.SilenceID, nil); code != http.StatusOK {
		t.Fatalf("delete silence: %d %s", code, body)
	}
	if code, _ := call(t, am2, "tenant-b", http.MethodDelete, APIPrefix+"/silence/"+created.SilenceID, nil); code != http.StatusNotFound {
		t.Fatalf("tenant-b expired tenant-a's silence: %d", code)
	}
	if b, err := os.ReadFile(sibling); err != nil || string(b) != "not ours" {
		t.Fatalf("a file beside the storage path was touched: %q %v", b, err)
	}
}

func TestConfigsDownKeepsLastConfigThenDeactivate(t *testing.T) {
	h := newHarness(t)
	h.cfgs.set("tenant-a", h.hook.Config("/a"), nil)
	cfg := h.config(filepath.Join(h.dir, "am"))
	cfg.Configs.PollInterval = time.Hour // polls are driven by the test
	am := h.start(cfg)
	waitTenants(t, am, "tenant-a")

	// A changed config is applied on the next poll.
	h.cfgs.set("tenant-a", strings.Replace(h.hook.Config("/a"), "/a\n", "/a2\n", 1), nil)
	if err := am.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	postAlert(t, am, "tenant-a", "Reloaded")
	h.hook.WaitFor(t, "/a2", "Reloaded")

	// The configs service goes away: the tenant keeps running and the
	// error is logged with its cause.
	addr := h.cfgs.srv.Listener.Addr().String()
	h.cfgs.srv.Close()
	if err := am.Poll(context.Background()); err == nil {
		t.Fatal("poll of a stopped configs service succeeded")
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "cannot fetch Alertmanager configurations") || !strings.Contains(logs, "connection refused") {
		t.Fatalf("log does not say why polling failed:\n%s", logs)
	}
	waitTenants(t, am, "tenant-a")
	postAlert(t, am, "tenant-a", "StillServing")
	h.hook.WaitFor(t, "/a2", "StillServing")

	// The configs service comes back on the same address and the tenant
	// is deactivated there: its Alertmanager stops.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot reuse %s: %v", addr, err)
	}
	f2 := &fakeConfigs{configs: h.cfgs.configs, nextID: h.cfgs.nextID}
	f2.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(f2.serve)}, TLS: h.cfgs.srv.TLS}
	f2.srv.StartTLS()
	defer f2.srv.Close()
	f2.deactivate("tenant-a")
	if err := am.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitTenants(t, am)
	if code, _ := call(t, am, "tenant-a", http.MethodGet, APIPrefix+"/alerts", nil); code != http.StatusNotFound {
		t.Fatalf("deactivated tenant still answers: %d", code)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "am", "tenant-a", silencesFile)); err != nil {
		t.Fatalf("deactivated tenant's silences were not kept: %v", err)
	}
}

func TestForeignClientCertificateThenFixed(t *testing.T) {
	h := newHarness(t)
	h.cfgs.set("tenant-a", h.hook.Config("/a"), nil)
	foreign := newPKI(t, h.dir, "foreign")
	// The alertmanager trusts the right CA but presents a certificate from
	// a CA the configs service does not know.
	certPath, keyPath := filepath.Join(h.dir, "am.crt"), filepath.Join(h.dir, "am.key")
	testkit.WriteFile(t, certPath, foreign.client.CertPEM, 0o600)
	testkit.WriteFile(t, keyPath, foreign.client.KeyPEM, 0o600)
	cfg := h.config(filepath.Join(h.dir, "am"))
	cfg.Configs.PollInterval = time.Hour
	cfg.Configs.TLS.CertPath, cfg.Configs.TLS.KeyPath = certPath, keyPath
	am := h.start(cfg)
	err := am.Poll(context.Background())
	if err == nil {
		t.Fatal("poll with a foreign client certificate succeeded")
	}
	if len(am.Tenants()) != 0 {
		t.Fatalf("tenants started without a config: %v", am.Tenants())
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "-alertmanager.configs: server at") || !strings.Contains(logs, "does not trust the client certificate -alertmanager.configs.tls-cert-path="+certPath) {
		t.Fatalf("log does not explain the refused certificate:\n%s", logs)
	}

	// Fix the certificate on disk; no restart.
	testkit.WriteFile(t, certPath, h.pki.client.CertPEM, 0o600)
	testkit.WriteFile(t, keyPath, h.pki.client.KeyPEM, 0o600)
	h.loader.Reload()
	if err := am.Poll(context.Background()); err != nil {
		t.Fatalf("poll after fixing the certificate: %v", err)
	}
	waitTenants(t, am, "tenant-a")
}

func TestFallbackWithoutConfigsURL(t *testing.T) {
	h := newHarness(t)
	fb := filepath.Join(h.dir, "fallback.yaml")
	testkit.WriteFile(t, fb, []byte(h.hook.Config("/fallback")), 0o600)
	storage := filepath.Join(h.dir, "am")
	cfg := h.config(storage)
	cfg.Configs.URL = ""
	cfg.Configs.Fallback = fb
	am := h.start(cfg)
	if _, err := os.Stat(storage); !os.IsNotExist(err) {
		t.Fatalf("an idle alertmanager created %s", storage)
	}
	postAlert(t, am, "anyone", "FromFallback")
	h.hook.WaitFor(t, "/fallback", "FromFallback")
	waitTenants(t, am, "anyone")

	// No URL and no fallback: idle.
	cfg.Configs.Fallback = ""
	am2 := h.start(cfg)
	if code, _ := call(t, am2, "anyone", http.MethodGet, APIPrefix+"/status", nil); code != http.StatusNotFound {
		t.Fatalf("idle alertmanager answered %d", code)
	}
}

func TestTenantMayNotReadHostFiles(t *testing.T) {
	h := newHarness(t)
	fileCfg := strings.Replace(h.hook.Config("/a"), "        ca: |\n", "        ca_file: "+h.hookCA+"\n", 1)
	at := strings.Index(fileCfg, "ca_file:")
	if at < 0 {
		t.Fatalf("no ca_file in the tenant's config:\n%s", fileCfg)
	}
	fileCfg = fileCfg[:at] + "ca_file: " + h.hookCA + "\n"
	h.cfgs.set("tenant-a", fileCfg, nil)
	cfg := h.config(filepath.Join(h.dir, "am"))
	cfg.Configs.PollInterval = time.Hour
	am := h.start(cfg)
	if len(am.Tenants()) != 0 {
		t.Fatalf("a config naming a host file was applied: %v", am.Tenants())
	}
	if logs := h.logs.String(); !strings.Contains(logs, "may not read files on the alertmanager's host") || !strings.Contains(logs, "receivers[0].webhook_configs[0].http_config.tls_config.ca_file") {
		t.Fatalf("refusal not logged:\n%s", logs)
	}
	// The operator's fallback may name files.
	fb := filepath.Join(h.dir, "fallback.yaml")
	testkit.WriteFile(t, fb, []byte(strings.Replace(fileCfg, "/a\n", "/fallback\n", 1)), 0o600)
	cfg.Configs.URL = ""
	cfg.Configs.Fallback = fb
	am2 := h.start(cfg)
	postAlert(t, am2, "tenant-z", "Fallback")
	h.hook.WaitFor(t, "/fallback", "Fallback")
}

// notifications sums alertmanager_notifications_total for one tenant.
func notifications(t *testing.T, reg *prometheus.Registry, user string) float64 {
	t.Helper()
	return testkit.MetricSum(t, reg, "alertmanager_notifications_total", "user", user)
}
