package cortex

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func reloadSuccess(reg *prometheus.Registry, want string) bool {
	return testutil.GatherAndCompare(reg, strings.NewReader("# HELP runtime_config_last_reload_successful Whether the last runtime-config reload attempt was successful.\n# TYPE runtime_config_last_reload_successful gauge\nruntime_config_last_reload_successful{config=\"cortex\"} "+want+"\n"), "runtime_config_last_reload_successful") == nil
}

func seriesLimit(src runtimeConfigSource, tenant string) int {
	rc, _ := src.GetConfig().(*RuntimeConfigValues)
	if rc == nil || rc.TenantLimits[tenant] == nil {
		return -1
	}
	return rc.TenantLimits[tenant].MaxSeriesPerUser
}

// The runtime configuration is read from its bucket at start and every
// reload period; an object that no longer loads keeps the last good
// configuration in force, and its error names the object and the field.
func TestRuntimeConfigFromBucketReloads(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	upload := func(content string) {
		t.Helper()
		if err := bkt.Upload(ctx, "runtime/overrides.yaml", strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	upload("overrides:\n  team-a:\n    max_series_per_user: 5\n")
	cfg := loadConfig(t, "-runtime-config.file=runtime/overrides.yaml", "-runtime-config.reload-period=20ms", "-runtime-config.backend=gcs", "-runtime-config.gcs.bucket-name=unused")
	l := newRuntimeConfigLoader(&cfg)
	rcfg := cfg.RuntimeConfig
	rcfg.Loader, rcfg.Preprocessor = l.load, l.checkFile
	reg := prometheus.NewRegistry()
	var logs testkit.Buffer
	m := newBucketRuntimeConfig(rcfg, bkt, reg, log.NewLogfmtLogger(&logs))
	if err := services.StartAndAwaitRunning(ctx, m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, m) })
	updates := m.CreateListenerChannel(1)
	if got := seriesLimit(m, "team-a"); got != 5 {
		t.Fatalf("team-a's max_series_per_user %d at start, want 5", got)
	}
	if !reloadSuccess(reg, "1") {
		t.Fatal("runtime_config_last_reload_successful is not 1 after the first load")
	}

	upload("overrides:\n  team-a:\n    max_series_per_user: 9\n")
	select {
	case v := <-updates:
		if rc := v.(*RuntimeConfigValues); rc.TenantLimits["team-a"].MaxSeriesPerUser != 9 {
			t.Fatalf("listener got %+v, want max_series_per_user 9", rc.TenantLimits["team-a"])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reloaded configuration after the object changed")
	}

	upload("overrides:\n  team-a:\n    max_series_per_usr: 8\n")
	testkit.Eventually(t, 10*time.Second, "the bad object refused", func() bool { return reloadSuccess(reg, "0") })
	if got := seriesLimit(m, "team-a"); got != 9 {
		t.Errorf("after a bad reload team-a's max_series_per_user is %d, want the last good 9", got)
	}
	testkit.Eventually(t, 10*time.Second, "the error logged", func() bool {
		got := logs.String()
		return strings.Contains(got, `object \"runtime/overrides.yaml\" of the -runtime-config.backend=gcs bucket`) && strings.Contains(got, "field max_series_per_usr not found")
	})

	if err := bkt.Delete(ctx, "runtime/overrides.yaml"); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	testkit.Eventually(t, 10*time.Second, "the missing object reported", func() bool {
		return strings.Contains(logs.String(), "-runtime-config.file=runtime/overrides.yaml: no such object in the -runtime-config.backend=gcs bucket")
	})
	if got := seriesLimit(m, "team-a"); got != 9 {
		t.Errorf("with the object gone team-a's max_series_per_user is %d, want the last good 9", got)
	}
}

// A process whose runtime configuration object is missing does not start.
func TestRuntimeConfigFromBucketMissingObjectFailsStart(t *testing.T) {
	cfg := loadConfig(t, "-runtime-config.file=absent.yaml", "-runtime-config.backend=gcs", "-runtime-config.gcs.bucket-name=unused")
	cfg.RuntimeConfig.Loader = newRuntimeConfigLoader(&cfg).load
	m := newBucketRuntimeConfig(cfg.RuntimeConfig, objstore.NewInMemBucket(), prometheus.NewRegistry(), log.NewNopLogger())
	err := services.StartAndAwaitRunning(context.Background(), m)
	if err == nil || !strings.Contains(err.Error(), "failed to load runtime config: -runtime-config.file=absent.yaml: no such object in the -runtime-config.backend=gcs bucket") {
		t.Fatalf("start: %v", err)
	}
}

func TestRuntimeConfigBackendValidation(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-runtime-config.backend=oss"}, `-runtime-config.backend="oss": unknown backend`},
		{[]string{"-runtime-config.backend=s3", "-runtime-config.file=a.yaml"}, "-runtime-config.s3."},
		{[]string{"-runtime-config.backend=gcs", "-runtime-config.gcs.bucket-name=b", "-runtime-config.file=a.yaml,b.yaml"}, "-runtime-config.file names 2 files (a.yaml,b.yaml), but -runtime-config.backend=gcs reads one object"},
		{[]string{"-runtime-config.backend=gcs", "-runtime-config.gcs.bucket-name=b", "-runtime-config.file=https://example.com/a.yaml"}, "-runtime-config.file=https://example.com/a.yaml is a URL, but -runtime-config.backend=gcs reads an object of the bucket"},
	} {
		cfg := loadConfig(t, tc.args...)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if cfg := loadConfig(t, "-runtime-config.file=a.yaml,b.yaml"); cfg.Validate() != nil {
		t.Errorf("the filesystem backend refused two files: %v", cfg.Validate())
	}
}

// With -runtime-config.filesystem.dir, the files are read under that
// directory, as Cortex's filesystem bucket reads them.
func TestRuntimeConfigFilesystemDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tenants"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tenants", "runtime.yaml"), []byte("overrides:\n  team-a:\n    max_series_per_user: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, "-runtime-config.file=tenants/runtime.yaml", "-runtime-config.filesystem.dir="+dir)
	c := &Cortex{Cfg: cfg, Registry: prometheus.NewRegistry(), kitLogger: log.NewNopLogger(), Logger: slog.New(slog.DiscardHandler)}
	svc, err := c.initRuntimeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), svc) })
	if got := seriesLimit(c.runtimeConfig, "team-a"); got != 4 {
		t.Errorf("team-a's max_series_per_user %d, want 4 from %s/tenants/runtime.yaml", got, dir)
	}
}

