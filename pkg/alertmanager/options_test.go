package alertmanager

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

func blockCIDRs(t *testing.T, s string) validation.CIDRList {
	t.Helper()
	var c validation.CIDRList
	if err := c.Set(s); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReceiversFirewall: a receiver on 127.0.0.1 is not called when the
// tenant's firewall blocks 127.0.0.0/8 or private addresses; the failure
// is logged and counted, and a tenant without a firewall is notified.
func TestReceiversFirewall(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"tenant-cidr", "tenant-private", "tenant-open"} {
		h.cfgs.set(id, h.hook.Config("/"+id), nil)
	}
	limits := overrides(validation.Limits{}, map[string]*validation.Limits{
		"tenant-cidr":    {AlertmanagerReceiversBlockCIDRNetworks: blockCIDRs(t, "10.0.0.0/8,127.0.0.0/8")},
		"tenant-private": {AlertmanagerReceiversBlockPrivateAddresses: true},
	})
	am := h.start(h.config(filepath.Join(h.dir, "am")), WithLimits(limits))
	waitTenants(t, am, "tenant-cidr", "tenant-private", "tenant-open")

	for _, id := range []string{"tenant-cidr", "tenant-private", "tenant-open"} {
		postAlert(t, am, id, "Down")
	}
	h.hook.WaitFor(t, "/tenant-open", "Down")
	for _, c := range []struct{ tenant, log string }{
		{"tenant-cidr", "receiver address 127.0.0.1 is blocked: it is in 127.0.0.0/8 (-alertmanager.receivers-firewall-block-cidr-networks)"},
		{"tenant-private", "receiver address 127.0.0.1 is blocked: private, loopback and link-local addresses are refused (-alertmanager.receivers-firewall-block-private-addresses)"},
	} {
		testkit.Eventually(t, 15*time.Second, c.tenant+"'s blocked notification counted", func() bool {
			return testkit.MetricSum(t, h.reg, "alertmanager_notifications_failed_total", "user", c.tenant, "integration", "webhook") >= 1
		})
		if logs := h.logs.String(); !strings.Contains(logs, c.log) {
			t.Errorf("%s: the refusal is not logged with %q:\n%s", c.tenant, c.log, logs)
		}
		if got := h.hook.Received("/" + c.tenant); len(got) != 0 {
			t.Errorf("%s's blocked receiver was called with %v", c.tenant, got)
		}
	}
}

// TestNotificationRateLimits: a notification over the tenant's rate (its
// per-integration rate first) is dropped and counted in
// cortex_alertmanager_notification_rate_limited_total; a negative rate
// sends nothing.
func TestNotificationRateLimits(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"tenant-slow", "tenant-none", "tenant-open"} {
		h.cfgs.set(id, h.hook.Config("/"+id), nil)
	}
	limits := overrides(validation.Limits{AlertmanagerNotificationRateLimit: 100}, map[string]*validation.Limits{
		// One notification, then one each 1000s.
		"tenant-slow": {AlertmanagerNotificationRateLimit: 100, AlertmanagerNotificationRateLimitPerIntegration: validation.NotificationRateLimitMap{"webhook": 0.001}},
		"tenant-none": {AlertmanagerNotificationRateLimit: -1},
	})
	am := h.start(h.config(filepath.Join(h.dir, "am")), WithLimits(limits))
	waitTenants(t, am, "tenant-slow", "tenant-none", "tenant-open")

	limited := func(id string) float64 {
		return testkit.MetricSum(t, h.reg, "cortex_alertmanager_notification_rate_limited_total", "user", id, "integration", "webhook")
	}
	postAlert(t, am, "tenant-slow", "First")
	h.hook.WaitFor(t, "/tenant-slow", "First")
	postAlert(t, am, "tenant-slow", "Second")
	postAlert(t, am, "tenant-none", "First")
	postAlert(t, am, "tenant-open", "First")
	postAlert(t, am, "tenant-open", "Second")
	h.hook.WaitFor(t, "/tenant-open", "First")
	h.hook.WaitFor(t, "/tenant-open", "Second")
	testkit.Eventually(t, 15*time.Second, "the notifications over the limits counted", func() bool {
		return limited("tenant-slow") >= 1 && limited("tenant-none") >= 1
	})
	h.hook.Never(t, "/tenant-slow", "Second")
	h.hook.Never(t, "/tenant-none", "First")
	if n := limited("tenant-open"); n != 0 {
		t.Errorf("tenant-open, under its limit: %v notifications rate limited", n)
	}
}

// TestEnabledAndDisabledTenants: only the allowed tenants' configurations
// are loaded, and the others' requests are refused with Cortex's 401.
func TestEnabledAndDisabledTenants(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"tenant-a", "tenant-b", "tenant-c"} {
		h.cfgs.set(id, h.hook.Config("/"+id), nil)
	}
	cfg := h.config(filepath.Join(h.dir, "am"))
	cfg.EnabledTenants = []string{"tenant-a", "tenant-b"}
	cfg.DisabledTenants = []string{"tenant-b"}
	am := h.start(cfg)
	waitTenants(t, am, "tenant-a")
	for _, id := range []string{"tenant-b", "tenant-c"} {
		if code, body := call(t, am, id, http.MethodGet, APIPrefix+"/status", nil); code != http.StatusUnauthorized || !strings.Contains(body, "Tenant is not allowed") {
			t.Errorf("%s: %d %s, want 401 Tenant is not allowed", id, code, body)
		}
	}
	if code, body := call(t, am, "tenant-a", http.MethodGet, APIPrefix+"/status", nil); code != http.StatusOK {
		t.Errorf("tenant-a: %d %s", code, body)
	}
}

