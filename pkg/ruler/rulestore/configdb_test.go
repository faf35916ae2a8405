package rulestore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cortex-tls/cortex/pkg/configs"
	"github.com/cortex-tls/cortex/pkg/configs/db"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// configsService is the configs service (SQLite) served over mutual TLS,
// recording the query of every request to its private API.
type configsService struct {
	t   testing.TB
	srv *httptest.Server
	db  *db.DB
	api http.Handler
	pki *testkit.PKI

	mu      sync.Mutex
	private []string // the queries of the private API's requests
}

func newConfigsService(t testing.TB) *configsService {
	t.Helper()
	d, err := db.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "configs.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	c := &configsService{t: t, db: d, api: configs.NewAPI(d, slog.New(slog.DiscardHandler)).Handler(true), pki: testkit.NewPKI(t, "configs CA")}
	leaf := c.pki.Server(t, "configs")
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.pki.CA.Cert)
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/private/") {
			c.mu.Lock()
			c.private = append(c.private, r.URL.RawQuery)
			c.mu.Unlock()
		}
		c.api.ServeHTTP(w, r)
	}))
	c.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests expect
	c.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	c.srv.StartTLS()
	t.Cleanup(c.srv.Close)
	return c
}

// requests returns and forgets the queries of the private API's requests.
func (c *configsService) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.private
	c.private = nil
	return r
}

// post sets a tenant's rule files through the tenant API.
func (c *configsService) post(tenant string, files map[string]string) {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"rule_format_version": "2", "rules_files": files})
	c.do("POST", "/api/prom/configs/rules", tenant, string(body), http.StatusNoContent)
}

func (c *configsService) do(method, path, tenant, body string, want int) {
	c.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("X-Scope-OrgID", tenant)
	rec := httptest.NewRecorder()
	c.api.ServeHTTP(rec, req)
	if rec.Code != want {
		c.t.Fatalf("%s %s for %s: %d %s, want %d", method, path, tenant, rec.Code, rec.Body, want)
	}
}

// store returns a configdb store with the ruler's client certificate.
func (c *configsService) store(t testing.TB, extra ...string) Store {
	t.Helper()
	cl := c.pki.Client(t, "ruler")
	args := append([]string{"-ruler-storage.backend=configdb", "-ruler-storage.configs.url=" + c.srv.URL,
		"-ruler-storage.configs.tls-ca-path=" + c.pki.CAPath, "-ruler-storage.configs.tls-cert-path=" + cl.CertPath,
		"-ruler-storage.configs.tls-key-path=" + cl.KeyPath}, extra...)
	s, err := NewStore(context.Background(), parseFlags(t, args...), tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.(io.Closer).Close() })
	return s
}

