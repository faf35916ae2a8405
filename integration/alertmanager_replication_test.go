package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// amCluster is a set of -target=alertmanager processes sharing a
// filesystem bucket of configurations and a gossiped ring, with mutual TLS
// on every link: their gRPC servers accept only the "alertmanager"
// certificate (-server.grpc-tls-allowed-client-names), which they present
// to each other on the -alertmanager.alertmanager-client link.
type amCluster struct {
	t      *testing.T
	pki    *testkit.PKI
	bucket string
	seed   string
	client *http.Client
}

func newAMCluster(t *testing.T) *amCluster {
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "alertmanager", certgen.Options{DNSNames: []string{"alertmanager"}})
	testkit.WritePair(t, p.Dir, "stranger", testkit.ClientLeaf(t, testkit.NewCA(t, "foreign"), "alertmanager"))
	return &amCluster{t: t, pki: p, bucket: filepath.Join(t.TempDir(), "bucket"), client: httpClient(tlsClient(t, clientConfig(p.Dir, "client")))}
}

// start runs alertmanager i; clientLeaf names the certificate it presents
// to the other alertmanagers. Later flags in extra override the defaults.
func (c *amCluster) start(i int, clientLeaf string, extra ...string) *testkit.Cortex {
	c.t.Helper()
	d := c.pki.Dir
	flags := append(mtlsFlags(d),
		"-target=alertmanager",
		"-server.grpc-tls-allowed-client-names=alertmanager",
		"-alertmanager.storage.path="+filepath.Join(c.t.TempDir(), "am"),
		"-alertmanager-storage.backend=filesystem",
		"-alertmanager-storage.filesystem.dir="+c.bucket,
		"-experimental.alertmanager.enable-api=true",
		"-alertmanager.configs.poll-interval=500ms",
		"-alertmanager.sharding-enabled=true",
		"-alertmanager.sharding-ring.store=memberlist",
		"-alertmanager.sharding-ring.replication-factor=3",
		"-alertmanager.sharding-ring.heartbeat-period=1s",
		"-alertmanager.sharding-ring.instance-id=am-"+itoa(i),
		"-alertmanager.sharding-ring.instance-addr=127.0.0.1",
		"-alertmanager.alertmanager-client.tls-cert-path="+filepath.Join(d, clientLeaf+".crt"),
		"-alertmanager.alertmanager-client.tls-key-path="+filepath.Join(d, clientLeaf+".key"),
		"-alertmanager.alertmanager-client.tls-ca-path="+filepath.Join(d, "root.crt"),
		"-alertmanager.alertmanager-client.tls-server-name=localhost",
		"-alertmanager.peer-timeout=1s",
		"-memberlist.bind-addr=127.0.0.1",
		"-memberlist.bind-port=0",
		"-memberlist.tls-cert-path="+filepath.Join(d, "client.crt"),
		"-memberlist.tls-key-path="+filepath.Join(d, "client.key"),
		"-memberlist.tls-ca-path="+filepath.Join(d, "root.crt"),
		"-memberlist.tls-server-name=localhost",
		"-log.level=info",
	)
	if c.seed != "" {
		flags = append(flags, "-memberlist.join="+c.seed)
	}
	p := testkit.StartCortex(c.t, append(flags, extra...)...)
	if c.seed == "" {
		c.seed = p.GossipAddr()
	}
	waitReady(p, c.client)
	return p
}

// waitRing waits until p's ring page lists exactly the instances ids.
func (c *amCluster) waitRing(p *testkit.Cortex, ids ...string) {
	c.t.Helper()
	p.EventuallyNil(30*time.Second, fmt.Sprintf("alertmanagers %v in the ring", ids), func() error {
		code, page := get(c.t, c.client, "https://"+p.HTTPAddr+"/multitenant_alertmanager/ring")
		if code != http.StatusOK {
			return fmt.Errorf("GET /multitenant_alertmanager/ring: %d", code)
		}
		for _, id := range ids {
			if !strings.Contains(page, id) {
				return fmt.Errorf("%s missing", id)
			}
		}
		return nil
	})
}

func (c *amCluster) api(p *testkit.Cortex) string {
	return "https://" + p.HTTPAddr + "/alertmanager/api/v2"
}

