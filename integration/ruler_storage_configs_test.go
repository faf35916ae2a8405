package integration

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/configs"
	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const rulerStorageTestRules = `groups:
- name: availability
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: Down
    expr: up == 0
    for: 1m
`

// TestRulerStorageConfigDBMutualTLS reads rules from a -target=configs
// process with mutual TLS and -auth.client-tenants-file through
// -ruler-storage.backend=configdb and its -ruler-storage.configs.tls-*
// flags: every tenant's rules for an identity allowed "*", a 403 for an
// identity bound to one tenant, a refused handshake for a certificate of
// another CA.
func TestRulerStorageConfigDBMutualTLS(t *testing.T) {
	t.Parallel()
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Client(t, "ruler")
	p.Client(t, "tenant-a")
	certs := p.Dir
	testkit.WritePair(t, certs, "stranger", testkit.ClientLeaf(t, testkit.NewCA(t, "foreign"), "ruler"))
	allow := filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(allow, []byte("clients:\n  client: ['*']\n  ruler: ['*']\n  tenant-a: [tenant-a]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := testkit.StartCortex(t, append(mtlsFlags(certs), "-target=configs",
		"-configs.database.uri=file:"+filepath.Join(t.TempDir(), "configs.db"), "-auth.client-tenants-file="+allow)...)
	hc := httpClient(tlsClient(t, clientConfig(certs, "client")))
	waitReady(proc, hc)
	base := "https://" + proc.HTTPAddr
	for tenant, files := range map[string]map[string]string{
		"tenant-a": {"availability.yaml": rulerStorageTestRules},
		"tenant-b": {"b.yaml": strings.ReplaceAll(rulerStorageTestRules, "availability", "b-availability")},
	} {
		if code, out := do(t, hc, http.MethodPost, base+"/api/prom/configs/rules", tenant, configs.RulesConfig{RuleFormatVersion: "2", RulesFiles: files}); code != http.StatusNoContent {
			t.Fatalf("POST %s's rules: %d %s", tenant, code, out)
		}
	}

	// store builds the rule store as the ruler does, from its flags.
	store := func(leaf string) rulestore.Store {
		t.Helper()
		var cfg rulestore.Config
		args := []string{"-ruler-storage.backend=configdb", "-ruler-storage.configs.url=" + base,
			"-ruler-storage.configs.tls-cert-path=" + filepath.Join(certs, leaf+".crt"),
			"-ruler-storage.configs.tls-key-path=" + filepath.Join(certs, leaf+".key"),
			"-ruler-storage.configs.tls-ca-path=" + filepath.Join(certs, "root.crt")}
		fs := flag.NewFlagSet("ruler", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		s, err := rulestore.NewStore(context.Background(), cfg, tlsconfig.NewLoader(discard(), nil), discard(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.(io.Closer).Close() })
		return s
	}
	ctx := context.Background()

	ruler := store("ruler")
	users, err := ruler.ListAllUsers(ctx)
	if err != nil || strings.Join(users, ",") != "tenant-a,tenant-b" {
		t.Fatalf("ListAllUsers = %v %v, want tenant-a,tenant-b", users, err)
	}
	groups, err := ruler.ListRuleGroups(ctx, "tenant-a", "")
	if err != nil || len(groups) != 1 || groups[0].Namespace != "availability.yaml" || groups[0].Group.Name != "availability" ||
		len(groups[0].Group.Rules) != 2 || groups[0].Group.Rules[0].Expr != "sum by (job) (up)" || groups[0].Group.Rules[1].Alert != "Down" {
		t.Fatalf("tenant-a's groups: %+v %v", groups, err)
	}
	if groups, err := ruler.ListRuleGroups(ctx, "tenant-b", ""); err != nil || len(groups) != 1 || groups[0].Group.Name != "b-availability" {
		t.Fatalf("tenant-b's groups: %+v %v", groups, err)
	}
	if err := ruler.SetRuleGroup(ctx, groups[0]); !errors.Is(err, rulestore.ErrReadOnly) {
		t.Errorf("SetRuleGroup on configdb: %v, want ErrReadOnly", err)
	}

	// An identity bound to one tenant may not read every tenant's rules.
	_, err = store("tenant-a").ListAllUsers(ctx)
	if err == nil || !strings.Contains(err.Error(), "-ruler-storage.configs.url="+base) || !strings.Contains(err.Error(), "configs service answered 403 Forbidden") ||
		!strings.Contains(err.Error(), `"*" in -auth.client-tenants-file`) {
		t.Errorf("identity tenant-a reading every tenant's rules: %v; want a 403 naming -auth.client-tenants-file", err)
	}
	t.Logf("refused as expected: %v", err)

	// A certificate of another CA: the handshake is refused, and the error
	// names the client certificate's flag.
	_, err = store("stranger").ListAllUsers(ctx)
	if err == nil || !strings.Contains(err.Error(), "-ruler-storage.configs.tls-cert-path="+filepath.Join(certs, "stranger.crt")) {
		t.Errorf("a client certificate of another CA: %v; want the refusal naming -ruler-storage.configs.tls-cert-path", err)
	}
	t.Logf("refused as expected: %v", err)
}
