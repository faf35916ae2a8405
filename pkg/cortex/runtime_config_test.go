package cortex

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/etcd"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/runtimeconfig"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func TestRuntimeConfigCortexFormat(t *testing.T) {
	cfg := loadConfig(t, "-ingester.max-series-per-user=1000", "-ingester.instance-limits.max-tenants=7")
	l := newRuntimeConfigLoader(&cfg)
	v, err := l.load(strings.NewReader(`
overrides:
  team-a:
    max_series_per_user: 5
multi_kv_config:
  primary: etcd
  mirror_enabled: true
ingester_limits:
  max_series: 100000
  max_inflight_push_requests: 30
`))
	if err != nil {
		t.Fatal(err)
	}
	rc := v.(*RuntimeConfigValues)
	if a := rc.TenantLimits["team-a"]; a == nil || a.MaxSeriesPerUser != 5 || a.MaxSeriesPerMetric != cfg.Limits.MaxSeriesPerMetric {
		t.Errorf("team-a's limits %+v: want max_series_per_user 5 over the flags' defaults", a)
	}
	if rc.Multi.PrimaryStore != "etcd" || rc.Multi.Mirroring == nil || !*rc.Multi.Mirroring {
		t.Errorf("multi_kv_config %+v", rc.Multi)
	}
	il := rc.IngesterLimits
	if il == nil || il.MaxInMemorySeries != 100000 || il.MaxInflightPushRequests != 30 || il.MaxInMemoryTenants != 7 {
		t.Errorf("ingester_limits %+v: want max_series 100000, max_inflight_push_requests 30 and the flag's max_tenants 7", il)
	}
}