// TestMaxRecvMsgSize: a request body over -alertmanager.max-recv-msg-size
// is refused with 413 naming the flag.
func TestMaxRecvMsgSize(t *testing.T) {
	h := newHarness(t)
	h.cfgs.set("tenant-a", h.hook.Config("/a"), nil)
	cfg := h.config(filepath.Join(h.dir, "am"))
	cfg.MaxRecvMsgSize = 200
	am := h.start(cfg)
	waitTenants(t, am, "tenant-a")
	big := []map[string]any{{"labels": map[string]string{"alertname": strings.Repeat("x", 300)}}}
	code, body := call(t, am, "tenant-a", http.MethodPost, APIPrefix+"/alerts", big)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "the request body is larger than 200 bytes (-alertmanager.max-recv-msg-size)") {
		t.Fatalf("a 300-byte alert with a 200-byte limit: %d %s", code, body)
	}
	postAlert(t, am, "tenant-a", "Small")
	h.hook.WaitFor(t, "/a", "Small")
}

// TestAPIConcurrency: a GET beyond -alertmanager.api-concurrency in flight
// is refused with 503 and counted; other methods are not limited.
func TestAPIConcurrency(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := newAPILimiter(1, reg)
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.serve(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), func() {
			close(entered)
			<-release
		})
	}()
	<-entered
	rec := httptest.NewRecorder()
	l.serve(rec, httptest.NewRequest(http.MethodGet, "/", nil), func() { t.Error("a second GET was served") })
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "Limit of concurrent GET requests reached (1), try again later (-alertmanager.api-concurrency).") {
		t.Errorf("second GET: %d %s", rec.Code, rec.Body.String())
	}
	posted := false
	l.serve(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", nil), func() { posted = true })
	if !posted {
		t.Error("a POST was limited")
	}
	if n := testkit.MetricSum(t, reg, "alertmanager_http_concurrency_limit_exceeded_total"); n != 1 {
		t.Errorf("alertmanager_http_concurrency_limit_exceeded_total = %v, want 1", n)
	}
	close(release)
	<-done
	rec = httptest.NewRecorder()
	l.serve(rec, httptest.NewRequest(http.MethodGet, "/", nil), func() { rec.WriteHeader(http.StatusOK) })
	if rec.Code != http.StatusOK {
		t.Errorf("GET after the first ended: %d", rec.Code)
	}
	if c := cap(newAPILimiter(0, nil).slots); c < 8 {
		t.Errorf("-alertmanager.api-concurrency=0 allows %d, want at least 8", c)
	}
}

func TestOptionFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if cfg.GCInterval != 30*time.Minute || cfg.MaxRecvMsgSize != 16<<20 || cfg.APIConcurrency != 0 {
		t.Errorf("defaults differ from Cortex's: gc %s, max recv %d, api concurrency %d", cfg.GCInterval, cfg.MaxRecvMsgSize, cfg.APIConcurrency)
	}
	for _, c := range []struct{ arg, want string }{
		{"-alertmanager.alerts-gc-interval=0s", "-alertmanager.alerts-gc-interval must be positive, got 0s"},
		{"-alertmanager.max-recv-msg-size=0", "-alertmanager.max-recv-msg-size must be positive, got 0"},
		{"-alertmanager.api-concurrency=-1", "-alertmanager.api-concurrency must not be negative"},
	} {
		var cfg Config
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse([]string{"-alertmanager.storage.path=x", c.arg}); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.arg, err, c.want)
		}
	}
}

// TestReceiversFirewallEmail: an email receiver, which dials its smarthost
// itself, is refused a blocked smarthost before it connects.
func TestReceiversFirewallEmail(t *testing.T) {
	h := newHarness(t)
	h.cfgs.set("tenant-mail", `route:
  receiver: mail
  group_wait: 50ms
  group_interval: 1s
receivers:
- name: mail
  email_configs:
  - to: oncall@example.com
    from: alertmanager@example.com
    smarthost: 127.0.0.1:25
    require_tls: false
`, nil)
	limits := overrides(validation.Limits{AlertmanagerReceiversBlockCIDRNetworks: blockCIDRs(t, "127.0.0.0/8")}, nil)
	am := h.start(h.config(filepath.Join(h.dir, "am")), WithLimits(limits))
	waitTenants(t, am, "tenant-mail")
	postAlert(t, am, "tenant-mail", "Down")
	testkit.Eventually(t, 15*time.Second, "the blocked email counted", func() bool {
		return testkit.MetricSum(t, h.reg, "alertmanager_notifications_failed_total", "user", "tenant-mail", "integration", "email") >= 1
	})
	want := "receiver address 127.0.0.1 is blocked: it is in 127.0.0.0/8 (-alertmanager.receivers-firewall-block-cidr-networks)"
	if logs := h.logs.String(); !strings.Contains(logs, want) {
		t.Fatalf("the refusal is not logged with %q:\n%s", want, logs)
	}
}
