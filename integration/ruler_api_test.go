package integration

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const rulerAPITestGroup = `name: node
interval: 1s
rules:
- record: job:ruler_api_up:sum
  expr: sum by (job) (ruler_api_up)
`

// TestRulerConfigAPIMutualTLS: a -target=all process with mutual TLS,
// -ruler.enable-api and -auth.client-tenants-file takes a tenant's rule
// group through the configuration API, stores it in the filesystem bucket
// with Cortex's layout, answers it back under Cortex's and Grafana's paths,
// evaluates it (its recording rule's result is queried back) and shows it
// in Prometheus' rules API; a bad group is refused naming the rule and the
// line; a certificate bound to one tenant cannot read or write another's
// rules, and the other tenant sees none of them.
func TestRulerConfigAPIMutualTLS(t *testing.T) {
	t.Parallel()
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Client(t, "tenant-a")
	certs := p.Dir
	allow := filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(allow, []byte("clients:\n  client: ['*']\n  tenant-a: [tenant-a]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rules := t.TempDir()
	proc, admin := startBlocksProcess(t, certs,
		"-auth.client-tenants-file="+allow,
		"-blocks-storage.filesystem.dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
		"-ruler.enable-api=true",
		"-ruler-storage.filesystem.dir="+rules,
		"-ruler.poll-interval=1s",
		"-ruler.evaluation-interval=1s",
	)
	base := "https://" + proc.HTTPAddr
	tenantA := httpClient(tlsClient(t, clientConfig(certs, "tenant-a")))

	if code, body := do(t, tenantA, http.MethodPost, base+"/api/v1/rules/infra", "tenant-a", rulerAPITestGroup); code != http.StatusAccepted || body != `{"status":"success","data":null,"errorType":"","error":""}` {
		t.Fatalf("POST the group: %d %s", code, body)
	}
	// Cortex's object layout: rules/<tenant>/<base64url(namespace)>/<base64url(group)>.
	obj := filepath.Join(rules, "rules", "tenant-a", base64.URLEncoding.EncodeToString([]byte("infra")), base64.URLEncoding.EncodeToString([]byte("node")))
	if _, err := os.Stat(obj); err != nil {
		t.Fatalf("the stored group: %v", err)
	}
	want := "name: node\ninterval: 1s\nrules:\n    - record: job:ruler_api_up:sum\n      expr: sum by (job) (ruler_api_up)\n"
	for _, path := range []string{"/api/v1/rules/infra/node", "/api/prom/rules/infra/node", "/prometheus/config/v1/rules/infra/node"} {
		if code, body := do(t, tenantA, http.MethodGet, base+path, "tenant-a", nil); code != http.StatusOK || body != want {
			t.Errorf("GET %s: %d %q, want %q", path, code, body, want)
		}
	}
	code, body := do(t, tenantA, http.MethodPost, base+"/api/v1/rules/infra", "tenant-a", "name: broken\nrules:\n- record: job:x:sum\n  expr: sum(x\n")
	if code != http.StatusBadRequest || !strings.HasPrefix(body, `4:9: group "broken", rule 1, "job:x:sum": could not parse expression`) {
		t.Errorf("POST a bad group: %d %q, want 400 naming the rule and its line", code, body)
	}

	// The certificate bound to tenant-a acts for no other tenant; the
	// other tenant has no rules.
	code, body = do(t, tenantA, http.MethodPost, base+"/api/v1/rules/infra", "tenant-b", rulerAPITestGroup)
	if code != http.StatusForbidden || !strings.Contains(body, `client "tenant-a" may not act for tenant "tenant-b"`) {
		t.Errorf("tenant-a writing tenant-b's rules: %d %s, want 403", code, body)
	}
	if code, body := do(t, admin.client, http.MethodGet, base+"/api/v1/rules", "tenant-b", nil); code != http.StatusNotFound || body != "no rule groups found\n" {
		t.Errorf("tenant-b's rules: %d %q, want 404", code, body)
	}

	// The ruler loads the group and evaluates it for tenant-a.
	now := time.Now().UnixMilli()
	for i := range 2 {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("ruler_api_up", i, now, 1)}}
		if code, body := admin.push("tenant-a", req); code != http.StatusNoContent {
			t.Fatalf("push: %d %s", code, body)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := admin.query("tenant-a", "query", url.Values{"query": {"job:ruler_api_up:sum"}})
		if len(res.Data.Result) == 1 && res.Data.Result[0].Value[1] == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job:ruler_api_up:sum of tenant-a is %+v after 30s, want 2", res.Data.Result)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body := do(t, tenantA, http.MethodGet, base+"/prometheus/api/v1/rules", "tenant-a", nil); code != http.StatusOK ||
		!strings.Contains(body, `"name":"node","file":"infra"`) || !strings.Contains(body, `"name":"job:ruler_api_up:sum"`) {
		t.Errorf("tenant-a's rules in Prometheus' API: %d %s", code, body)
	}
	if res := admin.query("tenant-b", "query", url.Values{"query": {"job:ruler_api_up:sum"}}); len(res.Data.Result) != 0 {
		t.Errorf("tenant-b sees tenant-a's recording rule result: %+v", res.Data.Result)
	}

	// Deleting the namespace removes the group from the store.
	if code, body := do(t, tenantA, http.MethodDelete, base+"/api/v1/rules/infra", "tenant-a", nil); code != http.StatusAccepted {
		t.Fatalf("DELETE the namespace: %d %s", code, body)
	}
	if code, body := do(t, tenantA, http.MethodGet, base+"/api/v1/rules/infra/node", "tenant-a", nil); code != http.StatusNotFound || body != "group does not exist\n" {
		t.Errorf("GET the deleted group: %d %q", code, body)
	}
}
