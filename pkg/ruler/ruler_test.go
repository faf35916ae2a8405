package ruler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

const tenantARules = `
name: availability
rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: InstanceDown
    expr: up == 0
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} is down"
`

// TestRulesEvaluateForTheirTenantOnly: a tenant's recording rule reads its
// own series and writes its result to its own tenant, its alert reaches its
// Alertmanager over TLS as that tenant, and the other tenant sees none of it.
func TestRulesEvaluateForTheirTenantOnly(t *testing.T) {
	files := newTLSFiles(t)
	am := newAlertmanagerServer(t, files.server)
	amTLS, err := tlsconfig.NewClient(AlertmanagerClientTLSPrefix, tlsconfig.ClientConfig{CAPath: files.caPath}, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	dbs := newTenantDBs(t)
	now := time.Now()
	dbs.add("tenant-a", now.Add(-10*time.Second), 1, labels.FromStrings("__name__", "up", "job", "api", "instance", "1"))
	dbs.add("tenant-a", now.Add(-10*time.Second), 0, labels.FromStrings("__name__", "up", "job", "api", "instance", "2"))
	// tenant-b's series would change tenant-a's sum if a rule read them.
	dbs.add("tenant-b", now.Add(-10*time.Second), 40, labels.FromStrings("__name__", "up", "job", "api", "instance", "3"))

	store := &memStore{}
	store.set(group(t, "tenant-a", "team-1", tenantARules))
	reg := prometheus.NewRegistry()
	r := testRuler(t, testConfig(t, "-ruler.alertmanager-url="+am.URL), store, dbs, amTLS, nil, reg)

	eventually(t, "job:up:sum written to tenant-a", func() bool {
		v := dbs.instant(t, "tenant-a", `job:up:sum`)
		return len(v) == 1 && v[0].F == 1 && v[0].Metric.Get("job") == "api"
	})
	eventually(t, "the alert to reach the Alertmanager", func() bool {
		for _, req := range am.received() {
			if req.path == "/alertmanager/api/v2/alerts" && req.tenant == "tenant-a" && strings.Contains(req.body, `"alertname":"InstanceDown"`) && strings.Contains(req.body, `"instance":"2"`) {
				return true
			}
		}
		return false
	})
	// The group writes ALERTS and ALERTS_FOR_STATE after sending the alert.
	eventually(t, "the firing InstanceDown of instance 2 in tenant-a's ALERTS", func() bool {
		v := dbs.instant(t, "tenant-a", `ALERTS{alertname="InstanceDown",alertstate="firing"}`)
		return len(v) == 1 && v[0].Metric.Get("instance") == "2"
	})
	eventually(t, "one ALERTS_FOR_STATE series of InstanceDown in tenant-a", func() bool {
		return len(dbs.instant(t, "tenant-a", `ALERTS_FOR_STATE{alertname="InstanceDown"}`)) == 1
	})
	for _, req := range am.received() {
		if req.tenant != "tenant-a" {
			t.Errorf("the Alertmanager got a request for tenant %q", req.tenant)
		}
	}
	if n := dbs.pushCount("tenant-b"); n != 0 {
		t.Errorf("tenant-b received %d writes from rules it does not have", n)
	}
	if v := dbs.instant(t, "tenant-b", `{__name__=~"job:up:sum|ALERTS|ALERTS_FOR_STATE"}`); len(v) != 0 {
		t.Errorf("tenant-b sees rule results %v", v)
	}

	// Prometheus' rule and notifier metrics, prefixed and labelled by tenant.
	if v := counter(t, reg, "cortex_prometheus_rule_group_rules", map[string]string{"user": "tenant-a", "rule_group": "team-1;availability"}); v != 2 {
		t.Errorf("cortex_prometheus_rule_group_rules{user=tenant-a} = %v, want 2", v)
	}
	if v := counter(t, reg, "cortex_prometheus_notifications_sent_total", map[string]string{"user": "tenant-a"}); v < 1 {
		t.Errorf("cortex_prometheus_notifications_sent_total{user=tenant-a} = %v, want at least 1", v)
	}
	if v := counter(t, reg, "cortex_ruler_queries_total", map[string]string{"user": "tenant-a"}); v < 2 {
		t.Errorf("cortex_ruler_queries_total{user=tenant-a} = %v, want at least 2", v)
	}

	// The read API: the tenant's own group, and an empty list for the other.
	code, body := get(t, r.RulesHandler(), "tenant-b", "/prometheus/api/v1/rules")
	if code != http.StatusOK || body != `{"status":"success","data":{"groups":[]}}` {
		t.Errorf("tenant-b's rules: %d %s", code, body)
	}
	code, body = get(t, r.AlertsHandler(), "tenant-b", "/prometheus/api/v1/alerts")
	if code != http.StatusOK || body != `{"status":"success","data":{"alerts":[]}}` {
		t.Errorf("tenant-b's alerts: %d %s", code, body)
	}
	code, body = get(t, r.AlertsHandler(), "tenant-a", "/prometheus/api/v1/alerts")
	if code != http.StatusOK || !strings.Contains(body, `"labels":{"alertname":"InstanceDown","instance":"2","job":"api","severity":"page"},"annotations":{"summary":"2 is down"},"state":"firing"`) {
		t.Errorf("tenant-a's alerts: %d %s", code, body)
	}

	// Removing the group stops its evaluation and its tenant's series.
	store.set()
	eventually(t, "tenant-a's manager to stop", func() bool { return r.tenant("tenant-a") == nil })
	if v := counter(t, reg, "cortex_prometheus_rule_group_rules", map[string]string{"user": "tenant-a"}); v != -1 {
		t.Errorf("cortex_prometheus_rule_group_rules{user=tenant-a} still exported after its groups went: %v", v)
	}
}

// TestRulesAPIIsPrometheusJSON checks the field names and order of
// Prometheus' /api/v1/rules and its filters.
func TestRulesAPIIsPrometheusJSON(t *testing.T) {
	dbs := newTenantDBs(t)
	dbs.add("tenant-a", time.Now().Add(-10*time.Second), 0, labels.FromStrings("__name__", "up", "job", "api", "instance", "2"))
	store := &memStore{}
	store.set(group(t, "tenant-a", "team-1", tenantARules), group(t, "tenant-a", "team-2", "name: other\ninterval: 1s\nrules:\n  - record: two\n    expr: vector(2)\n"))
	r := testRuler(t, testConfig(t), store, dbs, nil, nil, nil)
	eventually(t, "every group evaluated", func() bool {
		tm := r.tenant("tenant-a")
		if tm == nil || len(tm.manager.RuleGroups()) != 2 {
			return false
		}
		for _, g := range tm.manager.RuleGroups() {
			if g.GetLastEvaluation().IsZero() {
				return false
			}
		}
		return true
	})

	code, body := get(t, r.RulesHandler(), "tenant-a", "/prometheus/api/v1/rules")
	if code != http.StatusOK {
		t.Fatalf("rules: %d %s", code, body)
	}
	ts := `"[0-9T:.+Z-]+"`
	num := `[0-9.e+-]+`
	want := `^\{"status":"success","data":\{"groups":\[` +
		`\{"name":"availability","file":"team-1","rules":\[` +
		`\{"name":"job:up:sum","query":"sum by \(job\) \(up\)","labels":\{\},"health":"ok","evaluationTime":` + num + `,"lastEvaluation":` + ts + `,"type":"recording"\},` +
		`\{"state":"firing","name":"InstanceDown","query":"up == 0","duration":0,"keepFiringFor":0,"labels":\{"severity":"page"\},"annotations":\{"summary":"\{\{ \$labels.instance \}\} is down"\},` +
		`"alerts":\[\{"labels":\{"alertname":"InstanceDown","instance":"2","job":"api","severity":"page"\},"annotations":\{"summary":"2 is down"\},"state":"firing","activeAt":` + ts + `,"value":"0e\+00"\}\],` +
		`"health":"ok","evaluationTime":` + num + `,"lastEvaluation":` + ts + `,"type":"alerting"\}\],` +
		`"interval":0.1,"limit":0,"evaluationTime":` + num + `,"lastEvaluation":` + ts + `\},` +
		`\{"name":"other","file":"team-2","rules":\[\{"name":"two","query":"vector\(2\)","labels":\{\},"health":"ok","evaluationTime":` + num + `,"lastEvaluation":` + ts + `,"type":"recording"\}\],"interval":1,` +
		`"limit":0,"evaluationTime":` + num + `,"lastEvaluation":` + ts + `\}\]\}\}$`
	if !regexp.MustCompile(want).MatchString(body) {
		t.Errorf("rules answer is not Prometheus' JSON:\n got %s\nwant %s", body, want)
	}

	for _, c := range []struct {
		query string
		want  []string // group/rule names
	}{
		{"type=alert", []string{"availability/InstanceDown"}},
		{"type=record", []string{"availability/job:up:sum", "other/two"}},
		{"rule_name[]=two&rule_name[]=InstanceDown", []string{"availability/InstanceDown", "other/two"}},
		{"rule_group[]=other", []string{"other/two"}},
		{"file[]=team-1&type=record", []string{"availability/job:up:sum"}},
		{"rule_group[]=nothing", nil},
	} {
		code, body := get(t, r.RulesHandler(), "tenant-a", "/prometheus/api/v1/rules?"+c.query)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", c.query, code, body)
		}
		var resp struct {
			Data struct {
				Groups []struct {
					Name  string `json:"name"`
					Rules []struct {
						Name string `json:"name"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, g := range resp.Data.Groups {
			for _, r := range g.Rules {
				got = append(got, g.Name+"/"+r.Name)
			}
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: rules %v, want %v", c.query, got, c.want)
		}
	}
	code, body = get(t, r.RulesHandler(), "tenant-a", "/prometheus/api/v1/rules?type=bogus")
	if code != http.StatusBadRequest || body != `{"status":"error","errorType":"bad_data","error":"invalid parameter \"type\": not supported value \"bogus\""}` {
		t.Errorf("type=bogus: %d %s", code, body)
	}
	code, body = get(t, r.RulesHandler(), "tenant-a", "/prometheus/api/v1/rules?exclude_alerts=true&type=alert")
	if code != http.StatusOK || !strings.Contains(body, `"alerts":null`) {
		t.Errorf("exclude_alerts=true: %d %s", code, body)
	}
}

// TestForStateIsRestored: a ruler starting finds an alert pending for 20
// minutes in ALERTS_FOR_STATE, and keeps that start rather than now.
func TestForStateIsRestored(t *testing.T) {
	dbs := newTenantDBs(t)
	now := time.Now()
	dbs.add("tenant-a", now.Add(-5*time.Second), 0, labels.FromStrings("__name__", "up", "job", "api", "instance", "2"))
	activeAt := now.Add(-20 * time.Minute).Truncate(time.Second)
	dbs.add("tenant-a", now.Add(-5*time.Second), float64(activeAt.Unix()),
		labels.FromStrings("__name__", "ALERTS_FOR_STATE", "alertname", "SlowBurn", "instance", "2", "job", "api", "severity", "page"))
	store := &memStore{}
	store.set(group(t, "tenant-a", "team-1", "name: slow\nrules:\n  - alert: SlowBurn\n    expr: up == 0\n    for: 1h\n    labels:\n      severity: page\n"))
	r := testRuler(t, testConfig(t), store, dbs, nil, nil, nil)

	// The state is restored after the group's second evaluation; until
	// then the alert is pending since the ruler's start.
	var got time.Time
	eventually(t, "the alert's pending state to be restored", func() bool {
		alerts := r.LocalAlerts("tenant-a")
		if len(alerts) != 1 || alerts[0].State != "pending" {
			return false
		}
		got = *alerts[0].ActiveAt
		return got.Before(now.Add(-10 * time.Minute))
	})
	// Restoring moves the start forward by the outage (5s here).
	if d := got.Sub(activeAt); d < 0 || d > time.Minute {
		t.Errorf("restored activeAt %s, want about %s (20 minutes ago)", got, activeAt)
	}
}

// TestInvalidGroupIsLeftOut: one stored group the rule manager would
// refuse does not stop the tenant's other groups.
func TestInvalidGroupIsLeftOut(t *testing.T) {
	store := &memStore{}
	store.set(
		group(t, "tenant-a", "team-1", "name: broken\nrules:\n  - record: bad\n    expr: sum(\n"),
		group(t, "tenant-a", "team-1", "name: fine\nrules:\n  - record: one\n    expr: vector(1)\n"),
	)
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	r := testRuler(t, testConfig(t), store, newTenantDBs(t), nil, logs, reg)
	eventually(t, "the valid group to run", func() bool { return len(r.LocalRules("tenant-a", RulesFilter{})) == 1 })
	if g := r.LocalRules("tenant-a", RulesFilter{}); g[0].Name != "fine" {
		t.Errorf("running group %q, want fine", g[0].Name)
	}
	if !strings.Contains(logs.String(), `namespace=team-1 group=broken err="rule 1 (bad): expr \"sum(\": 1:5: parse error: unclosed left parenthesis"`) {
		t.Errorf("no log line names the invalid group and rule:\n%s", logs.String())
	}
	if v := counter(t, reg, "cortex_ruler_rule_groups_invalid_total", map[string]string{"user": "tenant-a"}); v < 1 {
		t.Errorf("cortex_ruler_rule_groups_invalid_total = %v", v)
	}
}

func get(t testing.TB, h http.Handler, user, target string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil).WithContext(tenant.Inject(context.Background(), user))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestForeignCAIsRefusedNamingTheFlag: an Alertmanager whose certificate a
// foreign CA signed gets no alert, and the log names the flag to fix.
func TestForeignCAIsRefusedNamingTheFlag(t *testing.T) {
	trusted, foreign := newTLSFiles(t), newTLSFiles(t)
	am := newAlertmanagerServer(t, foreign.server)
	amTLS, err := tlsconfig.NewClient(AlertmanagerClientTLSPrefix, tlsconfig.ClientConfig{CAPath: trusted.caPath}, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	dbs := newTenantDBs(t)
	dbs.add("tenant-a", time.Now().Add(-10*time.Second), 0, labels.FromStrings("__name__", "up", "job", "api", "instance", "2"))
	store := &memStore{}
	store.set(group(t, "tenant-a", "team-1", tenantARules))
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	testRuler(t, testConfig(t, "-ruler.alertmanager-url="+am.URL), store, dbs, amTLS, logs, reg)

	want := "-ruler.alertmanager-client: TLS connection to " + strings.TrimPrefix(am.URL, "https://") + " refused: server certificate (CN=\\\"alertmanager\\\", issued by \\\"test CA\\\") is not signed by a CA in -ruler.alertmanager-client.tls-ca-path=" + trusted.caPath
	eventually(t, "a log line naming -ruler.alertmanager-client.tls-ca-path", func() bool { return strings.Contains(logs.String(), want) })
	if v := counter(t, reg, "cortex_prometheus_notifications_errors_total", map[string]string{"user": "tenant-a"}); v < 1 {
		t.Errorf("cortex_prometheus_notifications_errors_total{user=tenant-a} = %v, want at least 1", v)
	}
	if n := len(am.received()); n != 0 {
		t.Errorf("the Alertmanager with a foreign certificate received %d requests", n)
	}
}

// TestAlertmanagerBasicAuth: the credentials of a -ruler.alertmanager-url
// entry go to that entry's Alertmanager, the flags' to the others.
func TestAlertmanagerBasicAuth(t *testing.T) {
	files := newTLSFiles(t)
	withUser, withFlags := newAlertmanagerServer(t, files.server), newAlertmanagerServer(t, files.server)
	amTLS, err := tlsconfig.NewClient(AlertmanagerClientTLSPrefix, tlsconfig.ClientConfig{CAPath: files.caPath}, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	dbs := newTenantDBs(t)
	dbs.add("tenant-a", time.Now().Add(-10*time.Second), 0, labels.FromStrings("__name__", "up", "job", "api", "instance", "2"))
	store := &memStore{}
	store.set(group(t, "tenant-a", "team-1", tenantARules))
	urlWithUser := strings.Replace(withUser.URL, "https://", "https://am-user:am-secret@", 1) + "/alertmanager"
	testRuler(t, testConfig(t, "-ruler.alertmanager-url="+urlWithUser+","+withFlags.URL,
		"-ruler.alertmanager-client.basic-auth-username=flag-user", "-ruler.alertmanager-client.basic-auth-password=flag-secret"),
		store, dbs, amTLS, nil, nil)
	for am, want := range map[*alertmanagerServer]string{withUser: "am-user:am-secret", withFlags: "flag-user:flag-secret"} {
		eventually(t, "an alert with basic authentication "+want, func() bool {
			for _, req := range am.received() {
				if req.auth == want {
					return true
				}
			}
			return false
		})
	}
}

// failingStore fails ListRuleGroups for the tenants in fail.
type failingStore struct {
	*memStore
	mu   sync.Mutex
	fail map[string]bool
}

func (s *failingStore) setFailing(users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = map[string]bool{}
	for _, u := range users {
		s.fail[u] = true
	}
}

func (s *failingStore) ListRuleGroups(ctx context.Context, user, namespace string) ([]rulestore.RuleGroup, error) {
	s.mu.Lock()
	failing := s.fail[user]
	s.mu.Unlock()
	if failing {
		return nil, fmt.Errorf("reading rules/%s: object storage unavailable", user)
	}
	return s.memStore.ListRuleGroups(ctx, user, namespace)
}

// One tenant whose groups cannot be read keeps evaluating the groups it
// had, and does not stop the other tenants' changes from being applied.
func TestUnreadableTenantKeepsItsRulesAndOthersSync(t *testing.T) {
	store := &failingStore{memStore: &memStore{}}
	a1 := group(t, "tenant-a", "ns", "name: a1\nrules:\n  - record: a_one\n    expr: vector(1)\n")
	b1 := group(t, "tenant-b", "ns", "name: b1\nrules:\n  - record: b_one\n    expr: vector(1)\n")
	store.set(a1, b1)
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	r := testRuler(t, testConfig(t), store, newTenantDBs(t), nil, logs, reg)
	eventually(t, "both tenants' groups to run", func() bool {
		return len(r.LocalRules("tenant-a", RulesFilter{})) == 1 && len(r.LocalRules("tenant-b", RulesFilter{})) == 1
	})

	store.setFailing("tenant-b")
	a2 := group(t, "tenant-a", "ns", "name: a2\nrules:\n  - record: a_two\n    expr: vector(2)\n")
	store.set(a1, a2, b1)
	eventually(t, "tenant-a's new group to run while tenant-b cannot be read", func() bool {
		return len(r.LocalRules("tenant-a", RulesFilter{})) == 2
	})
	if g := r.LocalRules("tenant-b", RulesFilter{}); len(g) != 1 || g[0].Name != "b1" {
		t.Fatalf("tenant-b's groups while unreadable: %+v, want b1 still running", g)
	}
	if !strings.Contains(logs.String(), "user=tenant-b") || !strings.Contains(logs.String(), "object storage unavailable") {
		t.Errorf("no log line names the unreadable tenant and the cause:\n%s", logs.String())
	}
}
