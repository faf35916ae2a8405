package alertstore

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	configsclient "github.com/cortex-tls/cortex/pkg/configs/client"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// parse registers the older -alertmanager.configs.* flags the way
// pkg/alertmanager does and the -alertmanager-storage.* flags, parses args
// and resolves the two.
func parse(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	var legacy configsclient.Config
	legacy.RegisterFlagsWithPrefix(LegacyPrefix, f)
	var c Config
	c.RegisterFlags(f)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	err := c.Resolve(Legacy{URL: legacy.URL, Timeout: legacy.Timeout, TLS: legacy.TLS})
	return c, err
}

func TestBothSpellingsOfTheConfigsFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		tlsPrefix  string
		wantCert   string
		wantTimout time.Duration
	}{
		{"older", []string{"-alertmanager.configs.url=https://configs:9009", "-alertmanager.configs.tls-cert-path=a.crt", "-alertmanager.configs.client-timeout=7s"}, "alertmanager.configs", "a.crt", 7 * time.Second},
		{"Cortex 1.21", []string{"-alertmanager-storage.configs.url=https://configs:9009", "-alertmanager-storage.configs.tls-cert-path=b.crt"}, "alertmanager-storage.configs", "b.crt", 5 * time.Second},
		{"both, equal", []string{"-alertmanager.configs.url=https://configs:9009", "-alertmanager-storage.configs.url=https://configs:9009", "-alertmanager.configs.tls-cert-path=c.crt"}, "alertmanager-storage.configs", "c.crt", 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if c.Backend != ConfigDB || c.ConfigDB.URL != "https://configs:9009" || c.ConfigDB.TLS.CertPath != tc.wantCert || c.ConfigDB.Timeout != tc.wantTimout {
				t.Fatalf("backend %q url %q cert %q timeout %s", c.Backend, c.ConfigDB.URL, c.ConfigDB.TLS.CertPath, c.ConfigDB.Timeout)
			}
			if got := c.ConfigsTLSPrefix(); got != tc.tlsPrefix {
				t.Fatalf("TLS prefix %q, want %q", got, tc.tlsPrefix)
			}
			if c.ConfigDB.TLS.MinVersion != "VersionTLS12" || !c.ConfigDB.TLS.CommonNameFallback {
				t.Fatalf("TLS defaults lost: %+v", c.ConfigDB.TLS)
			}
		})
	}
}

func TestConflictingSpellingsNameBothFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-alertmanager.configs.url=https://a:1", "-alertmanager-storage.configs.url=https://b:1"},
			`-alertmanager.configs.url=https://a:1 and -alertmanager-storage.configs.url=https://b:1 are two names of one setting, given different values: set only one`},
		{[]string{"-alertmanager.configs.tls-ca-path=a.pem", "-alertmanager-storage.configs.tls-ca-path=b.pem"},
			`-alertmanager.configs.tls-ca-path=a.pem and -alertmanager-storage.configs.tls-ca-path=b.pem`},
		{[]string{"-alertmanager.configs.client-timeout=1s", "-alertmanager-storage.configs.client-timeout=2s"},
			`-alertmanager.configs.client-timeout=1s and -alertmanager-storage.configs.client-timeout=2s`},
		{[]string{"-alertmanager.configs.tls-insecure-skip-verify=true", "-alertmanager-storage.configs.tls-min-version=VersionTLS13"}, ""},
	} {
		_, err := parse(t, tc.args...)
		if tc.want == "" {
			if err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestDefaultBackendAndValidation(t *testing.T) {
	c, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != "filesystem" || c.Filesystem.Directory != "alertmanager" {
		t.Fatalf("default backend %q dir %q", c.Backend, c.Filesystem.Directory)
	}
	c, _ = parse(t, "-alertmanager-storage.backend=local")
	if err := c.Validate(); err == nil || err.Error() != "-alertmanager-storage.local.path must be set when -alertmanager-storage.backend=local" {
		t.Fatalf("local without path: %v", err)
	}
	c, _ = parse(t, "-alertmanager-storage.backend=configdb")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-alertmanager-storage.configs.url (or -alertmanager.configs.url) must be set") {
		t.Fatalf("configdb without URL: %v", err)
	}
	c, _ = parse(t, "-alertmanager.configs.url=http://configs:9009", "-alertmanager.configs.tls-ca-path=ca.pem")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-alertmanager.configs.url=http://configs:9009 is plain http:// but -alertmanager.configs.tls-* flags are set") {
		t.Fatalf("http with TLS flags: %v", err)
	}
	c, _ = parse(t, "-alertmanager-storage.backend=cassandra")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `-alertmanager-storage.backend="cassandra": unknown backend; supported backends are: s3, gcs, azure, swift, filesystem, configdb, local`) {
		t.Fatalf("unknown backend: %v", err)
	}
	// A missing CA file names the flag of the spelling in use.
	c, _ = parse(t, "-alertmanager.configs.url=https://configs:9009", "-alertmanager.configs.tls-ca-path=/nonexistent/ca.pem")
	if _, err := NewStore(context.Background(), c, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil), nil, nil); err == nil || !strings.Contains(err.Error(), "-alertmanager.configs.tls-ca-path") {
		t.Fatalf("missing CA: %v", err)
	}
}

func TestBucketStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bucket")
	c, _ := parse(t, "-alertmanager-storage.filesystem.dir="+dir)
	s, err := NewStore(context.Background(), c, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if users, err := s.ListAllUsers(ctx); err != nil || len(users) != 0 {
		t.Fatalf("empty bucket: %v %v", users, err)
	}
	if _, err := s.GetAlertConfig(ctx, "tenant-a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing config: %v", err)
	}
	if err := s.DeleteAlertConfig(ctx, "tenant-a"); err != nil {
		t.Fatalf("deleting from a directory that does not exist: %v", err)
	}
	// Reads leave no directory behind: the first write creates it.
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("reads created %s: %v", dir, err)
	}
	want := AlertConfig{AlertmanagerConfig: "route: {receiver: r}\nreceivers: [{name: r}]\n", TemplateFiles: map[string]string{"a.tmpl": `{{ define "a" }}x{{ end }}`}}
	for _, u := range []string{"tenant-b", "tenant-a"} {
		if err := s.SetAlertConfig(ctx, u, want); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "alerts", "tenant-a")); err != nil {
		t.Fatalf("not at Cortex's alerts/<tenant>: %v", err)
	}
	users, err := s.ListAllUsers(ctx)
	if err != nil || !slices.Equal(users, []string{"tenant-a", "tenant-b"}) {
		t.Fatalf("users %v %v", users, err)
	}
	got, err := s.GetAlertConfigs(ctx, []string{"tenant-a", "tenant-c"})
	if err != nil || len(got) != 1 || !got["tenant-a"].Equal(want) {
		t.Fatalf("configs %v %v", got, err)
	}
	if err := s.DeleteAlertConfig(ctx, "tenant-b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAlertConfig(ctx, "tenant-b"); err != nil {
		t.Fatalf("deleting a missing config: %v", err)
	}
	if users, _ := s.ListAllUsers(ctx); !slices.Equal(users, []string{"tenant-a"}) {
		t.Fatalf("after delete: %v", users)
	}
	if err := s.SetAlertConfig(ctx, "../x", want); err == nil {
		t.Fatal("a tenant ID with a path accepted")
	}
}

func TestLocalStoreIsReadOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tenant-a.yaml"), []byte("route: {receiver: r}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := parse(t, "-alertmanager-storage.backend=local", "-alertmanager-storage.local.path="+dir)
	s, err := NewStore(context.Background(), c, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	users, err := s.ListAllUsers(ctx)
	if err != nil || !slices.Equal(users, []string{"tenant-a"}) {
		t.Fatalf("users %v %v", users, err)
	}
	got, err := s.GetAlertConfig(ctx, "tenant-a")
	if err != nil || got.AlertmanagerConfig != "route: {receiver: r}\n" {
		t.Fatalf("config %+v %v", got, err)
	}
	err = s.SetAlertConfig(ctx, "tenant-a", got)
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "-alertmanager-storage.backend=local is read-only") {
		t.Fatalf("write to local: %v", err)
	}
}
