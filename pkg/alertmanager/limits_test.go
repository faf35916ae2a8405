package alertmanager

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// overrides gives every tenant defaults, and the tenants named in perTenant
// their own limits.
func overrides(defaults validation.Limits, perTenant map[string]*validation.Limits) *validation.Overrides {
	return validation.NewOverrides(defaults, func() map[string]*validation.Limits { return perTenant })
}

func TestConfigAPIRefusesConfigsOverTheTenantsLimits(t *testing.T) {
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
	cfg.Configs.PollInterval = time.Hour
	cfg.EnableAPI = true

	withTemplates := func(templates map[string]string) string {
		b, err := yaml.Marshal(tenantConfig{AlertmanagerConfig: h.hook.Config("/api"), TemplateFiles: templates})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	plain := withTemplates(nil)
	limits := overrides(
		validation.Limits{AlertmanagerMaxConfigSizeBytes: len(plain) - 1, AlertmanagerMaxTemplatesCount: 1, AlertmanagerMaxTemplateSizeBytes: 10},
		map[string]*validation.Limits{"tenant-free": {}, "tenant-t": {AlertmanagerMaxTemplatesCount: 1, AlertmanagerMaxTemplateSizeBytes: 10}},
	)
	am, err := New(cfg, store, slog.New(slog.NewTextHandler(h.logs, nil)), prometheus.NewRegistry(), WithLimits(limits))
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), am); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), am) })

	twoTemplates := withTemplates(map[string]string{"a.tmpl": "a", "b.tmpl": "b"})
	bigTemplate := withTemplates(map[string]string{"big.tmpl": "01234567890"})
	for _, tc := range []struct {
		tenant, body string
		code         int
		want         string
	}{
		{"tenant-a", plain, http.StatusBadRequest, "the Alertmanager configuration is too big: " + strconv.Itoa(len(plain)) + " bytes (limit: " + strconv.Itoa(len(plain)-1) + " bytes, -alertmanager.max-config-size-bytes)"},
		{"tenant-free", plain, http.StatusCreated, ""},
		{"tenant-free", twoTemplates, http.StatusCreated, ""},
		{"tenant-free", bigTemplate, http.StatusCreated, ""},
	} {
		if code, body := configAPICall(t, am, tc.tenant, http.MethodPost, tc.body); code != tc.code || !strings.Contains(body, tc.want) {
			t.Fatalf("POST for %s, %d bytes: %d %s", tc.tenant, len(tc.body), code, body)
		}
	}

	// tenant-t's override has no size limit, only the template limits.
	if code, body := configAPICall(t, am, "tenant-t", http.MethodPost, twoTemplates); code != http.StatusBadRequest || !strings.Contains(body, "too many templates in the configuration: 2 (limit: 1, -alertmanager.max-templates-count)") {
		t.Fatalf("POST with two templates: %d %s", code, body)
	}
	if code, body := configAPICall(t, am, "tenant-t", http.MethodPost, bigTemplate); code != http.StatusBadRequest || !strings.Contains(body, "template big.tmpl is too big: 11 bytes (limit: 10 bytes, -alertmanager.max-template-size-bytes)") {
		t.Fatalf("POST with a big template: %d %s", code, body)
	}
	if code, body := configAPICall(t, am, "tenant-t", http.MethodGet, ""); code != http.StatusNotFound {
		t.Fatalf("a refused configuration was stored: %d %s", code, body)
	}
}

// TestStoredConfigOverLimitsKeepsTheLastGoodOne: a configuration in the
// storage over the tenant's limits is not loaded; the tenant keeps running
// with its previous one and the refusal is logged with tenant and limit.
func TestStoredConfigOverLimitsKeepsTheLastGoodOne(t *testing.T) {
	h := newHarness(t)
	h.cfgs.set("tenant-a", h.hook.Config("/a"), map[string]string{"one.tmpl": "1"})
	am := h.start(h.config(filepath.Join(h.dir, "am")), WithLimits(overrides(validation.Limits{AlertmanagerMaxTemplatesCount: 1}, nil)))
	waitTenants(t, am, "tenant-a")

	h.cfgs.set("tenant-a", h.hook.Config("/b"), map[string]string{"one.tmpl": "1", "two.tmpl": "2"})
	testkit.Eventually(t, 10*time.Second, "the refusal logged", func() bool {
		logs := h.logs.String()
		return strings.Contains(logs, "tenant=tenant-a") && strings.Contains(logs, "too many templates in the configuration: 2 (limit: 1, -alertmanager.max-templates-count)")
	})
	postAlert(t, am, "tenant-a", "StillOld")
	h.hook.WaitFor(t, "/a", "StillOld")
}

