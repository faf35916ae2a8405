package rulestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const rulesA = `groups:
- name: zeta
  interval: 30s
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
- name: alpha
  rules:
  - alert: Down
    expr: up == 0
    for: 5m
    labels:
      severity: page
`

const rulesB = `groups:
- name: beta
  rules:
  - record: x:sum
    expr: sum(x)
`

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// names returns "namespace/group" of each group, in order.
func names(groups []RuleGroup) string {
	var out []string
	for _, g := range groups {
		out = append(out, g.User+":"+g.Namespace+"/"+g.Group.Name)
	}
	return strings.Join(out, " ")
}

func TestLocalStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "team-a", "rules.yaml"), rulesA)
	write(t, filepath.Join(dir, "team-a", ".rules.yaml.swp"), "not yaml: [")
	write(t, filepath.Join(dir, "shared", "b.yaml"), rulesB)
	// team-b's file is a symbolic link, as in a ConfigMap mount.
	if err := os.MkdirAll(filepath.Join(dir, "team-b"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "shared", "b.yaml"), filepath.Join(dir, "team-b", "b.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "not a tenant"), 0o750); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "not a tenant", "x.yaml"), rulesB)
	write(t, filepath.Join(dir, "README"), "rules live in per-tenant folders")
	write(t, filepath.Join(dir, "no-groups", "empty.yaml"), "groups: []\n")

	var logs testkit.Buffer
	s := NewLocalStore(dir, logs.Logger())
	users, err := s.ListAllUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(users, ",") != "shared,team-a,team-b" {
		t.Errorf("ListAllUsers = %v, want shared,team-a,team-b", users)
	}

	groups, err := s.ListRuleGroups(ctx, "team-a", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(groups); got != "team-a:rules.yaml/alpha team-a:rules.yaml/zeta" {
		t.Errorf("team-a's groups: %s", got)
	}
	alpha := groups[0].Group
	if len(alpha.Rules) != 1 || alpha.Rules[0].Alert != "Down" || alpha.Rules[0].Expr != "up == 0" || alpha.Rules[0].For != model.Duration(5*time.Minute) || alpha.Rules[0].Labels["severity"] != "page" {
		t.Errorf("group alpha: %+v", alpha)
	}
	if groups[1].Group.Interval != model.Duration(30*time.Second) {
		t.Errorf("group zeta's interval: %s", groups[1].Group.Interval)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-b", "b.yaml"); err != nil || names(groups) != "team-b:b.yaml/beta" {
		t.Errorf("team-b's b.yaml through a symbolic link: %s %v", names(groups), err)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-c", ""); err != nil || len(groups) != 0 {
		t.Errorf("a tenant with no directory: %v %v", groups, err)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-a", "other.yaml"); err != nil || len(groups) != 0 {
		t.Errorf("a namespace with no file: %v %v", groups, err)
	}

	g, err := s.GetRuleGroup(ctx, "team-a", "rules.yaml", "zeta")
	if err != nil || g.Group.Rules[0].Record != "job:up:sum" {
		t.Errorf("GetRuleGroup zeta: %+v %v", g, err)
	}
	_, err = s.GetRuleGroup(ctx, "team-a", "rules.yaml", "omega")
	if !errors.Is(err, ErrGroupNotFound) || err.Error() != `rule group not found: tenant "team-a", namespace "rules.yaml", group "omega"` {
		t.Errorf("GetRuleGroup omega: %v", err)
	}

	// Names that would leave the directory are refused.
	for _, ns := range []string{"../team-b/b.yaml", "..", `a\b`} {
		if _, err := s.ListRuleGroups(ctx, "team-a", ns); err == nil || !strings.Contains(err.Error(), "not a file name") {
			t.Errorf("namespace %q: %v", ns, err)
		}
	}
	if _, err := s.ListRuleGroups(ctx, "..", ""); err == nil || !strings.Contains(err.Error(), `tenant ".."`) {
		t.Errorf("tenant ..: %v", err)
	}

	// A file that does not parse is named, with the parser's line; its
	// tenant is left out of the tenants listed, the others are not affected.
	bad := filepath.Join(dir, "team-b", "bad.yaml")
	write(t, bad, "groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(\n")
	_, err = s.ListRuleGroups(ctx, "team-b", "")
	if err == nil || !strings.Contains(err.Error(), `tenant "team-b", rules file `+bad+": ") || !strings.Contains(err.Error(), "5:") {
		t.Errorf("bad file: %v; want the tenant, the file and the line", err)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-a", ""); err != nil || len(groups) != 2 {
		t.Errorf("team-a beside team-b's bad file: %d groups, %v", len(groups), err)
	}
	if users, err := s.ListAllUsers(ctx); err != nil || strings.Join(users, ",") != "shared,team-a" {
		t.Errorf("ListAllUsers with team-b's bad file = %v %v, want shared,team-a", users, err)
	}
	if !strings.Contains(logs.String(), "tenant=team-b") || !strings.Contains(logs.String(), bad) {
		t.Errorf("team-b's bad file is not logged:\n%s", logs.String())
	}

	// Writes are refused, naming the flag.
	for name, err := range map[string]error{
		"SetRuleGroup":    s.SetRuleGroup(ctx, RuleGroup{User: "team-a", Namespace: "n", Group: alpha}),
		"DeleteRuleGroup": s.DeleteRuleGroup(ctx, "team-a", "rules.yaml", "alpha"),
		"DeleteNamespace": s.DeleteNamespace(ctx, "team-a", "rules.yaml"),
	} {
		want := "-ruler-storage.backend=local is read-only; edit the rule files under -ruler-storage.local.directory=" + dir + ": rule store is read-only"
		if !errors.Is(err, ErrReadOnly) || err.Error() != want {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "team-a", "rules.yaml")); err != nil {
		t.Errorf("the rule file after refused writes: %v", err)
	}

	// A directory that disappears is an error naming the flag.
	s = NewLocalStore(filepath.Join(dir, "gone"), nil)
	if _, err := s.ListAllUsers(ctx); err == nil || !strings.Contains(err.Error(), "-ruler-storage.local.directory: ") || !strings.Contains(err.Error(), "gone") {
		t.Errorf("missing directory: %v", err)
	}
}
