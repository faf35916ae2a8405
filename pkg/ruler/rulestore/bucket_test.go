package rulestore

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func group(name string, exprs ...string) rulefmt.RuleGroup {
	g := rulefmt.RuleGroup{Name: name, Interval: model.Duration(time.Minute)}
	for i, e := range exprs {
		g.Rules = append(g.Rules, rulefmt.Rule{Record: "r" + string(rune('a'+i)), Expr: e})
	}
	return g
}

// testReadWrite runs the ruler API's sequence of writes and reads on s.
func testReadWrite(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	if users, err := s.ListAllUsers(ctx); err != nil || len(users) != 0 {
		t.Fatalf("empty store: users %v, %v", users, err)
	}
	if groups, err := s.ListRuleGroups(ctx, "team-a", ""); err != nil || len(groups) != 0 {
		t.Fatalf("empty store: groups %v, %v", groups, err)
	}

	// Namespaces and group names with slashes, spaces and non-ASCII
	// characters each map to one path segment.
	alert := rulefmt.RuleGroup{Name: "alerts/critical", QueryOffset: func() *model.Duration { d := model.Duration(30 * time.Second); return &d }(),
		Limit: 10, Labels: map[string]string{"team": "a"}, Rules: []rulefmt.Rule{{
			Alert: "Down", Expr: "up == 0", For: model.Duration(5 * time.Minute), KeepFiringFor: model.Duration(time.Minute),
			Labels: map[string]string{"severity": "page"}, Annotations: map[string]string{"summary": "{{ $labels.instance }} is down"},
		}}}
	for _, g := range []RuleGroup{
		{User: "team-a", Namespace: "prod/web", Group: group("zeta", "sum(up)")},
		{User: "team-a", Namespace: "prod/web", Group: alert},
		{User: "team-a", Namespace: "dev ü", Group: group("alpha", "sum(x)", "count(x)")},
		{User: "team-b", Namespace: "prod/web", Group: group("zeta", "sum(y)")},
	} {
		if err := s.SetRuleGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	users, err := s.ListAllUsers(ctx)
	if err != nil || strings.Join(users, ",") != "team-a,team-b" {
		t.Fatalf("ListAllUsers = %v %v, want team-a,team-b", users, err)
	}
	groups, err := s.ListRuleGroups(ctx, "team-a", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(groups); got != "team-a:dev ü/alpha team-a:prod/web/alerts/critical team-a:prod/web/zeta" {
		t.Fatalf("team-a's groups: %s", got)
	}
	got := groups[1].Group
	if got.Name != alert.Name || *got.QueryOffset != *alert.QueryOffset || got.Limit != 10 || got.Labels["team"] != "a" || len(got.Rules) != 1 {
		t.Errorf("alert group read back: %+v", got)
	} else if r := got.Rules[0]; r.Alert != "Down" || r.Expr != "up == 0" || r.For != alert.Rules[0].For || r.KeepFiringFor != alert.Rules[0].KeepFiringFor ||
		r.Labels["severity"] != "page" || r.Annotations["summary"] != "{{ $labels.instance }} is down" {
		t.Errorf("alert rule read back: %+v", r)
	}
	if groups[0].Group.Interval != model.Duration(time.Minute) || len(groups[0].Group.Rules) != 2 || groups[0].Group.Rules[1].Expr != "count(x)" {
		t.Errorf("alpha read back: %+v", groups[0].Group)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-a", "prod/web"); err != nil || names(groups) != "team-a:prod/web/alerts/critical team-a:prod/web/zeta" {
		t.Errorf("team-a's prod/web: %s %v", names(groups), err)
	}
	// A namespace that is a prefix of another is not mixed with it.
	if groups, err = s.ListRuleGroups(ctx, "team-a", "prod"); err != nil || len(groups) != 0 {
		t.Errorf("team-a's prod: %s %v", names(groups), err)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-b", ""); err != nil || names(groups) != "team-b:prod/web/zeta" || groups[0].Group.Rules[0].Expr != "sum(y)" {
		t.Errorf("team-b's groups: %s %v", names(groups), err)
	}

	// Replace, get.
	if err := s.SetRuleGroup(ctx, RuleGroup{User: "team-a", Namespace: "prod/web", Group: group("zeta", "max(up)")}); err != nil {
		t.Fatal(err)
	}
	g, err := s.GetRuleGroup(ctx, "team-a", "prod/web", "zeta")
	if err != nil || g.User != "team-a" || g.Namespace != "prod/web" || g.Group.Rules[0].Expr != "max(up)" {
		t.Errorf("zeta after replacing: %+v %v", g, err)
	}
	if _, err := s.GetRuleGroup(ctx, "team-a", "prod/web", "omega"); !errors.Is(err, ErrGroupNotFound) ||
		err.Error() != `rule group not found: tenant "team-a", namespace "prod/web", group "omega"` {
		t.Errorf("GetRuleGroup of a missing group: %v", err)
	}

	// Deletes.
	if err := s.DeleteRuleGroup(ctx, "team-a", "prod/web", "zeta"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRuleGroup(ctx, "team-a", "prod/web", "zeta"); !errors.Is(err, ErrGroupNotFound) {
		t.Errorf("deleting zeta twice: %v", err)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-a", ""); err != nil || names(groups) != "team-a:dev ü/alpha team-a:prod/web/alerts/critical" {
		t.Errorf("after deleting zeta: %s %v", names(groups), err)
	}
	if err := s.DeleteNamespace(ctx, "team-a", "dev ü"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNamespace(ctx, "team-a", "dev ü"); !errors.Is(err, ErrGroupNamespaceNotFound) || err.Error() != `namespace not found: tenant "team-a", namespace "dev ü"` {
		t.Errorf("deleting dev ü twice: %v", err)
	}
	if err := s.DeleteNamespace(ctx, "team-a", "prod/web"); err != nil {
		t.Fatal(err)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-a", ""); err != nil || len(groups) != 0 {
		t.Errorf("team-a after deleting both namespaces: %s %v", names(groups), err)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-b", ""); err != nil || names(groups) != "team-b:prod/web/zeta" {
		t.Errorf("team-b after team-a's deletes: %s %v", names(groups), err)
	}
	if users, err = s.ListAllUsers(ctx); err != nil || strings.Join(users, ",") != "team-b" {
		t.Errorf("ListAllUsers after team-a's last group was deleted = %v %v, want team-b", users, err)
	}

	// Bad names are refused before any I/O.
	if err := s.SetRuleGroup(ctx, RuleGroup{User: "../x", Namespace: "n", Group: group("g", "up")}); err == nil || !strings.Contains(err.Error(), `tenant "../x"`) {
		t.Errorf("SetRuleGroup for tenant ../x: %v", err)
	}
	if err := s.SetRuleGroup(ctx, RuleGroup{User: "team-a", Namespace: "", Group: group("g", "up")}); err == nil || !strings.Contains(err.Error(), "must not be empty") {
		t.Errorf("SetRuleGroup with no namespace: %v", err)
	}
}

func newFilesystemStore(t testing.TB) (*BucketStore, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := parseFlags(t, "-ruler-storage.filesystem.dir="+dir)
	s, err := NewStore(context.Background(), cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.(io.Closer).Close() })
	return s.(*BucketStore), dir
}

func TestBucketStoreFilesystem(t *testing.T) {
	s, _ := newFilesystemStore(t)
	testReadWrite(t, s)
}

// TestBucketLayout checks Cortex's object keys and the YAML held, and that
// a damaged object is named while stray objects are skipped.
func TestBucketLayout(t *testing.T) {
	ctx := context.Background()
	s, dir := newFilesystemStore(t)
	if err := s.SetRuleGroup(ctx, RuleGroup{User: "team-a", Namespace: "prod/web", Group: group("up?", "sum(up)")}); err != nil {
		t.Fatal(err)
	}
	key := "rules/team-a/" + base64.URLEncoding.EncodeToString([]byte("prod/web")) + "/" + base64.URLEncoding.EncodeToString([]byte("up?"))
	if key != "rules/team-a/cHJvZC93ZWI=/dXA_" {
		t.Fatalf("key %s", key)
	}
	b, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		t.Fatalf("the group's object: %v", err)
	}
	const want = "name: up?\ninterval: 1m\nrules:\n    - record: ra\n      expr: sum(up)\n"
	if string(b) != want {
		t.Errorf("object holds:\n%s\nwant:\n%s", b, want)
	}

	// Objects that are not of the layout are skipped.
	write(t, filepath.Join(dir, "rules", "team-a", "README"), "x")
	write(t, filepath.Join(dir, "rules", "team-a", "not-base64!", "x"), "x")
	write(t, filepath.Join(dir, "rules", "bad tenant", "x", "y"), "x")
	write(t, filepath.Join(dir, "rules", "index.json"), "{}")
	groups, err := s.ListRuleGroups(ctx, "team-a", "")
	if err != nil || names(groups) != "team-a:prod/web/up?" {
		t.Errorf("groups beside stray objects: %s %v", names(groups), err)
	}
	if users, err := s.ListAllUsers(ctx); err != nil || strings.Join(users, ",") != "team-a" {
		t.Errorf("users beside stray objects: %v %v", users, err)
	}

	// A damaged group fails the tenant's listing, naming the object.
	bad := "rules/team-a/" + base64.URLEncoding.EncodeToString([]byte("prod/web")) + "/" + base64.URLEncoding.EncodeToString([]byte("broken"))
	write(t, filepath.Join(dir, bad), "name: broken\nrulez: []\n")
	_, err = s.ListRuleGroups(ctx, "team-a", "")
	if err == nil || !strings.Contains(err.Error(), `rule group "broken" of tenant "team-a", namespace "prod/web" (object `+bad+`) is not a rule group in YAML`) ||
		!strings.Contains(err.Error(), "field rulez not found") {
		t.Errorf("damaged group: %v", err)
	}
	write(t, filepath.Join(dir, bad), "name: other\nrules: []\n")
	if _, err = s.GetRuleGroup(ctx, "team-a", "prod/web", "broken"); err == nil || !strings.Contains(err.Error(), `holds a group named "other"`) {
		t.Errorf("group under another group's key: %v", err)
	}
}

// TestBucketStoreS3 runs the read-write sequence against MinIO over TLS
// through -ruler-storage.s3.* and checks the objects are counted as the
// ruler's.
func TestBucketStoreS3(t *testing.T) {
	m := testkit.StartMinIO(t)
	reg := prometheus.NewPedanticRegistry()
	loader := tlsconfig.NewLoader(slog.New(slog.DiscardHandler), reg)
	cfg := parseFlags(t, "-ruler-storage.backend=s3", "-ruler-storage.s3.endpoint="+m.Endpoint, "-ruler-storage.s3.bucket-name="+m.Bucket,
		"-ruler-storage.s3.access-key-id="+m.AccessKey, "-ruler-storage.s3.secret-access-key="+m.SecretKey,
		"-ruler-storage.s3.http.tls-ca-path="+m.PKI.CAPath)
	s, err := NewStore(context.Background(), cfg, loader, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.(io.Closer).Close()
	testReadWrite(t, s)
	if n := testkit.MetricSum(t, reg, "thanos_objstore_bucket_operations_total", "component", "ruler-storage", "operation", "upload"); n != 5 {
		t.Errorf("thanos_objstore_bucket_operations_total{component=ruler-storage,operation=upload} = %v, want 5", n)
	}
	if n := testkit.MetricSum(t, reg, "cortex_tls_client_handshakes_total", "client", "ruler-storage.s3.http", "result", "success"); n < 1 {
		t.Errorf("no TLS handshake counted for ruler-storage.s3.http (%v)", n)
	}

	// The same objects through another client: Cortex's layout on S3.
	var keys []string
	b := s.(*BucketStore).bkt
	if err := b.Iter(context.Background(), "rules/", func(name string) error { keys = append(keys, name); return nil }, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "rules/team-b/cHJvZC93ZWI=/emV0YQ==" {
		t.Errorf("objects left in the bucket: %v", keys)
	}

	// A foreign CA is refused naming the flag.
	foreign := testkit.NewPKI(t, "some other CA")
	cfg.S3.HTTP.TLS.CAPath = foreign.CAPath
	s2, err := NewStore(context.Background(), cfg, loader, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.(io.Closer).Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s2.ListAllUsers(ctx); err == nil || !strings.Contains(err.Error(), "-ruler-storage.s3.http.tls-ca-path="+foreign.CAPath) {
		t.Errorf("S3 with a foreign CA: %v; want the refusal naming -ruler-storage.s3.http.tls-ca-path", err)
	}
}
