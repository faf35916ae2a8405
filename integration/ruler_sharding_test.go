package integration

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// ruleGroupsOf counts the tenant's groups p evaluates, from its
// cortex_prometheus_rule_group_rules series.
func ruleGroupsOf(t *testing.T, c *cluster, p *testkit.Cortex, tenantID string) int {
	t.Helper()
	_, body := get(t, c.client, "https://"+p.HTTPAddr+"/metrics")
	n := 0
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "cortex_prometheus_rule_group_rules{") && strings.Contains(l, `user="`+tenantID+`"`) {
			n++
		}
	}
	return n
}

// ringMember is one member of a ring page's JSON answer.
type ringMember struct {
	ID     string
	State  string
	Tokens []uint32
}

// rulerRing reads p's view of the ruler ring from /ruler/ring; nil when
// the page cannot be read.
func rulerRing(t *testing.T, c *cluster, p *testkit.Cortex) []ringMember {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://"+p.HTTPAddr+"/ruler/ring", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var ring struct{ Shards []ringMember }
	if err := json.NewDecoder(resp.Body).Decode(&ring); err != nil {
		return nil
	}
	return ring.Shards
}

// rulerRingView summarises p's view of the ruler ring, each member's
// state and token count, for failure messages.
func rulerRingView(t *testing.T, c *cluster, p *testkit.Cortex) string {
	t.Helper()
	var members []string
	for _, m := range rulerRing(t, c, p) {
		members = append(members, fmt.Sprintf("%s %s with %d tokens", m.ID, m.State, len(m.Tokens)))
	}
	return strings.Join(members, ", ")
}

// activeRulerTokens waits until p's view of the ruler ring has n ACTIVE
// rulers, and returns their tokens, each with its ruler's ID.
func activeRulerTokens(t *testing.T, c *cluster, p *testkit.Cortex, n int) map[uint32]string {
	t.Helper()
	var owners map[uint32]string
	p.EventuallyNil(30*time.Second, itoa(n)+" ACTIVE rulers with their tokens", func() error {
		members := rulerRing(t, c, p)
		owners = map[uint32]string{}
		active := 0
		for _, m := range members {
			if m.State == "ACTIVE" && len(m.Tokens) > 0 {
				active++
			}
			for _, tok := range m.Tokens {
				owners[tok] = m.ID
			}
		}
		if active != n {
			return fmt.Errorf("ring: %s", rulerRingView(t, c, p))
		}
		return nil
	})
	return owners
}

// ringOwner is the ruler owning key's FNV-1a token: the one holding the
// first token at or after it, wrapping around (replication factor 1).
func ringOwner(owners map[uint32]string, key string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	token := h.Sum32()
	tokens := slices.Sorted(maps.Keys(owners))
	i, _ := slices.BinarySearch(tokens, token)
	if i == len(tokens) {
		i = 0
	}
	return owners[tokens[i]]
}