func TestSilenceLimits(t *testing.T) {
	h := newHarness(t)
	h.cfgs.set("tenant-a", h.hook.Config("/a"), nil)
	h.cfgs.set("tenant-b", h.hook.Config("/b"), nil)
	limits := overrides(validation.Limits{AlertmanagerMaxSilencesCount: 1, AlertmanagerMaxSilencesSizeBytes: 1000},
		map[string]*validation.Limits{"tenant-b": {AlertmanagerMaxSilencesCount: 2}})
	am := h.start(h.config(filepath.Join(h.dir, "am")), WithLimits(limits))
	waitTenants(t, am, "tenant-a", "tenant-b")

	now := time.Now().UTC()
	silence := func(comment string) map[string]any {
		return map[string]any{
			"matchers": []map[string]any{{"name": "alertname", "value": "Maintenance", "isRegex": false, "isEqual": true}},
			"startsAt": now, "endsAt": now.Add(time.Hour), "createdBy": "test", "comment": comment,
		}
	}
	if code, body := call(t, am, "tenant-a", http.MethodPost, APIPrefix+"/silences", silence(strings.Repeat("x", 1000))); code != http.StatusBadRequest || !strings.Contains(body, "exceeded maximum size") || !strings.Contains(body, "limit: 1000 bytes") {
		t.Fatalf("a silence over -alertmanager.max-silences-size-bytes: %d %s", code, body)
	}
	if code, body := call(t, am, "tenant-a", http.MethodPost, APIPrefix+"/silences", silence("first")); code != http.StatusOK {
		t.Fatalf("first silence: %d %s", code, body)
	}
	if code, body := call(t, am, "tenant-a", http.MethodPost, APIPrefix+"/silences", silence("second")); code != http.StatusBadRequest || !strings.Contains(body, "exceeded maximum number of silences: 1 (limit: 1)") {
		t.Fatalf("a silence over -alertmanager.max-silences-count: %d %s", code, body)
	}
	// tenant-b's override allows two.
	for _, c := range []string{"first", "second"} {
		if code, body := call(t, am, "tenant-b", http.MethodPost, APIPrefix+"/silences", silence(c)); code != http.StatusOK {
			t.Fatalf("tenant-b's %s silence: %d %s", c, code, body)
		}
	}
}

func TestAlertLimits(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"tenant-count", "tenant-size", "tenant-groups"} {
		h.cfgs.set(id, h.hook.Config("/"+id), nil)
	}
	limits := overrides(validation.Limits{}, map[string]*validation.Limits{
		"tenant-count":  {AlertmanagerMaxAlertsCount: 1},
		"tenant-size":   {AlertmanagerMaxAlertsSizeBytes: len("alertname") + len("First") + len("severity") + len("page") + 5},
		"tenant-groups": {AlertmanagerMaxDispatcherAggregationGroups: 1},
	})
	am := h.start(h.config(filepath.Join(h.dir, "am")), WithLimits(limits))
	waitTenants(t, am, "tenant-count", "tenant-size", "tenant-groups")

	for _, id := range []string{"tenant-count", "tenant-size"} {
		postAlert(t, am, id, "First")
		postAlert(t, am, id, "Second")
		postAlert(t, am, id, "First") // an update of a held alert
	}
	// The dispatcher takes alerts in no set order: First's group is made
	// (and notified) before Second arrives, so it is Second that finds no
	// room.
	postAlert(t, am, "tenant-groups", "First")
	h.hook.WaitFor(t, "/tenant-groups", "First")
	postAlert(t, am, "tenant-groups", "Second")
	postAlert(t, am, "tenant-groups", "First")
	held := func(id string) string {
		code, body := call(t, am, id, http.MethodGet, APIPrefix+"/alerts", nil)
		if code != http.StatusOK {
			t.Fatalf("%s alerts: %d %s", id, code, body)
		}
		return body
	}
	for _, id := range []string{"tenant-count", "tenant-size"} {
		if body := held(id); !strings.Contains(body, `"First"`) || strings.Contains(body, `"Second"`) {
			t.Fatalf("%s holds, with room for one alert: %s", id, body)
		}
		if n := testkit.MetricSum(t, h.reg, "alertmanager_alerts_insert_limited_total", "user", id); n != 1 {
			t.Fatalf("alertmanager_alerts_insert_limited_total{user=%q} = %v, want 1", id, n)
		}
		if logs := h.logs.String(); !strings.Contains(logs, "alert name: Second") {
			t.Fatalf("refusal not logged:\n%s", logs)
		}
	}
	if body := held("tenant-groups"); !strings.Contains(body, `"First"`) || !strings.Contains(body, `"Second"`) {
		t.Fatalf("tenant-groups holds: %s", body)
	}
	h.hook.WaitFor(t, "/tenant-groups", "First")
	testkit.Eventually(t, 10*time.Second, "the aggregation group limit reached", func() bool {
		return testkit.MetricSum(t, h.reg, "alertmanager_dispatcher_aggregation_group_limit_reached_total", "user", "tenant-groups") >= 1
	})
	code, body := call(t, am, "tenant-groups", http.MethodGet, APIPrefix+"/alerts/groups", nil)
	if code != http.StatusOK || strings.Contains(body, `"Second"`) {
		t.Fatalf("tenant-groups' groups, with room for one: %d %s", code, body)
	}
}