// The runtime configuration is read from S3 (MinIO) over TLS, verified
// with -runtime-config.s3.http.tls-ca-path, and reloaded when the object
// changes.
func TestRuntimeConfigFromS3(t *testing.T) {
	minio := testkit.StartMinIO(t)
	ctx := context.Background()
	cfg := loadConfig(t,
		"-runtime-config.file=cortex/runtime.yaml",
		"-runtime-config.reload-period=50ms",
		"-runtime-config.backend=s3",
		"-runtime-config.s3.endpoint="+minio.Endpoint,
		"-runtime-config.s3.bucket-name="+minio.Bucket,
		"-runtime-config.s3.access-key-id="+minio.AccessKey,
		"-runtime-config.s3.secret-access-key="+minio.SecretKey,
		"-runtime-config.s3.http.tls-ca-path="+minio.PKI.CAPath,
	)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	writer, err := bucket.NewClient(ctx, cfg.RuntimeConfig.StorageConfig, "test", tlsconfig.NewLoader(logger, nil), logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = writer.Close() })
	upload := func(content string) {
		t.Helper()
		if err := writer.Upload(ctx, "cortex/runtime.yaml", bytes.NewReader([]byte(content))); err != nil {
			t.Fatal(err)
		}
	}
	upload("overrides:\n  team-a:\n    max_series_per_user: 11\n")

	reg := prometheus.NewRegistry()
	c := &Cortex{Cfg: cfg, Registry: reg, TLS: tlsconfig.NewLoader(logger, nil), kitLogger: log.NewNopLogger(), Logger: logger}
	svc, err := c.initRuntimeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, svc) })
	if got := seriesLimit(c.runtimeConfig, "team-a"); got != 11 {
		t.Fatalf("team-a's max_series_per_user %d, want 11 from S3", got)
	}
	upload("overrides:\n  team-a:\n    max_series_per_user: 12\n")
	testkit.Eventually(t, 10*time.Second, "the changed object reloaded", func() bool { return seriesLimit(c.runtimeConfig, "team-a") == 12 })
	if n, err := testutil.GatherAndCount(reg, "thanos_objstore_bucket_operations_total"); err != nil || n == 0 {
		t.Errorf("no thanos_objstore_bucket_operations_total{component=\"runtime-config\"} series (%d, %v)", n, err)
	}
}

// Without the CA, the S3 server's certificate is refused and the process
// does not start.
func TestRuntimeConfigFromS3RefusesUnknownCA(t *testing.T) {
	minio := testkit.StartMinIO(t)
	cfg := loadConfig(t,
		"-runtime-config.file=cortex/runtime.yaml",
		"-runtime-config.backend=s3",
		"-runtime-config.s3.endpoint="+minio.Endpoint,
		"-runtime-config.s3.bucket-name="+minio.Bucket,
		"-runtime-config.s3.access-key-id="+minio.AccessKey,
		"-runtime-config.s3.secret-access-key="+minio.SecretKey,
	)
	logger := slog.New(slog.DiscardHandler)
	c := &Cortex{Cfg: cfg, Registry: prometheus.NewRegistry(), TLS: tlsconfig.NewLoader(logger, nil), kitLogger: log.NewNopLogger(), Logger: logger}
	svc, err := c.initRuntimeConfig()
	if err != nil {
		t.Fatal(err)
	}
	err = services.StartAndAwaitRunning(context.Background(), svc)
	if err == nil || !strings.Contains(err.Error(), "is not signed by a CA in the system's CAs (set -runtime-config.s3.http.tls-ca-path") {
		t.Fatalf("start against an S3 server of an unknown CA: %v", err)
	}
}
