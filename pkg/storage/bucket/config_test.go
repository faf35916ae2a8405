package bucket

import (
	"bytes"
	"context"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// parse registers cfg under prefix on a fresh flag set and parses args.
func parse(t *testing.T, prefix string, args ...string) (Config, error) {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlagsWithPrefix(prefix, fs)
	err := fs.Parse(args)
	return cfg, err
}

func mustParse(t *testing.T, args ...string) Config {
	t.Helper()
	cfg, err := parse(t, "blocks-storage.", args...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t)
	if cfg.Backend != Filesystem || cfg.Filesystem.Directory != "blocks" {
		t.Errorf("backend %q dir %q, want filesystem in blocks", cfg.Backend, cfg.Filesystem.Directory)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	s := cfg.S3
	if s.SignatureVersion != "v4" || s.BucketLookupType != "auto" || !s.SendContentMd5 || s.Insecure || s.ListObjectsVersion != "" {
		t.Errorf("s3 defaults differ from Cortex's: %+v", s)
	}
	h := s.HTTP
	if h.IdleConnTimeout != 90*time.Second || h.ResponseHeaderTimeout != 2*time.Minute || h.TLSHandshakeTimeout != 10*time.Second ||
		h.ExpectContinueTimeout != time.Second || h.MaxIdleConns != 100 || h.MaxIdleConnsPerHost != 100 || h.MaxConnsPerHost != 0 || h.InsecureSkipVerify {
		t.Errorf("s3.http defaults differ from Cortex's: %+v", h)
	}
	if cfg.Azure.MaxRetries != 20 || cfg.Swift.MaxRetries != 3 || cfg.Swift.ConnectTimeout != 10*time.Second || cfg.Swift.RequestTimeout != 5*time.Second {
		t.Errorf("azure/swift defaults differ from Cortex's: %+v %+v", cfg.Azure, cfg.Swift)
	}
}

// TestFlagNames checks Cortex's flag names under two prefixes registered
// side by side, as the blocks, ruler and alertmanager storages will be.
func TestFlagNames(t *testing.T) {
	var blocks, ruler Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	blocks.RegisterFlagsWithPrefix("blocks-storage.", fs)
	ruler.RegisterFlagsWithPrefix("ruler-storage.", fs)
	for _, prefix := range []string{"blocks-storage.", "ruler-storage."} {
		for _, name := range []string{
			"backend", "filesystem.dir",
			"s3.endpoint", "s3.region", "s3.bucket-name", "s3.access-key-id", "s3.secret-access-key", "s3.insecure",
			"s3.signature-version", "s3.bucket-lookup-type", "s3.send-content-md5", "s3.list-objects-version",
			"s3.sse.type", "s3.sse.kms-key-id", "s3.sse.kms-encryption-context",
			"s3.http.idle-conn-timeout", "s3.http.response-header-timeout", "s3.http.insecure-skip-verify",
			"s3.tls-handshake-timeout", "s3.expect-continue-timeout", "s3.max-idle-connections",
			"s3.max-idle-connections-per-host", "s3.max-connections-per-host",
			"s3.http.tls-ca-path", "s3.http.tls-cert-path", "s3.http.tls-key-path", "s3.http.tls-server-name",
			"s3.http.tls-insecure-skip-verify", "s3.http.tls-enabled", "s3.http.tls-min-version", "s3.http.tls-cipher-suites",
			"gcs.bucket-name", "gcs.service-account",
			"azure.account-name", "azure.account-key", "azure.container-name", "azure.endpoint-suffix", "azure.max-retries",
			"azure.msi-resource", "azure.user-assigned-id", "azure.http.idle-conn-timeout", "azure.max-idle-connections",
			"swift.auth-url", "swift.auth-version", "swift.username", "swift.password", "swift.container-name",
			"swift.max-retries", "swift.connect-timeout", "swift.request-timeout", "swift.application-credential-secret",
		} {
			if fs.Lookup(prefix+name) == nil {
				t.Errorf("flag -%s%s is not registered", prefix, name)
			}
		}
	}
	if ruler.Filesystem.Directory != "ruler" {
		t.Errorf("-ruler-storage.filesystem.dir defaults to %q, want ruler", ruler.Filesystem.Directory)
	}
	if !strings.Contains(fs.Lookup("blocks-storage.filesystem.dir").Usage, "working directory") {
		t.Error("-blocks-storage.filesystem.dir's help does not say where the default directory is")
	}
}

func TestFlagsSet(t *testing.T) {
	cfg := mustParse(t, "-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=minio:9000",
		"-blocks-storage.s3.bucket-name=blocks", "-blocks-storage.s3.access-key-id=ak", "-blocks-storage.s3.secret-access-key=sk",
		"-blocks-storage.s3.http.tls-ca-path=/ca.crt", "-blocks-storage.s3.http.tls-server-name=minio",
		"-blocks-storage.s3.http.insecure-skip-verify", "-blocks-storage.s3.max-connections-per-host=7")
	s := cfg.S3
	if cfg.Backend != S3 || s.Endpoint != "minio:9000" || s.BucketName != "blocks" || s.AccessKeyID != "ak" || s.SecretAccessKey.String() != "sk" ||
		s.HTTP.TLS.CAPath != "/ca.crt" || s.HTTP.TLS.ServerName != "minio" || !s.HTTP.InsecureSkipVerify || s.HTTP.MaxConnsPerHost != 7 {
		t.Errorf("flags not applied: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

// TestYAML decodes Cortex's keys over the flag defaults, as
// pkg/util/config does, and checks the secret is masked when dumped.
func TestYAML(t *testing.T) {
	cfg := mustParse(t)
	const doc = `
backend: s3
s3:
  endpoint: minio:9000
  bucket_name: blocks
  access_key_id: ak
  secret_access_key: sk
  bucket_lookup_type: path
  send_content_md5: false
  sse:
    type: SSE-S3
  http:
    idle_conn_timeout: 1m
    insecure_skip_verify: false
    max_idle_connections_per_host: 5
    tls_ca_path: /etc/ca.crt
    tls_cert_path: /etc/client.crt
    tls_key_path: /etc/client.key
    tls_server_name: minio.internal
filesystem:
  dir: /var/blocks
gcs:
  bucket_name: g
azure:
  account_name: a
  http:
    max_connections_per_host: 3
swift:
  container_name: c
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	s := cfg.S3
	if cfg.Backend != S3 || s.Endpoint != "minio:9000" || s.BucketName != "blocks" || s.SecretAccessKey.String() != "sk" ||
		s.BucketLookupType != "path" || s.SendContentMd5 || s.SSE.Type != SSES3 || s.HTTP.IdleConnTimeout != time.Minute ||
		s.HTTP.MaxIdleConnsPerHost != 5 || s.HTTP.ResponseHeaderTimeout != 2*time.Minute ||
		s.HTTP.TLS.CAPath != "/etc/ca.crt" || s.HTTP.TLS.CertPath != "/etc/client.crt" || s.HTTP.TLS.KeyPath != "/etc/client.key" ||
		s.HTTP.TLS.ServerName != "minio.internal" || s.HTTP.TLS.MinVersion != "VersionTLS12" ||
		cfg.Filesystem.Directory != "/var/blocks" || cfg.GCS.BucketName != "g" || cfg.Azure.StorageAccountName != "a" ||
		cfg.Azure.HTTP.MaxConnsPerHost != 3 || cfg.Swift.ContainerName != "c" {
		t.Errorf("YAML not applied over the defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}

	var out bytes.Buffer
	if err := yaml.NewEncoder(&out).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "sk\n") || !strings.Contains(out.String(), "secret_access_key: '********'") {
		t.Errorf("secret not masked in dump:\n%s", out.String())
	}

	bad := yaml.NewDecoder(strings.NewReader("s3:\n  bucket: x\n"))
	bad.KnownFields(true)
	if err := bad.Decode(&cfg); err == nil {
		t.Error("unknown key s3.bucket accepted")
	}
}

func TestValidate(t *testing.T) {
	s3 := []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=127.0.0.1:9000", "-blocks-storage.s3.bucket-name=b"}
	for _, tc := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{[]string{"-blocks-storage.backend=s4"}, `-blocks-storage.backend="s4": unknown backend`},
		{[]string{"-blocks-storage.filesystem.dir="}, "-blocks-storage.filesystem.dir must be set"},
		{s3, ""},
		{[]string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=e:1"}, "-blocks-storage.s3.bucket-name must be set when -blocks-storage.backend=s3"},
		{[]string{"-blocks-storage.backend=s3", "-blocks-storage.s3.bucket-name=b"}, "-blocks-storage.s3.endpoint must be set"},
		{append(s3, "-blocks-storage.s3.endpoint=https://e:1"), "-blocks-storage.s3.endpoint=\"https://e:1\": want host[:port]"},
		{append(s3, "-blocks-storage.s3.access-key-id=ak"), "-blocks-storage.s3.access-key-id and -blocks-storage.s3.secret-access-key must be set together"},
		{append(s3, "-blocks-storage.s3.signature-version=v3"), "-blocks-storage.s3.signature-version=\"v3\""},
		{append(s3, "-blocks-storage.s3.bucket-lookup-type=dns"), "-blocks-storage.s3.bucket-lookup-type=\"dns\""},
		{append(s3, "-blocks-storage.s3.list-objects-version=v3"), "-blocks-storage.s3.list-objects-version=\"v3\""},
		{append(s3, "-blocks-storage.s3.sse.type=SSE-C"), "-blocks-storage.s3.sse.type=\"SSE-C\""},
		{append(s3, "-blocks-storage.s3.sse.kms-encryption-context={"), "-blocks-storage.s3.sse.kms-encryption-context"},
		{append(s3, "-blocks-storage.s3.insecure", "-blocks-storage.s3.http.tls-ca-path=/ca"), "-blocks-storage.s3.insecure=true (plain HTTP) contradicts -blocks-storage.s3.http.tls-ca-path"},
		{append(s3, "-blocks-storage.s3.insecure", "-blocks-storage.s3.http.tls-cert-path=/c"), "contradicts -blocks-storage.s3.http.tls-cert-path"},
		{append(s3, "-blocks-storage.s3.insecure"), ""},
		{[]string{"-blocks-storage.backend=gcs"}, "-blocks-storage.gcs.bucket-name must be set when -blocks-storage.backend=gcs"},
		{[]string{"-blocks-storage.backend=azure", "-blocks-storage.azure.account-name=a"}, "-blocks-storage.azure.container-name must be set"},
		{[]string{"-blocks-storage.backend=azure"}, "-blocks-storage.azure.account-name must be set"},
		{[]string{"-blocks-storage.backend=swift", "-blocks-storage.swift.container-name=c"}, "-blocks-storage.swift.auth-url must be set"},
		{[]string{"-blocks-storage.backend=swift", "-blocks-storage.swift.auth-url=http://x"}, "-blocks-storage.swift.container-name must be set"},
	} {
		cfg := mustParse(t, tc.args...)
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}

	// Another prefix names its own flags.
	cfg, err := parse(t, "ruler-storage.", "-ruler-storage.backend=s3")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-ruler-storage.s3.bucket-name") {
		t.Errorf("ruler-storage error %v does not name -ruler-storage.s3.bucket-name", err)
	}
}

// TestExtraBackends checks the values a caller adds under its own prefix:
// accepted there, named in the error for a bad value and in the flag's help,
// refused by NewClient, and unknown under any other prefix.
func TestExtraBackends(t *testing.T) {
	var ruler, blocks Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ruler.ExtraBackends = []string{"configdb", "local"}
	ruler.RegisterFlagsWithPrefix("ruler-storage.", fs)
	blocks.RegisterFlagsWithPrefix("blocks-storage.", fs)
	if err := fs.Parse([]string{"-ruler-storage.backend=configdb", "-blocks-storage.backend=configdb"}); err != nil {
		t.Fatal(err)
	}
	if err := ruler.Validate(); err != nil {
		t.Errorf("-ruler-storage.backend=configdb: %v", err)
	}
	if !ruler.IsExtraBackend() || blocks.IsExtraBackend() {
		t.Errorf("IsExtraBackend: ruler %v blocks %v, want true false", ruler.IsExtraBackend(), blocks.IsExtraBackend())
	}
	if err := blocks.Validate(); err == nil || err.Error() != `-blocks-storage.backend="configdb": unknown backend; supported backends are: s3, gcs, azure, swift, filesystem` {
		t.Errorf("-blocks-storage.backend=configdb: %v", err)
	}
	if _, err := NewClient(context.Background(), ruler, "ruler", nil, nil, nil); err == nil || err.Error() != "-ruler-storage.backend=configdb is not an object storage backend: no bucket client for it" {
		t.Errorf("NewClient with configdb: %v", err)
	}
	ruler.Backend = "sql"
	if err := ruler.Validate(); err == nil || err.Error() != `-ruler-storage.backend="sql": unknown backend; supported backends are: s3, gcs, azure, swift, filesystem, configdb, local` {
		t.Errorf("-ruler-storage.backend=sql: %v", err)
	}
	if usage := fs.Lookup("ruler-storage.backend").Usage; !strings.Contains(usage, "filesystem, configdb, local") {
		t.Errorf("-ruler-storage.backend help does not list configdb and local: %s", usage)
	}
}