func TestConfigDBStore(t *testing.T) {
	ctx := context.Background()
	c := newConfigsService(t)
	c.post("team-a", map[string]string{"rules.yaml": rulesA, "b.yaml": rulesB})
	c.post("team-b", map[string]string{"b.yaml": rulesB})
	s := c.store(t)

	users, err := s.ListAllUsers(ctx)
	if err != nil || strings.Join(users, ",") != "team-a,team-b" {
		t.Fatalf("ListAllUsers = %v %v, want team-a,team-b", users, err)
	}
	if r := c.requests(); strings.Join(r, " ") != "since=0" {
		t.Errorf("ListAllUsers made the requests %q, want one, since=0", r)
	}
	groups, err := s.ListRuleGroups(ctx, "team-a", "")
	if err != nil || names(groups) != "team-a:b.yaml/beta team-a:rules.yaml/alpha team-a:rules.yaml/zeta" {
		t.Fatalf("team-a's groups: %s %v", names(groups), err)
	}
	if r := c.requests(); strings.Join(r, " ") != "since=2" {
		t.Errorf("ListRuleGroups made the requests %q, want one asking for changes since config 2", r)
	}
	if groups[1].Group.Rules[0].Alert != "Down" || groups[1].Group.Rules[0].Labels["severity"] != "page" {
		t.Errorf("alpha: %+v", groups[1].Group)
	}
	// What a caller changes is its own.
	groups[1].Group.Rules[0].Labels["severity"] = "ticket"
	groups[1].Group.Rules[0].Expr = "changed"
	if again, err := s.ListRuleGroups(ctx, "team-a", "rules.yaml"); err != nil || again[0].Group.Rules[0].Labels["severity"] != "page" || again[0].Group.Rules[0].Expr != "up == 0" {
		t.Errorf("a caller's changes reached the store: %+v %v", again, err)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-a", "rules.yaml"); err != nil || names(groups) != "team-a:rules.yaml/alpha team-a:rules.yaml/zeta" {
		t.Errorf("team-a's rules.yaml: %s %v", names(groups), err)
	}
	if groups, err = s.ListRuleGroups(ctx, "team-c", ""); err != nil || len(groups) != 0 {
		t.Errorf("a tenant with no rules: %v %v", groups, err)
	}
	g, err := s.GetRuleGroup(ctx, "team-b", "b.yaml", "beta")
	if err != nil || g.User != "team-b" || g.Group.Rules[0].Record != "x:sum" {
		t.Errorf("GetRuleGroup beta: %+v %v", g, err)
	}
	if _, err := s.GetRuleGroup(ctx, "team-b", "rules.yaml", "alpha"); !errors.Is(err, ErrGroupNotFound) {
		t.Errorf("GetRuleGroup of another tenant's group: %v", err)
	}
	c.requests()

	// A change is seen by the next read; a tenant whose rules are emptied,
	// or who is deactivated, has no rules.
	c.post("team-a", map[string]string{"rules.yaml": rulesB})
	if groups, err = s.ListRuleGroups(ctx, "team-a", ""); err != nil || names(groups) != "team-a:rules.yaml/beta" {
		t.Errorf("team-a after posting new rules: %s %v", names(groups), err)
	}
	c.post("team-a", map[string]string{})
	c.do("DELETE", "/api/prom/configs/deactivate", "team-b", "", http.StatusOK)
	if users, err = s.ListAllUsers(ctx); err != nil || len(users) != 0 {
		t.Errorf("ListAllUsers after team-a emptied its rules and team-b was deactivated = %v %v", users, err)
	}
	c.do("POST", "/api/prom/configs/restore", "team-b", "", http.StatusOK)
	if users, err = s.ListAllUsers(ctx); err != nil || strings.Join(users, ",") != "team-b" {
		t.Errorf("ListAllUsers after team-b was restored = %v %v", users, err)
	}
	if r := c.requests(); len(r) != 3 {
		t.Errorf("three reads made the requests %q, want three", r)
	}

	// Writes are refused, naming the flag and the way to write.
	for name, err := range map[string]error{
		"SetRuleGroup":    s.SetRuleGroup(ctx, RuleGroup{User: "team-b", Namespace: "n", Group: group("g", "up")}),
		"DeleteRuleGroup": s.DeleteRuleGroup(ctx, "team-b", "b.yaml", "beta"),
		"DeleteNamespace": s.DeleteNamespace(ctx, "team-b", "b.yaml"),
	} {
		const want = "-ruler-storage.backend=configdb is read-only; write rules through the configs API (POST /api/prom/configs/rules): rule store is read-only"
		if !errors.Is(err, ErrReadOnly) || err.Error() != want {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	if r := c.requests(); len(r) != 0 {
		t.Errorf("refused writes made requests: %q", r)
	}
}

// TestConfigDBBadRules stores rule files the configs API would refuse (as
// an older version may have stored): the tenant is left out of the tenants
// listed, its own listing names the tenant and the file, and the other
// tenants' rules are served.
func TestConfigDBBadRules(t *testing.T) {
	ctx := context.Background()
	c := newConfigsService(t)
	c.post("team-a", map[string]string{"rules.yaml": rulesA})
	bad, _ := json.Marshal(configs.RulesConfig{RuleFormatVersion: "2", RulesFiles: map[string]string{
		"ok.yaml":  rulesB,
		"bad.yaml": "groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(\n",
	}})
	if _, err := c.db.Set(ctx, "team-b", db.KindRules, bad); err != nil {
		t.Fatal(err)
	}
	v1, _ := json.Marshal(configs.RulesConfig{RuleFormatVersion: "1", RulesFiles: map[string]string{"r": "ALERT Down IF up == 0"}})
	if _, err := c.db.Set(ctx, "team-c", db.KindRules, v1); err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	cl := c.pki.Client(t, "ruler")
	cfg := parseFlags(t, "-ruler-storage.backend=configdb", "-ruler-storage.configs.url="+c.srv.URL,
		"-ruler-storage.configs.tls-ca-path="+c.pki.CAPath, "-ruler-storage.configs.tls-cert-path="+cl.CertPath, "-ruler-storage.configs.tls-key-path="+cl.KeyPath)
	s, err := NewStore(ctx, cfg, nil, logs.Logger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	users, err := s.ListAllUsers(ctx)
	if err != nil || strings.Join(users, ",") != "team-a" {
		t.Fatalf("ListAllUsers = %v %v", users, err)
	}
	if groups, err := s.ListRuleGroups(ctx, "team-a", ""); err != nil || len(groups) != 2 {
		t.Errorf("team-a beside team-b's bad file: %s %v", names(groups), err)
	}
	_, err = s.ListRuleGroups(ctx, "team-b", "")
	const wantBad = `tenant "team-b", rules file "bad.yaml": 5:11: group "g", rule 1, "r": could not parse expression: 1:5: parse error: unclosed left parenthesis`
	if err == nil || err.Error() != wantBad {
		t.Errorf("team-b's bad file: %v; want %q", err, wantBad)
	}
	_, err = s.ListRuleGroups(ctx, "team-c", "")
	if err == nil || err.Error() != `tenant "team-c": rule_format_version "1" is not supported: only "2" (the Prometheus 2 YAML rule format)` {
		t.Errorf("team-c's version 1 rules: %v", err)
	}
	if !strings.Contains(logs.String(), `tenant=team-b`) || !strings.Contains(logs.String(), `bad.yaml`) {
		t.Errorf("the bad file is not logged with the tenant:\n%s", logs.String())
	}

	// Fixed by posting new rules.
	c.post("team-b", map[string]string{"ok.yaml": rulesB})
	if users, err := s.ListAllUsers(ctx); err != nil || strings.Join(users, ",") != "team-a,team-b" {
		t.Errorf("ListAllUsers after team-b fixed its rules = %v %v", users, err)
	}
	if groups, err := s.ListRuleGroups(ctx, "team-b", ""); err != nil || names(groups) != "team-b:ok.yaml/beta" {
		t.Errorf("team-b after fixing its rules: %s %v", names(groups), err)
	}
}

// TestConfigDBUnreachable checks the errors of a configs service that
// refuses the ruler or is gone: they name the flag and say why.
func TestConfigDBUnreachable(t *testing.T) {
	ctx := context.Background()
	c := newConfigsService(t)
	foreign := testkit.NewPKI(t, "some other CA")
	cl := foreign.Client(t, "ruler")
	cfg := parseFlags(t, "-ruler-storage.backend=configdb", "-ruler-storage.configs.url="+c.srv.URL,
		"-ruler-storage.configs.tls-ca-path="+foreign.CAPath, "-ruler-storage.configs.tls-cert-path="+cl.CertPath, "-ruler-storage.configs.tls-key-path="+cl.KeyPath)
	s, err := NewStore(ctx, cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.ListAllUsers(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "fetching rules from the configs service at -ruler-storage.configs.url="+c.srv.URL+": ") ||
		!strings.Contains(err.Error(), "is not signed by a CA in -ruler-storage.configs.tls-ca-path="+foreign.CAPath) {
		t.Errorf("configs service of another CA: %v", err)
	}

	good := c.store(t)
	c.srv.Close()
	if _, err := good.ListRuleGroups(ctx, "team-a", ""); err == nil || !strings.Contains(err.Error(), "-ruler-storage.configs.url="+c.srv.URL) {
		t.Errorf("configs service stopped: %v", err)
	}
}

// TestConfigDBCAReload starts with another CA in the -tls-ca-path file and
// fixes the file: after the loader's reload the same store is let in.
func TestConfigDBCAReload(t *testing.T) {
	ctx := context.Background()
	c := newConfigsService(t)
	c.post("team-a", map[string]string{"rules.yaml": rulesA})
	foreign := testkit.NewPKI(t, "some other CA")
	caPath := filepath.Join(t.TempDir(), "ca.crt")
	testkit.WriteFile(t, caPath, foreign.CA.CertPEM, 0o644)
	cl := c.pki.Client(t, "ruler")
	loader := tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil)
	cfg := parseFlags(t, "-ruler-storage.backend=configdb", "-ruler-storage.configs.url="+c.srv.URL,
		"-ruler-storage.configs.tls-ca-path="+caPath, "-ruler-storage.configs.tls-cert-path="+cl.CertPath, "-ruler-storage.configs.tls-key-path="+cl.KeyPath)
	s, err := NewStore(ctx, cfg, loader, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.(io.Closer).Close()
	if _, err := s.ListAllUsers(ctx); err == nil || !strings.Contains(err.Error(), `issued by "configs CA") is not signed by a CA in -ruler-storage.configs.tls-ca-path=`+caPath) {
		t.Fatalf("with another CA: %v", err)
	}
	testkit.WriteFile(t, caPath, c.pki.CA.CertPEM, 0o644)
	loader.Reload()
	if users, err := s.ListAllUsers(ctx); err != nil || strings.Join(users, ",") != "team-a" {
		t.Errorf("after the CA file was fixed: %v %v", users, err)
	}
}

// TestConfigDBConcurrentReads reads from several goroutines while a tenant
// posts new versions: every answer is one of the versions, and the last read
// sees the last one.
func TestConfigDBConcurrentReads(t *testing.T) {
	ctx := context.Background()
	c := newConfigsService(t)
	c.post("team-a", map[string]string{"rules.yaml": rulesB})
	s := c.store(t)
	const versions = 5
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				groups, err := s.ListRuleGroups(ctx, "team-a", "")
				if err == nil && (len(groups) != 1 || !strings.HasPrefix(groups[0].Group.Name, "beta")) {
					err = errors.New("unexpected groups " + names(groups))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range versions {
		c.post("team-a", map[string]string{"rules.yaml": strings.Replace(rulesB, "name: beta", "name: beta"+strconv.Itoa(i), 1)})
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	groups, err := s.ListRuleGroups(ctx, "team-a", "")
	if err != nil || names(groups) != "team-a:rules.yaml/beta"+strconv.Itoa(versions-1) {
		t.Errorf("after the last version: %s %v", names(groups), err)
	}
}
