package ruler_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/api"
	"github.com/cortex-tls/cortex/pkg/ruler"
	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// newAdminAPI mounts the ruler's administrative routes over store, as the
// ruler module does whatever -ruler.enable-api says.
func newAdminAPI(t *testing.T, store rulestore.Store) (http.Handler, *api.API) {
	t.Helper()
	mux := http.NewServeMux()
	a := api.New(mux, true, "ruler", api.Auth{})
	a.RegisterRulerAdmin(ruler.NewConfigAPI(store, validation.NewOverrides(validation.Limits{}, nil), nil))
	return mux, a
}

func storeGroups(t *testing.T, store rulestore.Store, groups ...[3]string) {
	t.Helper()
	for _, g := range groups {
		h := newConfigAPI(t, store, validation.Limits{}, nil)
		expect(t, "storing "+g[1], call(t, h, http.MethodPost, "/api/v1/rules/"+g[1], g[0], g[2]), http.StatusAccepted, accepted)
	}
}

// TestListAllRules: every tenant's groups by namespace, as Cortex's
// /ruler/rule_groups writes them (yaml.v3), in tenant order; the route is
// for identities given every tenant.
func TestListAllRules(t *testing.T) {
	store := newStore(t)
	h, a := newAdminAPI(t, store)
	got := call(t, h, http.MethodGet, "/ruler/rule_groups", "", "")
	expect(t, "listing an empty store", got, http.StatusOK, "")

	storeGroups(t, store,
		[3]string{"team-b", "infra", recordingGroup},
		[3]string{"team-a", "web", "name: w\nrules:\n- record: a:b\n  expr: up\n"},
		[3]string{"team-a", "db", "name: d\nrules:\n- record: c:d\n  expr: up\n"},
	)
	got = call(t, h, http.MethodGet, "/ruler/rule_groups", "", "")
	want := "team-a:\n    db:\n        - name: d\n          rules:\n            - record: c:d\n              expr: up\n" +
		"    web:\n        - name: w\n          rules:\n            - record: a:b\n              expr: up\n" +
		"team-b:\n    infra:\n" + indent(nestedGroupYAML, "    ")
	expect(t, "listing", got, http.StatusOK, want)
	if got.contentType != "application/yaml" {
		t.Errorf("Content-Type %q, want application/yaml", got.contentType)
	}

	routes := a.Routes()
	i := slices.IndexFunc(routes, func(r api.Route) bool { return r.Path == "/ruler/rule_groups" })
	if i < 0 || !routes[i].AllTenants || routes[i].Tenant {
		t.Errorf("/ruler/rule_groups route: %+v, want an every-tenant route", routes)
	}
	i = slices.IndexFunc(routes, func(r api.Route) bool { return r.Path == "/ruler/delete_tenant_config" })
	if i < 0 || !routes[i].Tenant || routes[i].AllTenants || !slices.Equal(routes[i].Methods, []string{http.MethodPost}) {
		t.Errorf("/ruler/delete_tenant_config route: %+v, want a tenant's POST route", routes)
	}
}

func indent(s, by string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "")
}

// TestDeleteTenantConfiguration: every group of the request's tenant, in
// every namespace, and no other tenant's, leaves the store; 200 also when
// the tenant has none.
func TestDeleteTenantConfiguration(t *testing.T) {
	store := newStore(t)
	h, _ := newAdminAPI(t, store)
	storeGroups(t, store,
		[3]string{"team-a", "web", "name: w\nrules:\n- record: a:b\n  expr: up\n"},
		[3]string{"team-a", "db", "name: d\nrules:\n- record: c:d\n  expr: up\n"},
		[3]string{"team-b", "web", "name: w\nrules:\n- record: a:b\n  expr: up\n"},
	)
	for range 2 {
		expect(t, "deleting team-a's groups", call(t, h, http.MethodPost, "/ruler/delete_tenant_config", "team-a", ""), http.StatusOK, "")
	}
	if groups, err := store.ListRuleGroups(context.Background(), "team-a", ""); err != nil || len(groups) != 0 {
		t.Errorf("team-a's groups after the deletion: %v %v", groups, err)
	}
	if groups, err := store.ListRuleGroups(context.Background(), "team-b", ""); err != nil || len(groups) != 1 {
		t.Errorf("team-b's groups after team-a's deletion: %v %v", groups, err)
	}
	expect(t, "listing after the deletion", call(t, h, http.MethodGet, "/ruler/rule_groups", "", ""), http.StatusOK,
		"team-b:\n    web:\n        - name: w\n          rules:\n            - record: a:b\n              expr: up\n")

	expect(t, "deleting without a tenant", call(t, h, http.MethodPost, "/ruler/delete_tenant_config", "", ""), http.StatusUnauthorized, "no org id: set the X-Scope-OrgID header to the tenant ID (or run with -auth.enabled=false)\n")
	expect(t, "GET", call(t, h, http.MethodGet, "/ruler/delete_tenant_config", "team-b", ""), http.StatusMethodNotAllowed, "Method Not Allowed\n")
}

func TestDeleteTenantConfigurationRefusals(t *testing.T) {
	// The local store holds the operator's files: read-only.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "team-a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "team-a", "ns"), []byte("groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, _ := newAdminAPI(t, rulestore.NewLocalStore(dir, nil))
	got := call(t, h, http.MethodPost, "/ruler/delete_tenant_config", "team-a", "")
	expect(t, "deleting from the local store", got, http.StatusNotImplemented,
		"-ruler-storage.backend=local is read-only; edit the rule files under -ruler-storage.local.directory="+dir+": rule store is read-only\n")
	expect(t, "listing the local store", call(t, h, http.MethodGet, "/ruler/rule_groups", "", ""), http.StatusOK,
		"team-a:\n    ns:\n        - name: g\n          rules:\n            - record: a:b\n              expr: up\n")

	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const unreachable = "dial tcp 127.0.0.1:9000: connect: connection refused"
	h, _ = newAdminAPI(t, rulestore.NewBucketStore(failingBucket{Bucket: bkt, err: errors.New(unreachable)}, nil))
	got = call(t, h, http.MethodGet, "/ruler/rule_groups", "", "")
	if got.code != http.StatusInternalServerError || !strings.HasPrefix(got.body, "unable to list all users: ") || !strings.Contains(got.body, unreachable) {
		t.Errorf("listing a failing store: %d %q", got.code, got.body)
	}
	got = call(t, h, http.MethodPost, "/ruler/delete_tenant_config", "team-a", "")
	if got.code != http.StatusInternalServerError || !strings.Contains(got.body, `"errorType":"server_error"`) || !strings.Contains(got.body, unreachable) {
		t.Errorf("deleting from a failing store: %d %q", got.code, got.body)
	}

	// A browser's request from another site changes nothing.
	store := newStore(t)
	storeGroups(t, store, [3]string{"team-a", "web", "name: w\nrules:\n- record: a:b\n  expr: up\n"})
	h, _ = newAdminAPI(t, store)
	req := httptest.NewRequest(http.MethodPost, "/ruler/delete_tenant_config", nil)
	req.Header.Set(tenant.HeaderName, "team-a")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "from another site") {
		t.Errorf("a cross-site deletion: %d %q", rec.Code, rec.Body.String())
	}
	if groups, _ := store.ListRuleGroups(context.Background(), "team-a", ""); len(groups) != 1 {
		t.Errorf("team-a's groups after a cross-site deletion: %v", groups)
	}
}
