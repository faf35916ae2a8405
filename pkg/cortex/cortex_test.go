package cortex

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/util/config"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// loadConfig parses args over the defaults, with loopback listeners on
// ports the kernel picks and data under a temporary directory.
func loadConfig(t *testing.T, args ...string) Config {
	t.Helper()
	dir := t.TempDir()
	base := []string{
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=0",
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=0",
		"-blocks-storage.tsdb.dir=" + filepath.Join(dir, "tsdb"),
		"-blocks-storage.filesystem.dir=" + filepath.Join(dir, "blocks"),
		"-ruler-storage.filesystem.dir=" + filepath.Join(dir, "rules"),
		"-compactor.data-dir=" + filepath.Join(dir, "compactor"),
		"-blocks-storage.bucket-store.sync-dir=" + filepath.Join(dir, "tsdb-sync"),
		"-configs.database.uri=file:" + filepath.Join(dir, "configs.db"),
		"-alertmanager.storage.path=" + filepath.Join(dir, "alertmanager"),
		"-querier.active-query-tracker-dir=" + filepath.Join(dir, "active-query-tracker"),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-log.level=warn",
	}
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := config.Load(fs, append(base, args...), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startProcess runs cfg until the test ends and returns it once every
// module is running.
func startProcess(t *testing.T, cfg Config) *Cortex {
	t.Helper()
	c, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	testkit.Eventually(t, 30*time.Second, "every module running", func() bool {
		for _, s := range c.services {
			if s.State() != services.Running {
				return false
			}
		}
		return true
	})
	return c
}

func get(t *testing.T, c *Cortex, method, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+c.Server.HTTPAddr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestTargetValidatedAgainstModuleTable(t *testing.T) {
	cfg := loadConfig(t, "-target=distributor,store-nothing")
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `unknown component "store-nothing"`) ||
		!strings.Contains(err.Error(), "alertmanager, all, compactor, configs, distributor, flusher, ingester, overrides, purger, querier, query-frontend, query-scheduler, ruler, store-gateway") {
		t.Fatalf("got %v, want the unknown component and the valid values from the module table", err)
	}
	var help strings.Builder
	fs := flag.NewFlagSet("help", flag.ContinueOnError)
	var c Config
	c.RegisterFlags(fs)
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if !strings.Contains(help.String(), "alertmanager, all, compactor, configs, distributor, flusher, ingester, overrides, purger, querier, query-frontend, query-scheduler, ruler, store-gateway") {
		t.Fatalf("-target help does not list the table's targets:\n%s", help.String())
	}
}

func TestModuleTableDependenciesExist(t *testing.T) {
	names := map[string]bool{All: true}
	for _, m := range moduleTable() {
		if names[m.name] {
			t.Errorf("module %s listed twice", m.name)
		}
		names[m.name] = true
	}
	for _, m := range moduleTable() {
		for _, d := range m.deps {
			if !names[d] {
				t.Errorf("module %s depends on unknown module %s", m.name, d)
			}
		}
	}
	if got := dependencies(Distributor); !slices.Contains(got, Ring) || !slices.Contains(got, Server) || slices.Contains(got, Ingester) {
		t.Errorf("dependencies(distributor) = %v", got)
	}
}

func TestConfigNotChangedByModules(t *testing.T) {
	cfg := loadConfig(t, "-distributor.replication-factor=3")
	c := startProcess(t, cfg)
	if got := c.Cfg.Ingester.LifecyclerConfig.RingConfig.ReplicationFactor; got != 1 {
		t.Errorf("in-memory ring: replication factor %d, want 1", got)
	}
	if cfg.Ingester.LifecyclerConfig.RingConfig.ReplicationFactor != 3 {
		t.Error("New changed the caller's configuration")
	}
	if c.Cfg.RuntimeConfig.Loader != nil {
		t.Error("a module wrote into the process configuration")
	}
}

func TestRouteTableServesEveryPath(t *testing.T) {
	c := startProcess(t, loadConfig(t))
	routes := c.API.Routes()
	if len(routes) < 40 {
		t.Fatalf("only %d routes mounted in -target=all", len(routes))
	}
	for _, r := range routes {
		if strings.Contains(r.Path, "{") || strings.HasPrefix(r.Path, "/debug/pprof/") {
			continue
		}
		method := http.MethodGet
		if len(r.Methods) > 0 {
			method = r.Methods[0]
		}
		if method == http.MethodPost {
			continue // bodies differ per route; the GET-able ones show the wiring
		}
		code, body := get(t, c, method, r.Path, "X-Scope-OrgID", "team-a")
		if code == http.StatusNotFound && strings.Contains(body, "404 page not found") || code == http.StatusMethodNotAllowed {
			t.Errorf("%s %s (module %s): %d %s", method, r.Path, r.Module, code, body)
		}
	}

	code, body := get(t, c, http.MethodGet, "/no/such/page")
	if code != http.StatusNotFound || !strings.Contains(body, "not found") {
		t.Errorf("unknown path: %d %q, want 404 with a short error", code, body)
	}
	code, _ = get(t, c, http.MethodGet, "/prometheus/api/v1/no_such_endpoint", "X-Scope-OrgID", "team-a")
	if code != http.StatusNotFound {
		t.Errorf("unknown Prometheus API path: %d, want 404", code)
	}
	code, _ = get(t, c, http.MethodDelete, "/api/v1/push", "X-Scope-OrgID", "team-a")
	if code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /api/v1/push: %d, want 405", code)
	}
	code, _ = get(t, c, http.MethodGet, "/api/prom/configs/rules")
	if code != http.StatusUnauthorized {
		t.Errorf("tenant route without X-Scope-OrgID: %d, want 401", code)
	}

	code, body = get(t, c, http.MethodGet, "/")
	if code != http.StatusOK {
		t.Fatalf("index: %d %s", code, body)
	}
	for _, want := range []string{`<a href="/ingester/ring">`, `<a href="/metrics">`, "/prometheus/api/v1/query_range", "/api/v1/push", "query-frontend", "alertmanager", "configs"} {
		if !strings.Contains(body, want) {
			t.Errorf("index page lacks %q", want)
		}
	}
}

func TestIndexListsOnlyRunningModules(t *testing.T) {
	c := startProcess(t, loadConfig(t, "-target=configs"))
	_, body := get(t, c, http.MethodGet, "/")
	if !strings.Contains(body, "/api/prom/configs/rules") {
		t.Errorf("index page of -target=configs lacks the configs API:\n%s", body)
	}
	for _, absent := range []string{"/api/v1/push", "query_range", "/ingester/ring"} {
		if strings.Contains(body, absent) {
			t.Errorf("index page of -target=configs lists %s", absent)
		}
	}
}

// A querier-less query-frontend is not ready (no querier connected), yet
// the gRPC health of the frontend service it runs is SERVING: clients check
// the service they call, not the process's readiness.
func TestGRPCHealthPerService(t *testing.T) {
	c := startProcess(t, loadConfig(t, "-target=query-frontend"))
	cc, err := grpc.NewClient(c.Server.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	h := healthpb.NewHealthClient(cc)
	status := func(service string) string {
		resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return err.Error()
		}
		return resp.Status.String()
	}
	if got := status(frontendpb.ServiceName); got != "SERVING" {
		t.Errorf("%s health: %s, want SERVING", frontendpb.ServiceName, got)
	}
	if code, _ := get(t, c, http.MethodGet, "/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready: %d, want 503 while no querier is connected", code)
	}
	testkit.Eventually(t, 10*time.Second, "the overall health NOT_SERVING, like /ready", func() bool { return status("") == "NOT_SERVING" })
	if got := status(client.ServiceName); !strings.Contains(got, "NotFound") {
		t.Errorf("%s health in a process without an ingester: %s, want NotFound", client.ServiceName, got)
	}
}