func TestRuntimeConfigRefusals(t *testing.T) {
	cfg := loadConfig(t)
	l := newRuntimeConfigLoader(&cfg)
	for _, tc := range []struct{ file, want string }{
		{"overrides:\n  team-a:\n    max_series_per_usr: 5\n", "overrides for tenant \"team-a\": yaml: unmarshal errors:\n  line 1: field max_series_per_usr not found in type validation.Limits"},
		{"overrides:\n  team-a:\n    ingestion_rate: -1\n", `overrides for tenant "team-a": ingestion rate and burst size must not be negative`},
		{"ingester_limits:\n  max_series: -3\n", "ingester_limits: max_series (-ingester.instance-limits.max-series) must not be negative"},
		{"ingester_limits:\n  max_seriess: 3\n", "ingester_limits: yaml: unmarshal errors:\n  line 1: field max_seriess not found in type ingester.InstanceLimits"},
		{"multi_kv_config:\n  primary: dynamodb\n", `multi_kv_config.primary: "dynamodb" is not a store of the multi KV store; valid: consul, etcd, inmemory, memberlist`},
		{"ingester_stream_chunks_when_using_blocks: true\n", "ingester_stream_chunks_when_using_blocks is a key of Cortex's runtime configuration that this system refuses"},
		{"overrid:\n  a: {}\n", "field overrid not found"},
		{"overrides: {}\n---\noverrides: {}\n", "more than one YAML document"},
	} {
		_, err := l.load(strings.NewReader(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("file %q: error %v, want %q", tc.file, err, tc.want)
		}
	}
}

// The files of -runtime-config.file are merged left to right; a bad new
// version keeps the last good configuration, and the error names the file
// and the field.
func TestRuntimeConfigFilesMergedAndBadReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.yaml"), filepath.Join(dir, "second.yaml")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(first, "overrides:\n  team-a:\n    max_series_per_user: 5\n    max_series_per_metric: 6\ningester_limits:\n  max_tenants: 3\n")
	write(second, "overrides:\n  team-a:\n    max_series_per_user: 50\n  team-b:\n    max_series_per_user: 7\n")
	cfg := loadConfig(t, "-runtime-config.file="+first+","+second, "-runtime-config.reload-period=50ms")
	l := newRuntimeConfigLoader(&cfg)
	rcfg := cfg.RuntimeConfig
	rcfg.Loader, rcfg.Preprocessor = l.load, l.checkFile
	reg := prometheus.NewRegistry()
	var logs testkit.Buffer // written by the loader's goroutine while the test reads it
	m, err := runtimeconfig.New(rcfg.Config, "cortex", reg, log.NewLogfmtLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), m) })
	rc := m.GetConfig().(*RuntimeConfigValues)
	if a := rc.TenantLimits["team-a"]; a.MaxSeriesPerUser != 50 || a.MaxSeriesPerMetric != 6 {
		t.Errorf("team-a merged: max_series_per_user %d (want second.yaml's 50), max_series_per_metric %d (want first.yaml's 6)", a.MaxSeriesPerUser, a.MaxSeriesPerMetric)
	}
	if b := rc.TenantLimits["team-b"]; b == nil || b.MaxSeriesPerUser != 7 || rc.IngesterLimits == nil || rc.IngesterLimits.MaxInMemoryTenants != 3 {
		t.Errorf("team-b %+v, ingester_limits %+v", b, rc.IngesterLimits)
	}

	write(second, "overrides:\n  team-b:\n    max_series_per_usr: 8\n")
	testkit.Eventually(t, 10*time.Second, "the bad file refused", func() bool {
		n, err := testutil.GatherAndCount(reg, "runtime_config_last_reload_successful")
		if err != nil || n != 1 {
			return false
		}
		return testutil.GatherAndCompare(reg, strings.NewReader("# HELP runtime_config_last_reload_successful Whether the last runtime-config reload attempt was successful.\n# TYPE runtime_config_last_reload_successful gauge\nruntime_config_last_reload_successful{config=\"cortex\"} 0\n"), "runtime_config_last_reload_successful") == nil
	})
	if rc := m.GetConfig().(*RuntimeConfigValues); rc.TenantLimits["team-a"] == nil || rc.TenantLimits["team-a"].MaxSeriesPerUser != 50 {
		t.Errorf("after a bad reload: %+v, want the last good configuration", rc.TenantLimits)
	}
	if got := logs.String(); !strings.Contains(got, `preprocess \"`+second+`\"`) || !strings.Contains(got, `overrides for tenant \"team-b\"`) || !strings.Contains(got, "field max_series_per_usr not found") {
		t.Errorf("the error names neither the file nor the field:\n%s", got)
	}
}

