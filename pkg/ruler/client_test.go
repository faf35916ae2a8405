package ruler

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/auth"
	"github.com/cortex-tls/cortex/pkg/ruler/rulerpb"
	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// shardedRuler is one ruler of a test's ring, serving ruler.Ruler over
// mutual TLS on loopback.
type shardedRuler struct {
	id     string
	ruler  *Ruler
	svc    services.Service
	grpc   *grpc.Server
	addr   string
	served chan struct{}
}

// rulerCluster is a ring of rulers sharing a rule store, a PKI and an
// -auth.client-tenants-file binding "ruler" to every tenant and "tenant-b-app"
// to tenant-b.
type rulerCluster struct {
	t      testing.TB
	pki    *testkit.PKI
	loader *tlsconfig.Loader
	authz  *auth.Authorizer
	store  *memStore
	dbs    *tenantDBs
	rulers []*shardedRuler
}

func newRulerCluster(t testing.TB, n int) *rulerCluster {
	t.Helper()
	pki := testkit.NewPKI(t, "cluster-ca")
	tenantsFile := filepath.Join(pki.Dir, "client-tenants.yaml")
	testkit.WriteFile(t, tenantsFile, []byte("clients:\n  ruler: [\"*\"]\n  tenant-b-app: [tenant-b]\n"), 0o600)
	authz, err := auth.New(auth.Config{ClientTenantsFile: tenantsFile, ClientTenantsReloadPeriod: time.Minute}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c := &rulerCluster{t: t, pki: pki, loader: tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil), authz: authz, store: &memStore{}, dbs: newTenantDBs(t)}
	store := newRingKV(t)
	srvLeaf := pki.Server(t, "ruler-server")
	clientLeaf := pki.Client(t, "ruler")
	tlsSrv, err := tlsconfig.NewServer("grpc", "server.grpc", tlsconfig.ServerConfig{
		CertPath: srvLeaf.CertPath, KeyPath: srvLeaf.KeyPath, CAPath: pki.CAPath, ClientAuth: "RequireAndVerifyClientCert",
	}, tlsconfig.ServerOptions{}, c.loader)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("ruler-%d", i)
		ln := testkit.Listen(t)
		port := ln.Addr().(*net.TCPAddr).Port
		cfg := testConfig(t, "-ruler.enable-sharding")
		member := newMember(t, cfg, store, id, port)
		tlsClient, err := tlsconfig.NewClient(ClientTLSPrefix, tlsconfig.ClientConfig{CertPath: clientLeaf.CertPath, KeyPath: clientLeaf.KeyPath, CAPath: pki.CAPath}, c.loader)
		if err != nil {
			t.Fatal(err)
		}
		pool := NewClientPool(defaultClientConfig(), tlsClient)
		t.Cleanup(func() { _ = pool.Close() })
		engine := NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute}, nil)
		r, err := New(cfg, c.store, c.dbs, c.dbs, engine, nil, nil, prometheus.NewRegistry(),
			WithOwner(RingOwner(member.Ring(), member.Addr(), TenantShards{})),
			WithPeers(NewRingPeers(member.Ring(), member.Addr(), TenantShards{}, pool)))
		if err != nil {
			t.Fatal(err)
		}
		opts := append([]grpc.ServerOption{grpc.Creds(tlsSrv.GRPCCredentials()), grpc.ForceServerCodecV2(grpccodec.Codec{})}, tenant.ServerInterceptors()...)
		opts = append(opts, authz.GRPCServerOptions()...)
		gs := grpc.NewServer(opts...)
		r.RegisterGRPC(gs)
		sr := &shardedRuler{id: id, ruler: r, svc: r.ShardedService(member), grpc: gs, addr: ln.Addr().String(), served: make(chan struct{})}
		go func() {
			defer close(sr.served)
			_ = gs.Serve(ln)
		}()
		if err := services.StartAndAwaitRunning(context.Background(), sr.svc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = services.StopAndAwaitTerminated(context.Background(), sr.svc)
			sr.grpc.Stop()
			<-sr.served
		})
		c.rulers = append(c.rulers, sr)
	}
	return c
}

// localGroups is how many of the tenant's groups each ruler evaluates.
func (c *rulerCluster) localGroups(user string) []int {
	out := make([]int, len(c.rulers))
	for i, sr := range c.rulers {
		out[i] = len(sr.ruler.LocalRules(user, RulesFilter{}))
	}
	return out
}

