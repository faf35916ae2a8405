package overrides

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/thanos-io/objstore/providers/filesystem"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

const runtimeConfig = `
api_allowed_limits: [ingestion_rate, max_series_per_user]
hard_overrides:
  team-a:
    ingestion_rate: 50000
overrides:
  team-b:
    ingestion_rate: 7
multi_kv_config:
  primary: etcd
`

// check loads the overrides as the components do: every tenant's block
// decodes onto the limits and passes their validation.
func check(data []byte) error {
	var raw struct {
		Overrides map[string]yaml.Node `yaml:"overrides"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return err
	}
	var defaults validation.Limits
	defaults.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	_, err := validation.DecodeOverrides(defaults, raw.Overrides)
	return err
}

func newTestAPI(t *testing.T) (*API, *filesystem.Bucket) {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(context.Background(), "runtime.yaml", strings.NewReader(runtimeConfig)); err != nil {
		t.Fatal(err)
	}
	return New(bkt, "runtime.yaml", check, slog.New(slog.DiscardHandler)), bkt
}

func call(t *testing.T, h http.HandlerFunc, method, tenantID, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, "/api/v1/user-overrides", strings.NewReader(body))
	r = r.WithContext(tenant.Inject(r.Context(), tenantID))
	w := httptest.NewRecorder()
	h(w, r)
	return w.Code, strings.TrimSpace(w.Body.String())
}

func object(t *testing.T, bkt *filesystem.Bucket) string {
	t.Helper()
	rc, err := bkt.Get(context.Background(), "runtime.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestUserOverrides(t *testing.T) {
	a, bkt := newTestAPI(t)
	if code, body := call(t, a.GetOverrides, http.MethodGet, "team-a", ""); code != http.StatusNotFound || body != "not found" {
		t.Fatalf("GET without overrides: %d %q", code, body)
	}
	if code, body := call(t, a.GetOverrides, http.MethodGet, "team-b", ""); code != http.StatusOK || body != `{"ingestion_rate":7}` {
		t.Fatalf("GET team-b: %d %q", code, body)
	}

	if code, body := call(t, a.SetOverrides, http.MethodPost, "team-a", `{"ingestion_rate": 40000, "max_series_per_user": 1000}`); code != http.StatusOK {
		t.Fatalf("POST: %d %q", code, body)
	}
	if code, body := call(t, a.GetOverrides, http.MethodGet, "team-a", ""); code != http.StatusOK || body != `{"ingestion_rate":40000,"max_series_per_user":1000}` {
		t.Fatalf("GET after POST: %d %q", code, body)
	}
	// The rest of the file is kept.
	doc := object(t, bkt)
	for _, want := range []string{"primary: etcd", "team-b:", "ingestion_rate: 7", "api_allowed_limits:"} {
		if !strings.Contains(doc, want) {
			t.Errorf("the runtime configuration lost %q:\n%s", want, doc)
		}
	}

	for _, tc := range []struct{ tenant, body, want string }{
		{"team-a", `{"max_fetched_series_per_query": 1}`, "the following limits cannot be modified via the overrides API: max_fetched_series_per_query (the runtime configuration's api_allowed_limits lists those that can)"},
		{"team-a", `{"ingestion_rate": 60000}`, "limit ingestion_rate exceeds hard limit: 60000 > 50000 (hard_overrides of tenant team-a)"},
		{"team-a", `{"max_series_per_user": "many"}`, "invalid overrides for tenant team-a:"},
		{"team-a", `{"ingestion_rate": `, "invalid JSON:"},
	} {
		code, body := call(t, a.SetOverrides, http.MethodPost, tc.tenant, tc.body)
		if code != http.StatusBadRequest || !strings.HasPrefix(body, tc.want) {
			t.Errorf("POST %s: %d %q, want 400 %q", tc.body, code, body, tc.want)
		}
	}
	if !strings.Contains(object(t, bkt), "max_series_per_user: 1000") {
		t.Errorf("a refused change altered the file:\n%s", object(t, bkt))
	}

	if code, _ := call(t, a.DeleteOverrides, http.MethodDelete, "team-a", ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := call(t, a.GetOverrides, http.MethodGet, "team-a", ""); code != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d", code)
	}
	if code, body := call(t, a.GetOverrides, http.MethodGet, "team-b", ""); code != http.StatusOK || body != `{"ingestion_rate":7}` {
		t.Fatalf("team-b after team-a's DELETE: %d %q", code, body)
	}
}

func TestUserOverridesRefuseCrossSiteWrites(t *testing.T) {
	a, _ := newTestAPI(t)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/user-overrides", bytes.NewReader([]byte(`{"ingestion_rate": 1}`)))
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	r = r.WithContext(tenant.Inject(r.Context(), "team-a"))
	w := httptest.NewRecorder()
	a.SetOverrides(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("a cross-site POST: %d %q, want 403", w.Code, w.Body.String())
	}
}
