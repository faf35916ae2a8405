package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

var clusterListening = regexp.MustCompile(`msg="alertmanager cluster listening".* addr=(\S+)`)

// clusterAddr waits for p's gossip cluster listener and returns the
// address it advertises.
func clusterAddr(p *testkit.Cortex) string {
	var addr string
	p.Eventually(testkit.StartTimeout, "the alertmanager cluster listener", func() bool {
		m := clusterListening.FindStringSubmatch(p.Output())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return addr
}

// TestAlertmanagerGossipCluster: two alertmanager processes without
// sharding form Alertmanager's gossip cluster over mutual TLS on loopback.
// A silence created through one is visible on the other; an alert posted
// to both is notified once, the second member waiting
// -alertmanager.cluster.peer-timeout and finding it in the gossiped
// notification log; a third process presenting a certificate of another
// CA is refused by the members and never joins, and so is a fourth whose
// certificate the members' CA signed without the name they allow
// (-alertmanager.cluster.tls-allowed-client-names); and a certificate path
// that does not exist fails startup naming the flag.
func TestAlertmanagerGossipCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three alertmanager processes")
	}
	t.Parallel()
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "member", certgen.Options{DNSNames: []string{"member"}, IPs: testkit.LoopbackIPs()})
	// The stranger trusts the members' CA, so it is the members that
	// refuse it: its certificate comes from a CA they do not trust.
	foreign := testkit.NewCA(t, "foreign")
	testkit.WritePair(t, p.Dir, "stranger", testkit.Issue(t, foreign, certgen.Options{CommonName: "stranger", DNSNames: []string{"member"}, IPs: testkit.LoopbackIPs()}))
	both := testkit.WriteBundle(t, p.Dir, "both.crt", p.CA, foreign)
	client := httpClient(tlsClient(t, clientConfig(p.Dir, "client")))
	bucket := filepath.Join(t.TempDir(), "bucket")
	hook := testkit.NewAlertWebhook(t)

	start := func(leaf, ca string, extra ...string) *testkit.Cortex {
		t.Helper()
		flags := append(mtlsFlags(p.Dir),
			"-target=alertmanager",
			"-alertmanager.storage.path="+filepath.Join(t.TempDir(), "am"),
			"-alertmanager-storage.backend=filesystem",
			"-alertmanager-storage.filesystem.dir="+bucket,
			"-experimental.alertmanager.enable-api=true",
			"-alertmanager.configs.poll-interval=500ms",
			"-alertmanager.cluster.listen-address=127.0.0.1:0",
			"-alertmanager.cluster.tls-cert-path="+filepath.Join(p.Dir, leaf+".crt"),
			"-alertmanager.cluster.tls-key-path="+filepath.Join(p.Dir, leaf+".key"),
			"-alertmanager.cluster.tls-ca-path="+ca,
			"-alertmanager.cluster.tls-allowed-client-names=member",
			"-alertmanager.cluster.push-pull-interval=1s",
			"-alertmanager.cluster.peer-timeout=2s",
			"-log.level=debug",
		)
		am := testkit.StartCortex(t, append(flags, extra...)...)
		waitReady(am, client)
		return am
	}
	members := func(am *testkit.Cortex) float64 {
		return metricOf(t, client, am, "alertmanager_cluster_members")
	}
	am0 := start("member", p.CAPath)
	seed := clusterAddr(am0)
	if !strings.HasPrefix(seed, "127.0.0.1:") {
		t.Fatalf("cluster address %q, want 127.0.0.1:<port>", seed)
	}
	am1 := start("member", p.CAPath, "-alertmanager.cluster.peers="+seed)
	for i, am := range []*testkit.Cortex{am0, am1} {
		am.Eventually(30*time.Second, fmt.Sprintf("am-%d to see two members", i), func() bool { return members(am) == 2 })
	}

	api := func(am *testkit.Cortex) string { return "https://" + am.HTTPAddr + "/alertmanager/api/v2" }
	cfg := fmt.Sprintf("alertmanager_config: |\n%s\n", indent(hook.Config("/a"), "  "))
	if code, body := do(t, client, http.MethodPost, "https://"+am0.HTTPAddr+"/api/v1/alerts", "tenant-a", cfg); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/alerts: %d %s", code, body)
	}
	for _, am := range []*testkit.Cortex{am0, am1} {
		waitStatus(t, am, client, api(am)+"/status", "tenant-a", http.StatusOK)
	}

	// A silence created through am-1 is gossiped to am-0.
	now := time.Now().UTC()
	code, body := do(t, client, http.MethodPost, api(am1)+"/silences", "tenant-a", map[string]any{
		"matchers": []map[string]any{{"name": "alertname", "value": "Maintenance", "isRegex": false, "isEqual": true}},
		"startsAt": now.Format(time.RFC3339), "endsAt": now.Add(time.Hour).Format(time.RFC3339), "createdBy": "integration", "comment": "planned work",
	})
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &created) != nil || created.SilenceID == "" {
		t.Fatalf("posting silence: %d %s", code, body)
	}
	silences := func(am *testkit.Cortex) ([]string, error) {
		code, body := do(t, client, http.MethodGet, api(am)+"/silences", "tenant-a", nil)
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET silences: %d %s", code, body)
		}
		var got []struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			return nil, err
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		return ids, nil
	}
	am0.EventuallyNil(20*time.Second, "the silence on am-0", func() error {
		ids, err := silences(am0)
		if err == nil && !slices.Contains(ids, created.SilenceID) {
			err = fmt.Errorf("silences %v", ids)
		}
		return err
	})

	// Posted to both, notified once.
	var queries [2]float64
	for i, am := range []*testkit.Cortex{am0, am1} {
		queries[i] = metricOf(t, client, am, `alertmanager_nflog_queries_total{user="tenant-a"}`)
	}
	for _, am := range []*testkit.Cortex{am0, am1} {
		if code, body := do(t, client, http.MethodPost, api(am)+"/alerts", "tenant-a", []map[string]any{{"labels": map[string]string{"alertname": "Once"}}}); code != http.StatusOK {
			t.Fatalf("posting Once to %s: %d %s", am.HTTPAddr, code, body)
		}
	}
	hook.WaitFor(t, "/a", "Once")
	for i, am := range []*testkit.Cortex{am0, am1} {
		am.Eventually(20*time.Second, fmt.Sprintf("am-%d's notification pipeline to check the log for Once", i), func() bool {
			return metricOf(t, client, am, `alertmanager_nflog_queries_total{user="tenant-a"}`) > queries[i]
		})
	}
	if got := countOf(hook.Received("/a"), "Once"); got != 1 {
		t.Fatalf("Once notified %d times: %v", got, hook.Received("/a"))
	}

	// A stranger whose certificate another CA signed: the members refuse
	// its connections (am-0 logs why, naming its CA flag), so it stays
	// alone and never gets the silence.
	stranger := start("stranger", both, "-alertmanager.cluster.peers="+seed)
	stranger.WaitLog("failed to join cluster")
	if line := grepLines(stranger.Output(), "failed to join cluster"); !strings.Contains(line, "does not trust the client certificate -alertmanager.cluster.tls-cert-path=") {
		t.Fatalf("the join failure does not say the members refused the certificate:\n%s", line)
	}
	am0.WaitLog("which no CA in -alertmanager.cluster.tls-ca-path=" + p.CAPath + " signed")
	if n := members(stranger); n != 1 {
		t.Errorf("the stranger sees %v members, want itself only", n)
	}
	for i, am := range []*testkit.Cortex{am0, am1} {
		if n := members(am); n != 2 {
			t.Errorf("am-%d sees %v members after the stranger tried to join, want 2", i, n)
		}
	}
	waitStatus(t, stranger, client, api(stranger)+"/status", "tenant-a", http.StatusOK)
	if ids, err := silences(stranger); err != nil || len(ids) != 0 {
		t.Errorf("the stranger has silences %v (%v), want none", ids, err)
	}

	// An outsider whose certificate the members' CA signed, but for
	// another component: -alertmanager.cluster.tls-allowed-client-names
	// keeps it out.
	outsider := start("client", p.CAPath, "-alertmanager.cluster.peers="+seed)
	outsider.WaitLog("failed to join cluster")
	if line := grepLines(outsider.Output(), "failed to join cluster"); !strings.Contains(line, "refused the client certificate -alertmanager.cluster.tls-cert-path=") {
		t.Fatalf("the join failure does not say the members refused the certificate:\n%s", line)
	}
	am0.WaitLog("which is not in -alertmanager.cluster.tls-allowed-client-names=member")
	if n := members(outsider); n != 1 {
		t.Errorf("the outsider sees %v members, want itself only", n)
	}
	for i, am := range []*testkit.Cortex{am0, am1} {
		if n := members(am); n != 2 {
			t.Errorf("am-%d sees %v members after the outsider tried to join, want 2", i, n)
		}
	}

	// A certificate path that does not exist: startup fails naming the flag.
	missing := filepath.Join(p.Dir, "missing.crt")
	exit, out := testkit.RunCortex(t, append(testkit.LoopbackFlags(), "-target=alertmanager",
		"-alertmanager.storage.path="+filepath.Join(t.TempDir(), "am"),
		"-alertmanager-storage.backend=filesystem", "-alertmanager-storage.filesystem.dir="+bucket,
		"-alertmanager.cluster.listen-address=127.0.0.1:0",
		"-alertmanager.cluster.tls-cert-path="+missing,
		"-alertmanager.cluster.tls-key-path="+filepath.Join(p.Dir, "member.key"),
		"-alertmanager.cluster.tls-ca-path="+p.CAPath)...)
	if exit == 0 || !strings.Contains(out, "-alertmanager.cluster.tls-cert-path="+missing) {
		t.Fatalf("exit %d, want a startup error naming -alertmanager.cluster.tls-cert-path:\n%s", exit, out)
	}
}