func (c *amCluster) postAlert(p *testkit.Cortex, name string) {
	c.t.Helper()
	if code, body := do(c.t, c.client, http.MethodPost, c.api(p)+"/alerts", "tenant-a", []map[string]any{{"labels": map[string]string{"alertname": name}}}); code != http.StatusOK {
		c.t.Fatalf("posting %s to %s: %d %s", name, p.HTTPAddr, code, body)
	}
}

// silenceIDs lists tenant-a's active silences as p answers them.
func (c *amCluster) silenceIDs(p *testkit.Cortex) ([]string, error) {
	code, body := do(c.t, c.client, http.MethodGet, c.api(p)+"/silences", "tenant-a", nil)
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET silences on %s: %d %s", p.HTTPAddr, code, body)
	}
	var got []struct {
		ID     string `json:"id"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		return nil, fmt.Errorf("%w: %s", err, body)
	}
	var ids []string
	for _, s := range got {
		if s.Status.State == "active" {
			ids = append(ids, s.ID)
		}
	}
	return ids, nil
}

func (c *amCluster) waitSilence(p *testkit.Cortex, id string) {
	c.t.Helper()
	p.EventuallyNil(20*time.Second, "silence "+id+" on "+p.HTTPAddr, func() error {
		ids, err := c.silenceIDs(p)
		if err != nil {
			return err
		}
		if !slices.Contains(ids, id) {
			return fmt.Errorf("active silences %v", ids)
		}
		return nil
	})
}

// TestAlertmanagerReplication: three alertmanager processes, replication
// factor 3, a memberlist ring and mutual TLS on every link. A silence
// created through one is visible on and honoured by all, the third
// reading it from the others when it joins; an alert posted to all three
// is notified once; after kill -9 of one, the tenant's API still answers
// with its silence and alerts are still notified; an alertmanager
// presenting a foreign CA's certificate to the others is refused, and its
// log names the flag.
func TestAlertmanagerReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four alertmanager processes")
	}
	t.Parallel()
	c := newAMCluster(t)
	hook := testkit.NewAlertWebhook(t)
	am := []*testkit.Cortex{c.start(0, "alertmanager"), c.start(1, "alertmanager")}
	c.waitRing(am[1], "am-0", "am-1")

	cfg := fmt.Sprintf("alertmanager_config: |\n%s\n", indent(hook.Config("/a"), "  "))
	if code, body := do(t, c.client, http.MethodPost, "https://"+am[0].HTTPAddr+"/api/v1/alerts", "tenant-a", cfg); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/alerts: %d %s", code, body)
	}
	for _, p := range am {
		waitStatus(t, p, c.client, c.api(p)+"/status", "tenant-a", http.StatusOK)
	}

	// A silence created through am-1 reaches am-0 over UpdateState.
	now := time.Now().UTC()
	code, body := do(t, c.client, http.MethodPost, c.api(am[1])+"/silences", "tenant-a", map[string]any{
		"matchers": []map[string]any{{"name": "alertname", "value": "Maintenance", "isRegex": false, "isEqual": true}},
		"startsAt": now.Format(time.RFC3339), "endsAt": now.Add(time.Hour).Format(time.RFC3339), "createdBy": "integration", "comment": "planned work",
	})
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &created) != nil || created.SilenceID == "" {
		t.Fatalf("posting silence: %d %s", code, body)
	}
	c.waitSilence(am[0], created.SilenceID)

	// am-2 joins: a new replica of tenant-a, it reads the silence from the
	// others (ReadState) when it starts the tenant.
	am = append(am, c.start(2, "alertmanager"))
	for _, p := range am {
		c.waitRing(p, "am-0", "am-1", "am-2")
	}
	waitStatus(t, am[2], c.client, c.api(am[2])+"/status", "tenant-a", http.StatusOK)
	c.waitSilence(am[2], created.SilenceID)
	am[2].WaitLog("state settled from the other replicas")

	// Honoured by all: posted to one, the alert reaches every replica,
	// and each holds it back. It is posted again every two seconds, as
	// Prometheus resends firing alerts: a quorum of replicas acknowledges a
	// post, so a replica still starting the tenant may miss one copy.
	var posted time.Time
	for _, p := range am {
		p.Eventually(20*time.Second, "a silenced notification of tenant-a", func() bool {
			if metricOf(t, c.client, p, `alertmanager_notifications_suppressed_total{reason="silence",user="tenant-a"}`) >= 1 {
				return true
			}
			if time.Since(posted) > 2*time.Second {
				c.postAlert(am[2], "Maintenance")
				posted = time.Now()
			}
			return false
		})
	}

	// Posted to all three, notified once: the first replica sends it, the
	// others wait -alertmanager.peer-timeout per position and find it in
	// the replicated notification log.
	queries := make([]float64, len(am))
	for i, p := range am {
		queries[i] = metricOf(t, c.client, p, `alertmanager_nflog_queries_total{user="tenant-a"}`)
	}
	for _, p := range am {
		c.postAlert(p, "Once")
	}
	hook.WaitFor(t, "/a", "Once")
	for i, p := range am {
		p.Eventually(20*time.Second, "am-"+itoa(i)+"'s notification pipeline to check the log for Once", func() bool {
			return metricOf(t, c.client, p, `alertmanager_nflog_queries_total{user="tenant-a"}`) > queries[i]
		})
	}
	if got := countOf(hook.Received("/a"), "Once"); got != 1 {
		t.Fatalf("Once notified %d times: %v", got, hook.Received("/a"))
	}
	hook.Never(t, "/a", "Maintenance")

	// kill -9 of am-0: the others answer with the silence intact and still
	// notify.
	am[0].Kill()
	for _, p := range am[1:] {
		ids, err := c.silenceIDs(p)
		if err != nil || !slices.Contains(ids, created.SilenceID) {
			t.Fatalf("after kill -9 of am-0, %s: silences %v %v", p.HTTPAddr, ids, err)
		}
	}
	c.postAlert(am[1], "AfterKill")
	hook.WaitFor(t, "/a", "AfterKill")
	c.postAlert(am[2], "Maintenance")
	hook.Never(t, "/a", "Maintenance")

	// A fourth alertmanager presenting a foreign CA's certificate on the
	// alertmanager-client link: the others refuse it, and its log names
	// the flag, whether it forwards tenant-a's request or reads its state.
	c.seed = am[1].GossipAddr()
	stranger := c.start(3, "stranger")
	c.waitRing(stranger, "am-1", "am-2", "am-3")
	do(t, c.client, http.MethodGet, c.api(stranger)+"/silences", "tenant-a", nil)
	stranger.WaitLog("does not trust the client certificate -alertmanager.alertmanager-client.tls-cert-path=" + filepath.Join(c.pki.Dir, "stranger.crt"))
}

// TestAlertmanagerConfigsFlagSpellings: the configs service link works
// with either spelling of its flags, -alertmanager.configs.* (the TLS
// guide's) and -alertmanager-storage.configs.* (Cortex 1.21's), and
// neither logs a warning.
func TestAlertmanagerConfigsFlagSpellings(t *testing.T) {
	t.Parallel()
	certs, hc, hook, configs := startConfigsWithTenantA(t)
	for _, prefix := range []string{"-alertmanager.configs.", "-alertmanager-storage.configs."} {
		t.Run(strings.Trim(prefix, "-."), func(t *testing.T) {
			flags := append(mtlsFlags(certs),
				"-target=alertmanager",
				"-alertmanager.storage.path="+filepath.Join(t.TempDir(), "am"),
				"-alertmanager.configs.poll-interval=200ms",
				prefix+"url=https://"+configs.HTTPAddr,
				prefix+"tls-cert-path="+filepath.Join(certs, "client.crt"),
				prefix+"tls-key-path="+filepath.Join(certs, "client.key"),
				prefix+"tls-ca-path="+filepath.Join(certs, "root.crt"),
			)
			am := testkit.StartCortex(t, flags...)
			waitReady(am, hc)
			base := "https://" + am.HTTPAddr + "/alertmanager/api/v2"
			waitStatus(t, am, hc, base+"/status", "tenant-a", http.StatusOK)
			name := "Via" + strings.ReplaceAll(strings.Trim(prefix, "-."), ".", "")
			if code, body := do(t, hc, http.MethodPost, base+"/alerts", "tenant-a", []map[string]any{{"labels": map[string]string{"alertname": name}}}); code != http.StatusOK {
				t.Fatalf("posting: %d %s", code, body)
			}
			hook.WaitFor(t, "/a", name)
			am.WaitLog("alertmanager storage")
			if w := grepLines(am.Output(), "level=WARN"); w != "" {
				t.Fatalf("warnings with %s*:\n%s", prefix, w)
			}
		})
	}
	// Both spellings with different values: a startup error naming both.
	code, out := testkit.RunCortex(t, "-target=alertmanager", "-alertmanager.configs.url=https://a:1", "-alertmanager-storage.configs.url=https://b:1")
	if code == 0 || !strings.Contains(out, "-alertmanager.configs.url=https://a:1 and -alertmanager-storage.configs.url=https://b:1 are two names of one setting") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func countOf(names []string, name string) int {
	n := 0
	for _, s := range names {
		if s == name {
			n++
		}
	}
	return n
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// TestAlertmanagerForwardingBoundToTenants: with -auth.client-tenants-file
// letting the alertmanagers' certificate act for tenant-a only, at
// replication factor 1, a tenant-a request reaching the alertmanager that
// does not run it is forwarded and answered, and a tenant-b request is
// refused by the replica it is forwarded to, whose refusal the forwarding
// alertmanager logs.
func TestAlertmanagerForwardingBoundToTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two alertmanager processes")
	}
	t.Parallel()
	c := newAMCluster(t)
	hook := testkit.NewAlertWebhook(t)
	allow := filepath.Join(t.TempDir(), "clients.yaml")
	testkit.WriteFile(t, allow, []byte("clients:\n  alertmanager: [tenant-a]\n  client: [\"*\"]\n"), 0o600)
	extra := []string{"-auth.client-tenants-file=" + allow, "-alertmanager.sharding-ring.replication-factor=1"}
	am := []*testkit.Cortex{c.start(0, "alertmanager", extra...), c.start(1, "alertmanager", extra...)}
	for _, p := range am {
		c.waitRing(p, "am-0", "am-1")
	}
	cfg := fmt.Sprintf("alertmanager_config: |\n%s\n", indent(hook.Config("/a"), "  "))
	for _, tenantID := range []string{"tenant-a", "tenant-b"} {
		if code, body := do(t, c.client, http.MethodPost, "https://"+am[0].HTTPAddr+"/api/v1/alerts", tenantID, cfg); code != http.StatusCreated {
			t.Fatalf("POST /api/v1/alerts as %s: %d %s", tenantID, code, body)
		}
	}
	for _, p := range am {
		waitStatus(t, p, c.client, c.api(p)+"/status", "tenant-a", http.StatusOK)
	}
	// The web UI too: the alertmanager not running tenant-a forwards the
	// request, and its answer keeps the page's headers.
	for _, p := range am {
		req, err := http.NewRequest(http.MethodGet, "https://"+p.HTTPAddr+"/alertmanager/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Scope-OrgID", "tenant-a")
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "<title>Alertmanager</title>") ||
			!strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none';") || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("tenant-a's web UI from %s: %d %v\n%s", p.HTTPAddr, resp.StatusCode, resp.Header, page)
		}
	}
	var refused *testkit.Cortex
	am[0].EventuallyNil(30*time.Second, "tenant-b answered by its replica only", func() error {
		var codes []int
		for _, p := range am {
			code, _ := do(t, c.client, http.MethodGet, c.api(p)+"/status", "tenant-b", nil)
			codes = append(codes, code)
			if code == http.StatusServiceUnavailable {
				refused = p
			}
		}
		if !slices.Contains(codes, http.StatusOK) || !slices.Contains(codes, http.StatusServiceUnavailable) {
			return fmt.Errorf("answers %v", codes)
		}
		return nil
	})
	refused.WaitLog(`may not act for tenant`)
	if lines := grepLines(refused.Output(), "may not act for tenant"); !strings.Contains(lines, "alertmanager") || !strings.Contains(lines, "tenant-b") || !strings.Contains(lines, "PermissionDenied") {
		t.Fatalf("the refusal does not name the identity, the tenant and the code:\n%s", lines)
	}
}

// TestAlertmanagerClientFilesCheckedAtStartup: a missing certificate of
// the alertmanager-client link stops the process at startup, naming the
// flag, rather than failing the first replication.
func TestAlertmanagerClientFilesCheckedAtStartup(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.crt")
	code, out := testkit.RunCortex(t, "-target=alertmanager",
		"-alertmanager.storage.path="+filepath.Join(t.TempDir(), "am"),
		"-alertmanager-storage.filesystem.dir="+filepath.Join(t.TempDir(), "bucket"),
		"-alertmanager.sharding-enabled=true",
		"-alertmanager.alertmanager-client.tls-cert-path="+missing,
		"-alertmanager.alertmanager-client.tls-key-path="+missing,
	)
	if code == 0 || !strings.Contains(out, "-alertmanager.alertmanager-client.tls-cert-path") || !strings.Contains(out, missing) {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// createSilence creates a silence of alertname=name for tenant-a through p.
func (c *amCluster) createSilence(p *testkit.Cortex, name string) string {
	c.t.Helper()
	now := time.Now().UTC()
	code, body := do(c.t, c.client, http.MethodPost, c.api(p)+"/silences", "tenant-a", map[string]any{
		"matchers": []map[string]any{{"name": "alertname", "value": name, "isRegex": false, "isEqual": true}},
		"startsAt": now.Format(time.RFC3339), "endsAt": now.Add(time.Hour).Format(time.RFC3339), "createdBy": "integration", "comment": "planned work",
	})
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &created) != nil || created.SilenceID == "" {
		c.t.Fatalf("posting silence: %d %s", code, body)
	}
	return created.SilenceID
}

// TestAlertmanagerHandoverOnLeave: three alertmanagers at replication
// factor 2. When one of tenant-a's two replicas stops, the third becomes a
// replica, reads the tenant's state from the remaining one, and answers
// with the silence created before.
func TestAlertmanagerHandoverOnLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three alertmanager processes")
	}
	t.Parallel()
	c := newAMCluster(t)
	hook := testkit.NewAlertWebhook(t)
	rf2 := "-alertmanager.sharding-ring.replication-factor=2"
	am := []*testkit.Cortex{c.start(0, "alertmanager", rf2), c.start(1, "alertmanager", rf2), c.start(2, "alertmanager", rf2)}
	for _, p := range am {
		c.waitRing(p, "am-0", "am-1", "am-2")
	}
	cfg := fmt.Sprintf("alertmanager_config: |\n%s\n", indent(hook.Config("/a"), "  "))
	if code, body := do(t, c.client, http.MethodPost, "https://"+am[0].HTTPAddr+"/api/v1/alerts", "tenant-a", cfg); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/alerts: %d %s", code, body)
	}
	runs := func(p *testkit.Cortex) bool { return metricOf(t, c.client, p, "cortex_alertmanager_tenants") == 1 }
	var owners []*testkit.Cortex
	var spare *testkit.Cortex
	am[0].EventuallyNil(30*time.Second, "tenant-a running on two of the three", func() error {
		owners, spare = nil, nil
		for _, p := range am {
			if runs(p) {
				owners = append(owners, p)
			} else {
				spare = p
			}
		}
		if len(owners) != 2 {
			return fmt.Errorf("running on %d", len(owners))
		}
		return nil
	})
	id := c.createSilence(spare, "Maintenance") // forwarded to a replica
	c.waitSilence(owners[0], id)
	c.waitSilence(owners[1], id)

	owners[0].Stop()
	spare.Eventually(30*time.Second, "the third alertmanager to start tenant-a", func() bool { return runs(spare) })
	spare.WaitLog("state settled from the other replicas")
	ids, err := c.silenceIDs(spare)
	if err != nil || !slices.Contains(ids, id) {
		t.Fatalf("the new replica's silences: %v %v", ids, err)
	}
	c.postAlert(spare, "Maintenance")
	c.postAlert(spare, "AfterHandover")
	hook.WaitFor(t, "/a", "AfterHandover")
	waitSilenced(t, spare, c.client, "tenant-a")
	hook.Never(t, "/a", "Maintenance")
}
