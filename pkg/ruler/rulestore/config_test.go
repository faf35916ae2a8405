package rulestore

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/storage/bucket"
)

// parseFlags registers a Config on a fresh flag set and parses args.
func parseFlags(t testing.TB, args ...string) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	for _, name := range []string{
		"backend", "local.directory", "configs.url", "configs.client-timeout",
		"configs.tls-cert-path", "configs.tls-key-path", "configs.tls-ca-path", "configs.tls-server-name", "configs.tls-insecure-skip-verify",
		"configs.tls-enabled", "configs.tls-min-version", "configs.tls-cipher-suites",
		"filesystem.dir", "s3.endpoint", "s3.bucket-name", "s3.http.tls-ca-path", "gcs.bucket-name", "azure.container-name", "swift.auth-url",
	} {
		if fs.Lookup("ruler-storage."+name) == nil {
			t.Errorf("flag -ruler-storage.%s is not registered", name)
		}
	}
	if cfg.Backend != bucket.Filesystem || cfg.Filesystem.Directory != "ruler" || cfg.ConfigDB.Timeout != 5*time.Second || cfg.Local.Directory != "" {
		t.Errorf("defaults: backend %q, filesystem.dir %q, configs.client-timeout %s, local.directory %q; want filesystem, ruler, 5s, empty",
			cfg.Backend, cfg.Filesystem.Directory, cfg.ConfigDB.Timeout, cfg.Local.Directory)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if usage := fs.Lookup("ruler-storage.backend").Usage; !strings.Contains(usage, "s3, gcs, azure, swift, filesystem, configdb, local") {
		t.Errorf("-ruler-storage.backend's help does not list every backend: %s", usage)
	}
}

// TestYAML decodes Cortex's ruler_storage keys over the flag defaults.
func TestYAML(t *testing.T) {
	cfg := parseFlags(t)
	const doc = `
backend: configdb
configdb:
  configs_api_url: https://configs:443
  client_timeout: 9s
  tls_ca_path: /ca.crt
  tls_cert_path: /ruler.crt
  tls_key_path: /ruler.key
  tls_server_name: configs
  tls_insecure_skip_verify: true
local:
  directory: /rules
s3:
  endpoint: minio:9000
filesystem:
  dir: /var/ruler
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.ConfigDB
	if cfg.Backend != ConfigDB || c.URL != "https://configs:443" || c.Timeout != 9*time.Second || c.TLS.CAPath != "/ca.crt" ||
		c.TLS.CertPath != "/ruler.crt" || c.TLS.KeyPath != "/ruler.key" || c.TLS.ServerName != "configs" || !c.TLS.InsecureSkipVerify ||
		cfg.Local.Directory != "/rules" || cfg.S3.Endpoint != "minio:9000" || cfg.Filesystem.Directory != "/var/ruler" {
		t.Errorf("YAML not applied: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-ruler-storage.backend=configdb"}, "-ruler-storage.configs.url must be set"},
		{[]string{"-ruler-storage.backend=configdb", "-ruler-storage.configs.url=configs:80"}, `-ruler-storage.configs.url="configs:80": want http(s)://host:port`},
		{[]string{"-ruler-storage.backend=configdb", "-ruler-storage.configs.url=http://configs", "-ruler-storage.configs.tls-ca-path=/ca"},
			"-ruler-storage.configs.url=http://configs is plain http:// but -ruler-storage.configs.tls-* flags are set: use https://"},
		{[]string{"-ruler-storage.backend=local"}, "-ruler-storage.local.directory must be set when -ruler-storage.backend=local"},
		{[]string{"-ruler-storage.backend=sql"}, `-ruler-storage.backend="sql": unknown backend; supported backends are: s3, gcs, azure, swift, filesystem, configdb, local`},
		{[]string{"-ruler-storage.backend=s3"}, "-ruler-storage.s3.bucket-name must be set when -ruler-storage.backend=s3"},
		{[]string{"-ruler-storage.filesystem.dir="}, "-ruler-storage.filesystem.dir must be set when -ruler-storage.backend=filesystem"},
	} {
		cfg := parseFlags(t, tc.args...)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
		if _, err := NewStore(context.Background(), cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewStore %v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestNewStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	cfg := parseFlags(t, "-ruler-storage.filesystem.dir="+filepath.Join(dir, "bucket"))
	s, err := NewStore(ctx, cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*BucketStore); !ok {
		t.Errorf("filesystem backend: %T, want *BucketStore", s)
	}
	if err := s.(io.Closer).Close(); err != nil {
		t.Error(err)
	}

	cfg = parseFlags(t, "-ruler-storage.backend=local", "-ruler-storage.local.directory="+dir)
	if s, err = NewStore(ctx, cfg, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*LocalStore); !ok {
		t.Errorf("local backend: %T, want *LocalStore", s)
	}
	missing := filepath.Join(dir, "missing")
	cfg = parseFlags(t, "-ruler-storage.backend=local", "-ruler-storage.local.directory="+missing)
	if _, err = NewStore(ctx, cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), `-ruler-storage.local.directory="`+missing+`"`) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing local directory: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = parseFlags(t, "-ruler-storage.backend=local", "-ruler-storage.local.directory="+file)
	if _, err = NewStore(ctx, cfg, nil, nil, nil); err == nil || err.Error() != `-ruler-storage.local.directory="`+file+`": not a directory` {
		t.Errorf("local directory is a file: %v", err)
	}

	cfg = parseFlags(t, "-ruler-storage.backend=configdb", "-ruler-storage.configs.url=https://127.0.0.1:1", "-ruler-storage.configs.tls-ca-path="+missing)
	if _, err = NewStore(ctx, cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "-ruler-storage.configs.tls-ca-path") || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing configs CA file: %v; want an error naming the flag and the path", err)
	}
	cfg = parseFlags(t, "-ruler-storage.backend=s3", "-ruler-storage.s3.endpoint=127.0.0.1:1", "-ruler-storage.s3.bucket-name=rules", "-ruler-storage.s3.http.tls-ca-path="+missing)
	if _, err = NewStore(ctx, cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "-ruler-storage.s3.http.tls-ca-path") {
		t.Errorf("missing S3 CA file: %v; want an error naming the flag", err)
	}
}