func sum(ns []int) int {
	s := 0
	for _, n := range ns {
		s += n
	}
	return s
}

// groupNames reads the group names of a GET /api/v1/rules answer.
func groupNames(t *testing.T, body string) []string {
	t.Helper()
	var resp struct {
		Status string
		Data   struct{ Groups []RuleGroup }
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var out []string
	for _, g := range resp.Data.Groups {
		out = append(out, g.File+"/"+g.Name)
	}
	return out
}

// TestRulersShareGroupsAndMergeOverMutualTLS: two rulers of a ring share a
// tenant's 20 groups, each evaluating some; GET /api/v1/rules on either
// answers all 20, the other's asked over gRPC with mutual TLS; a ruler
// that does not answer fails the request with 503 naming it; once it
// leaves the ring, the other evaluates every group.
func TestRulersShareGroupsAndMergeOverMutualTLS(t *testing.T) {
	c := newRulerCluster(t, 2)
	var want []string
	var groups []rulestore.RuleGroup
	for i := range 20 {
		ns := "ns-" + strconv.Itoa(i%3)
		name := fmt.Sprintf("group-%02d", i)
		groups = append(groups, group(t, "tenant-a", ns, "name: "+name+"\nrules:\n- record: g"+strconv.Itoa(i)+":one\n  expr: vector(1)\n"))
		want = append(want, ns+"/"+name)
	}
	c.store.set(append(groups, group(t, "tenant-b", "b", "name: only-b\nrules:\n- alert: B\n  expr: vector(1)\n"))...)
	slices.Sort(want)

	eventually(t, "the rulers share tenant-a's 20 groups", func() bool {
		n := c.localGroups("tenant-a")
		return sum(n) == 20 && n[0] > 0 && n[1] > 0
	})
	for _, sr := range c.rulers {
		code, body := get(t, sr.ruler.RulesHandler(), "tenant-a", "/api/v1/rules")
		if code != 200 {
			t.Fatalf("%s: %d %s", sr.id, code, body)
		}
		if got := groupNames(t, body); !slices.Equal(got, want) {
			t.Fatalf("%s answers %v, want %v", sr.id, got, want)
		}
		code, body = get(t, sr.ruler.RulesHandler(), "tenant-a", "/api/v1/rules?rule_group[]=group-07&rule_group[]=group-13")
		if got := groupNames(t, body); code != 200 || !slices.Equal(got, []string{"ns-1/group-07", "ns-1/group-13"}) {
			t.Fatalf("%s with rule_group[] answers %d %v", sr.id, code, got)
		}
		code, body = get(t, sr.ruler.RulesHandler(), "tenant-b", "/api/v1/rules")
		if got := groupNames(t, body); code != 200 || !slices.Equal(got, []string{"b/only-b"}) {
			t.Fatalf("%s answers tenant-b %d %v", sr.id, code, got)
		}
	}
	eventually(t, "tenant-b's alert fires and every ruler lists it", func() bool {
		for _, sr := range c.rulers {
			code, body := get(t, sr.ruler.AlertsHandler(), "tenant-b", "/api/v1/alerts")
			if code != 200 || !strings.Contains(body, `"alertname":"B"`) {
				return false
			}
			if _, body := get(t, sr.ruler.AlertsHandler(), "tenant-a", "/api/v1/alerts"); body != `{"status":"success","data":{"alerts":[]}}` {
				t.Fatalf("tenant-a's alerts: %s", body)
			}
		}
		return true
	})

	// ruler-1 stops answering while it is still in the ring.
	c.rulers[1].grpc.Stop()
	<-c.rulers[1].served
	code, body := get(t, c.rulers[0].ruler.RulesHandler(), "tenant-a", "/api/v1/rules")
	if code != 503 || !strings.Contains(body, "ruler ruler-1 at "+c.rulers[1].addr) || !strings.Contains(body, `"errorType":"unavailable"`) {
		t.Fatalf("with ruler-1 unreachable: %d %s", code, body)
	}

	// It leaves the ring: ruler-0 takes every group over.
	if err := services.StopAndAwaitTerminated(context.Background(), c.rulers[1].svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ruler-0 evaluates all 20 groups", func() bool { return c.localGroups("tenant-a")[0] == 20 })
	code, body = get(t, c.rulers[0].ruler.RulesHandler(), "tenant-a", "/api/v1/rules")
	if got := groupNames(t, body); code != 200 || !slices.Equal(got, want) {
		t.Fatalf("after ruler-1 left: %d %v", code, got)
	}
}

// TestRulesServiceChecksTenantAndCertificate: the Rules method answers for
// the call's tenant only, refuses an identity not bound to it
// (PermissionDenied naming -auth.client-tenants-file), a call without a
// tenant, and a client certificate of another CA; a ruler trusting another
// CA refuses the server naming -ruler.client.tls-ca-path.
func TestRulesServiceChecksTenantAndCertificate(t *testing.T) {
	c := newRulerCluster(t, 1)
	c.store.set(
		group(t, "tenant-a", "a", "name: ga\nrules:\n- record: a:one\n  expr: vector(1)\n"),
		group(t, "tenant-b", "b", "name: gb\nrules:\n- record: b:one\n  expr: vector(1)\n"),
	)
	eventually(t, "both tenants' groups load", func() bool {
		return sum(c.localGroups("tenant-a")) == 1 && sum(c.localGroups("tenant-b")) == 1
	})
	dial := func(pki *testkit.PKI, name string) rulerpb.RulerClient {
		leaf := pki.Client(t, name)
		tc, err := tlsconfig.NewClient(ClientTLSPrefix, tlsconfig.ClientConfig{CertPath: leaf.CertPath, KeyPath: leaf.KeyPath, CAPath: c.pki.CAPath}, c.loader)
		if err != nil {
			t.Fatal(err)
		}
		pool := NewClientPool(defaultClientConfig(), tc)
		t.Cleanup(func() { _ = pool.Close() })
		rc, err := pool.client(c.rulers[0].addr)
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	ctx := func(user string) context.Context {
		ctx, cancel := context.WithTimeout(tenant.Inject(context.Background(), user), 10*time.Second)
		t.Cleanup(cancel)
		return ctx
	}

	app := dial(c.pki, "tenant-b-app")
	resp, err := app.Rules(ctx("tenant-b"), &rulerpb.RulesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if g := resp.GetGroups(); len(g) != 1 || g[0].GetName() != "gb" || g[0].GetRules()[0].GetName() != "b:one" {
		t.Fatalf("tenant-b's answer: %v", g)
	}
	_, err = app.Rules(ctx("tenant-a"), &rulerpb.RulesRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "-auth.client-tenants-file") {
		t.Fatalf("tenant-b-app asking for tenant-a: %v", err)
	}
	_, err = app.Rules(context.Background(), &rulerpb.RulesRequest{})
	if err == nil || !strings.Contains(err.Error(), "no tenant in the context") {
		t.Fatalf("a call without a tenant: %v", err)
	}

	foreign := dial(testkit.NewPKI(t, "foreign-ca"), "ruler")
	if _, err := foreign.Rules(ctx("tenant-a"), &rulerpb.RulesRequest{}); err == nil {
		t.Fatal("a client certificate of a foreign CA was accepted")
	}

	// A ruler trusting another CA refuses the server, naming its flag.
	other := testkit.NewPKI(t, "other-ca")
	leaf := c.pki.Client(t, "ruler")
	tc, err := tlsconfig.NewClient(ClientTLSPrefix, tlsconfig.ClientConfig{CertPath: leaf.CertPath, KeyPath: leaf.KeyPath, CAPath: other.CAPath}, c.loader)
	if err != nil {
		t.Fatal(err)
	}
	pool := NewClientPool(defaultClientConfig(), tc)
	t.Cleanup(func() { _ = pool.Close() })
	rc, err := pool.client(c.rulers[0].addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Rules(ctx("tenant-a"), &rulerpb.RulesRequest{}); err == nil || !strings.Contains(err.Error(), "-ruler.client.tls-ca-path") {
		t.Fatalf("a server certificate of a CA not in -ruler.client.tls-ca-path: %v", err)
	}
}

// defaultClientConfig holds the -ruler.client.* defaults.
func defaultClientConfig() ClientConfig {
	var c ClientConfig
	c.RegisterFlags(flag.NewFlagSet("ruler.client", flag.PanicOnError))
	return c
}