func TestRuntimeConfigAndConfigPages(t *testing.T) {
	file := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(file, []byte("overrides:\n  team-a:\n    max_series_per_user: 5\ningester_limits:\n  max_series: 9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startProcess(t, loadConfig(t, "-runtime-config.file="+file, "-distributor.ingestion-rate-limit=1234", "-blocks-storage.s3.secret-access-key=supersecret"))
	code, body := get(t, c, http.MethodGet, "/runtime_config")
	if code != http.StatusOK || !strings.Contains(body, "team-a:\n") || !strings.Contains(body, "max_series_per_user: 5\n") || !strings.Contains(body, "max_series_per_metric: 50000\n") {
		t.Errorf("/runtime_config: %d\n%s", code, body)
	}
	code, body = get(t, c, http.MethodGet, "/runtime_config?mode=diff")
	want := "ingester_limits:\n  max_series: 9\noverrides:\n  team-a:\n    max_series_per_user: 5\n"
	if code != http.StatusOK || body != want {
		t.Errorf("/runtime_config?mode=diff: %d\n%s\nwant\n%s", code, body, want)
	}
	code, body = get(t, c, http.MethodGet, "/config?mode=diff")
	if code != http.StatusOK || !strings.Contains(body, "ingestion_rate: 1234\n") || strings.Contains(body, "max_series_per_metric") {
		t.Errorf("/config?mode=diff: %d\n%s", code, body)
	}
	code, body = get(t, c, http.MethodGet, "/config?mode=defaults")
	if code != http.StatusOK || !strings.Contains(body, "ingestion_rate: 25000\n") {
		t.Errorf("/config?mode=defaults: %d\n%s", code, body)
	}
	code, body = get(t, c, http.MethodGet, "/config")
	if code != http.StatusOK || !strings.Contains(body, "ingestion_rate: 1234\n") || !strings.Contains(body, "max_series_per_metric: 50000\n") {
		t.Errorf("/config: %d\n%s", code, body)
	}
	for _, mode := range []string{"", "?mode=diff"} {
		if _, body := get(t, c, http.MethodGet, "/config"+mode); strings.Contains(body, "supersecret") || !strings.Contains(body, "secret_access_key: '********'") {
			t.Errorf("/config%s does not mask the S3 secret key:\n%s", mode, grepLines(body, "secret_access_key"))
		}
	}
	if code, body = get(t, c, http.MethodGet, "/config?mode=everything"); code != http.StatusBadRequest || !strings.Contains(body, `unknown mode "everything": use mode=diff or defaults`) {
		t.Errorf("/config?mode=everything: %d %s", code, body)
	}
}

func TestRuntimeConfigPageWithoutFile(t *testing.T) {
	c := startProcess(t, loadConfig(t))
	if code, body := get(t, c, http.MethodGet, "/runtime_config"); code != http.StatusOK || body != "runtime config file doesn't exist" {
		t.Errorf("/runtime_config without -runtime-config.file: %d %q", code, body)
	}
}

func TestMultiKVConfigReachesTheRings(t *testing.T) {
	cfg := loadConfig(t)
	called := 0
	cfg.setMultiKVConfigProvider(func() <-chan kv.MultiRuntimeConfig { called++; return nil })
	for _, store := range []kv.Config{cfg.Ingester.LifecyclerConfig.RingConfig.KVStore, cfg.StoreGateway.ShardingRing.KVStore, cfg.Compactor.ShardingRing.KVStore, cfg.Ruler.Sharding.Ring.KVStore, cfg.Distributor.HATracker.KVStore} {
		store.Multi.ConfigProvider()
	}
	if called != 5 {
		t.Errorf("provider reached %d of the 5 rings' stores", called)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The runtime configuration's multi_kv_config switches the primary store
// of dskit's multi KV client (-<ring>.store=multi) while it runs.
func TestMultiKVConfigSwitchesThePrimaryStore(t *testing.T) {
	file := filepath.Join(t.TempDir(), "runtime.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("multi_kv_config:\n  primary: inmemory\n")
	cfg := loadConfig(t, "-runtime-config.file="+file, "-runtime-config.reload-period=50ms")
	l := newRuntimeConfigLoader(&cfg)
	rcfg := cfg.RuntimeConfig
	rcfg.Loader, rcfg.Preprocessor = l.load, l.checkFile
	m, err := runtimeconfig.New(rcfg.Config, "cortex", prometheus.NewRegistry(), log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), m) })
	c := &Cortex{runtimeConfig: m}

	var logs testkit.Buffer // written by the loader's goroutine while the test reads it
	store := kv.Config{Store: "multi"}
	store.Multi = kv.MultiConfig{Primary: "inmemory", Secondary: "etcd", ConfigProvider: c.multiKVConfig}
	store.Etcd = etcd.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond}
	if _, err := kv.NewClient(store, ring.GetCodec(), nil, log.NewLogfmtLogger(&logs)); err != nil {
		t.Fatal(err)
	}
	write("multi_kv_config:\n  primary: etcd\n  mirror_enabled: true\n")
	testkit.Eventually(t, 10*time.Second, "the multi client switched to etcd", func() bool {
		return strings.Contains(logs.String(), `msg="switched primary KV store" primary=etcd`) && strings.Contains(logs.String(), `msg="toggled mirroring" enabled=true`)
	})
}
