package alertmanager

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// templatedHookConfig is the webhook configuration of h's receiver with
// its URL rendered by the template "hook.url", which the tenant's template
// files define. The templates section names them as a Cortex tenant does.
func templatedHookConfig(t *testing.T, h *harness) string {
	t.Helper()
	const marker = "/to-be-templated"
	cfg := h.hook.Config(marker)
	plain := "url: " + h.hook.Server.URL + marker + "\n"
	if !strings.Contains(cfg, plain) {
		t.Fatalf("no %q in the webhook configuration:\n%s", plain, cfg)
	}
	return "templates: ['*.tmpl']\n" + strings.Replace(cfg, plain, "url: '{{ template \"hook.url\" . }}'\n", 1)
}

func hookURLTemplate(h *harness, path string) map[string]string {
	return map[string]string{"hook.tmpl": `{{ define "hook.url" }}` + h.hook.Server.URL + path + `{{ end }}`}
}

// TestTemplateFilesRenderNotifications: the template files of a tenant's
// configuration, as the configs service serves them, render its
// notifications; each tenant renders with its own files, a new version of
// the files takes effect on the next poll, and a tenant with only template
// files runs the fallback configuration with them.
func TestTemplateFilesRenderNotifications(t *testing.T) {
	h := newHarness(t)
	amCfg := templatedHookConfig(t, h)
	h.cfgs.set("tenant-a", amCfg, hookURLTemplate(h, "/a-templated"))
	h.cfgs.set("tenant-b", amCfg, hookURLTemplate(h, "/b-templated"))
	h.cfgs.set("tenant-c", "", hookURLTemplate(h, "/c-templated"))
	fb := filepath.Join(h.dir, "fallback.yaml")
	if err := os.WriteFile(fb, []byte(amCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	storage := filepath.Join(h.dir, "am")
	cfg := h.config(storage)
	cfg.Configs.Fallback = fb
	am := h.start(cfg)
	waitTenants(t, am, "tenant-a", "tenant-b", "tenant-c")

	postAlert(t, am, "tenant-a", "FromA")
	postAlert(t, am, "tenant-b", "FromB")
	postAlert(t, am, "tenant-c", "FromC")
	h.hook.WaitFor(t, "/a-templated", "FromA")
	h.hook.WaitFor(t, "/b-templated", "FromB")
	h.hook.WaitFor(t, "/c-templated", "FromC")
	for _, path := range []string{"/a-templated", "/c-templated"} {
		h.hook.Never(t, path, "FromB")
	}
	h.hook.Never(t, "/b-templated", "FromA")
	b, err := os.ReadFile(filepath.Join(storage, "tenant-b", templatesDir, "hook.tmpl"))
	if err != nil || !strings.Contains(string(b), "/b-templated") {
		t.Fatalf("tenant-b's template file on disk: %q %v", b, err)
	}

	// New template files, same alertmanager_config: the next poll reloads.
	h.cfgs.set("tenant-a", amCfg, hookURLTemplate(h, "/a-v2"))
	testkit.Eventually(t, 10*time.Second, "tenant-a running the new template files", func() bool {
		am.mtx.RLock()
		defer am.mtx.RUnlock()
		ten, ok := am.tenants["tenant-a"]
		if !ok {
			return false
		}
		ten.mtx.RLock()
		defer ten.mtx.RUnlock()
		return strings.Contains(ten.cfg.TemplateFiles["hook.tmpl"], "/a-v2")
	})
	postAlert(t, am, "tenant-a", "AfterReload")
	h.hook.WaitFor(t, "/a-v2", "AfterReload")
	h.hook.Never(t, "/a-templated", "AfterReload")
}

// TestFallbackTemplateFilesWithinLimits: a tenant with only template files
// runs the fallback with them only within its template limits.
func TestFallbackTemplateFilesWithinLimits(t *testing.T) {
	h := newHarness(t)
	amCfg := templatedHookConfig(t, h)
	fb := filepath.Join(h.dir, "fallback.yaml")
	if err := os.WriteFile(fb, []byte(amCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	files := hookURLTemplate(h, "/c-templated")
	files["second.tmpl"] = `{{ define "second" }}2{{ end }}`
	h.cfgs.set("tenant-c", "", files)
	h.cfgs.set("tenant-d", "", hookURLTemplate(h, "/d-templated"))
	cfg := h.config(filepath.Join(h.dir, "am"))
	cfg.Configs.Fallback = fb
	am := h.start(cfg, WithLimits(overrides(validation.Limits{AlertmanagerMaxTemplatesCount: 1}, nil)))
	waitTenants(t, am, "tenant-d")
	testkit.Eventually(t, 10*time.Second, "the refusal logged", func() bool {
		logs := h.logs.String()
		return strings.Contains(logs, "tenant=tenant-c") && strings.Contains(logs, "too many templates in the configuration: 2 (limit: 1, -alertmanager.max-templates-count)")
	})
	postAlert(t, am, "tenant-d", "FromD")
	h.hook.WaitFor(t, "/d-templated", "FromD")
	if got := am.Tenants(); len(got) != 1 {
		t.Fatalf("running tenants %v, want only tenant-d", got)
	}
}