// listedGroups reads GET /prometheus/api/v1/rules on p: the groups'
// names, and whether every group has been evaluated.
func listedGroups(t *testing.T, c *cluster, p *testkit.Cortex, tenantID string) (names []string, evaluated bool, err error) {
	t.Helper()
	code, body := do(t, c.client, http.MethodGet, "https://"+p.HTTPAddr+"/prometheus/api/v1/rules", tenantID, nil)
	if code != http.StatusOK {
		return nil, false, fmt.Errorf("%d %s", code, body)
	}
	var resp struct {
		Data struct {
			Groups []struct {
				Name           string
				File           string
				LastEvaluation time.Time
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, false, fmt.Errorf("%w: %s", err, body)
	}
	evaluated = true
	for _, g := range resp.Data.Groups {
		names = append(names, g.File+"/"+g.Name)
		if g.LastEvaluation.IsZero() {
			evaluated = false
		}
	}
	return names, evaluated, nil
}

// TestRulersShareGroupsOverMemberlist: two -target=ruler processes on a
// gossiped ruler ring with mutual TLS on every link share a tenant's ten
// groups, each evaluating some; GET /prometheus/api/v1/rules on either
// answers all ten (the other's asked over gRPC with -ruler.client.tls-*),
// and another tenant sees none. When one ruler stops, the other evaluates
// all ten within a few evaluation intervals.
func TestRulersShareGroupsOverMemberlist(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	t.Parallel()
	c, rulers := startShardedRulers(t)

	// A group's ring token is Cortex's FNV-1a of tenant, namespace and
	// name, so names differing in one character land close together and
	// may all fall to one ruler. The groups are named so that each ruler
	// owns five of them on the ring both rulers see.
	owners := activeRulerTokens(t, c, rulers[0], 2)
	var want []string
	owned := map[string]int{}
	for i := 0; len(want) < 10; i++ {
		ns, name := "ns-"+itoa(i%2), fmt.Sprintf("group-%d", i)
		owner := ringOwner(owners, "team-r"+ns+name)
		if owned[owner] == 5 {
			continue
		}
		owned[owner]++
		body := fmt.Sprintf("name: %s\ninterval: 1s\nrules:\n- record: team_r:g%d\n  expr: vector(%d)\n", name, i, i)
		if code, resp := do(t, c.client, http.MethodPost, "https://"+rulers[i%2].HTTPAddr+"/api/v1/rules/"+ns, "team-r", body); code != http.StatusAccepted {
			t.Fatalf("POST %s/%s: %d %s", ns, name, code, resp)
		}
		want = append(want, ns+"/"+name)
	}
	slices.Sort(want)

	rulers[0].EventuallyNil(60*time.Second, "each ruler evaluating the five groups it owns", func() error {
		a, b := ruleGroupsOf(t, c, rulers[0], "team-r"), ruleGroupsOf(t, c, rulers[1], "team-r")
		if a != 5 || b != 5 {
			return fmt.Errorf("groups evaluated: %d and %d; ruler-0's ring: %s; ruler-1's ring: %s", a, b, rulerRingView(t, c, rulers[0]), rulerRingView(t, c, rulers[1]))
		}
		return nil
	})
	for i, p := range rulers {
		p.EventuallyNil(30*time.Second, "ruler-"+itoa(i)+" listing all ten groups, evaluated", func() error {
			names, evaluated, err := listedGroups(t, c, p, "team-r")
			if err != nil {
				return err
			}
			if !slices.Equal(names, want) || !evaluated {
				return fmt.Errorf("listed %v (evaluated: %v), want %v", names, evaluated, want)
			}
			return nil
		})
		if names, _, err := listedGroups(t, c, p, "team-other"); err != nil || len(names) != 0 {
			t.Fatalf("another tenant's rules on ruler-%d: %v %v", i, names, err)
		}
	}

	rulers[1].Stop()
	rulers[0].EventuallyNil(30*time.Second, "ruler-0 evaluating all ten groups", func() error {
		if n := ruleGroupsOf(t, c, rulers[0], "team-r"); n != 10 {
			return fmt.Errorf("ruler-0 evaluates %d groups", n)
		}
		names, evaluated, err := listedGroups(t, c, rulers[0], "team-r")
		if err != nil {
			return err
		}
		if !slices.Equal(names, want) || !evaluated {
			return fmt.Errorf("listed %v (evaluated: %v)", names, evaluated)
		}
		return nil
	})
}

// TestRulerQueriesThroughFrontend: a -target=ruler process with
// -ruler.frontend-address sends its rules' queries to the query-frontend
// of a -target=all process over gRPC with mutual TLS
// (-ruler.frontendClient.tls-*); the frontend queues them for its querier
// workers, and the recording rule's result, written back through the
// ruler's distributor, is queried back; another tenant sees none of it.
// The rules evaluate so with either -ruler.query-response-format.
func TestRulerQueriesThroughFrontend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	t.Parallel()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	all := c.start("-target=all",
		"-distributor.replication-factor=1",
		"-ingester.lifecycler.ID=ingester-0", "-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
		"-blocks-storage.filesystem.dir="+filepath.Join(c.dir, "blocks"),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
		"-ruler-storage.filesystem.dir="+t.TempDir(),
		"-configs.database.uri=file:"+filepath.Join(c.dir, "configs.db"),
		"-alertmanager.storage.path="+t.TempDir(),
	)
	c.distributor = all
	waitReady(all, c.client)
	c.waitActiveIngesters(all, 1)
	// The ruler asks for -ruler.query-response-format: Cortex's protobuf
	// encoding by default, or JSON.
	for _, format := range []string{"protobuf", "json"} {
		tenantID := "team-f-" + format
		r := c.start("-target=ruler",
			"-distributor.replication-factor=1",
			"-blocks-storage.filesystem.dir="+filepath.Join(c.dir, "blocks"),
			"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
			"-ruler-storage.filesystem.dir="+filepath.Join(c.dir, "rules-"+format),
			"-ruler.enable-api=true",
			"-ruler.evaluation-interval=1s",
			"-ruler.poll-interval=1s",
			"-ruler.frontend-address="+all.GRPCAddr,
			"-ruler.frontendClient.tls-cert-path="+filepath.Join(c.certs, "client.crt"),
			"-ruler.frontendClient.tls-key-path="+filepath.Join(c.certs, "client.key"),
			"-ruler.frontendClient.tls-ca-path="+filepath.Join(c.certs, "root.crt"),
			"-ruler.frontendClient.tls-server-name=localhost",
			"-ruler.query-response-format="+format,
		)
		waitReady(r, c.client)

		now := time.Now().UnixMilli()
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("frontend_up", 0, now, 2), series("frontend_up", 1, now, 3)}}
		if code, body := c.push(tenantID, req); code != http.StatusNoContent {
			t.Fatalf("push: %d %s", code, body)
		}
		group := "name: via-frontend\ninterval: 1s\nrules:\n- record: team_f:frontend_up:sum\n  expr: sum(frontend_up)\n"
		if code, body := do(t, c.client, http.MethodPost, "https://"+r.HTTPAddr+"/api/v1/rules/ns", tenantID, group); code != http.StatusAccepted {
			t.Fatalf("POST the group: %d %s", code, body)
		}
		queued := func() float64 {
			return metricOf(t, c.client, all, "cortex_query_frontend_queue_duration_seconds_count")
		}
		// The querier counts the answers it writes in the ruler's
		// protobuf encoding: the frontend asks for it for the ruler.
		rulerAnswers := func() float64 {
			return metricOf(t, c.client, all, `cortex_querier_codec_response_size_count{content_type="application/x-cortex-query+proto"}`)
		}
		protobufBefore := rulerAnswers()
		var before float64
		r.EventuallyNil(30*time.Second, format+": the rule evaluated without error", func() error {
			code, body := do(t, c.client, http.MethodGet, "https://"+r.HTTPAddr+"/prometheus/api/v1/rules", tenantID, nil)
			if code != http.StatusOK || !strings.Contains(body, `"health":"ok"`) {
				return fmt.Errorf("%d %s", code, body)
			}
			before = queued()
			return nil
		})
		// Nobody else queries the frontend meanwhile: its queue counts the
		// ruler's evaluations.
		all.EventuallyNil(30*time.Second, format+": the frontend queueing the ruler's queries", func() error {
			if n := queued(); n < before+2 {
				return fmt.Errorf("%v queries queued, %v before", n, before)
			}
			return nil
		})
		all.EventuallyNil(30*time.Second, format+": the rule's result queried back", func() error {
			code, body := do(t, c.client, http.MethodGet, "https://"+all.HTTPAddr+"/prometheus/api/v1/query?query=team_f:frontend_up:sum", tenantID, nil)
			if code != http.StatusOK || !strings.Contains(body, `,"5"]`) {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		r.Stop()
		if n := rulerAnswers(); (format == "protobuf") != (n > protobufBefore) {
			t.Errorf("%s: %v answers of the querier in application/x-cortex-query+proto, %v before", format, n, protobufBefore)
		}
	}
	if code, body := do(t, c.client, http.MethodGet, "https://"+all.HTTPAddr+"/prometheus/api/v1/query?query=team_f:frontend_up:sum", "team-other", nil); code != http.StatusOK || strings.Contains(body, `"5"`) {
		t.Fatalf("another tenant's query: %d %s", code, body)
	}
}

// startShardedRulers starts an ingester and two -target=ruler processes
// (ruler-0, ruler-1) sharing a rules directory, on a gossiped ruler ring
// with mutual TLS on the rulers' own client link, extra added to each
// ruler's flags, and waits until each is ready and both are on the ring.
func startShardedRulers(t *testing.T, extra ...string) (c *cluster, rulers []*testkit.Cortex) {
	t.Helper()
	c = &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	ingester := c.start("-target=ingester",
		"-distributor.replication-factor=1",
		"-ingester.lifecycler.ID=ingester-0", "-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
		"-blocks-storage.filesystem.dir="+filepath.Join(c.dir, "blocks"),
	)
	for i := range 2 {
		rulers = append(rulers, c.start(append([]string{"-target=ruler",
			"-distributor.replication-factor=1",
			"-blocks-storage.filesystem.dir=" + filepath.Join(c.dir, "blocks"),
			"-blocks-storage.bucket-store.sync-dir=" + t.TempDir(),
			"-ruler-storage.filesystem.dir=" + filepath.Join(c.dir, "rules"),
			"-ruler.enable-api=true",
			"-ruler.evaluation-interval=1s",
			"-ruler.poll-interval=1s",
			"-ruler.enable-sharding=true",
			"-ruler.ring.store=memberlist",
			"-ruler.ring.heartbeat-period=1s",
			"-ruler.ring.instance-id=ruler-" + itoa(i),
			"-ruler.ring.instance-addr=127.0.0.1",
			"-ruler.client.tls-cert-path=" + filepath.Join(c.certs, "client.crt"),
			"-ruler.client.tls-key-path=" + filepath.Join(c.certs, "client.key"),
			"-ruler.client.tls-ca-path=" + filepath.Join(c.certs, "root.crt"),
			"-ruler.client.tls-server-name=localhost",
		}, extra...)...))
	}
	for _, p := range append([]*testkit.Cortex{ingester}, rulers...) {
		waitReady(p, c.client)
	}
	rulers[0].EventuallyNil(30*time.Second, "both rulers on /ruler/ring", func() error {
		for _, p := range rulers {
			code, page := get(t, c.client, "https://"+p.HTTPAddr+"/ruler/ring")
			if code != http.StatusOK || !strings.Contains(page, "ruler-0") || !strings.Contains(page, "ruler-1") {
				return fmt.Errorf("GET /ruler/ring on %s: %d", p.HTTPAddr, code)
			}
		}
		return nil
	})
	return c, rulers
}
