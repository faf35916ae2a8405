package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// ringConfig nests like Cortex's ring blocks; Limits takes any key below
// it, as a map does.
type ringConfig struct {
	KVStore struct {
		Store string `yaml:"store"`
	} `yaml:"kvstore"`
	Extra map[string]struct {
		Port int `yaml:"port"`
	} `yaml:"extra"`
	Members []struct {
		Name string `yaml:"name"`
	} `yaml:"members"`
}

type clientConfig struct {
	TLSCertPath string `yaml:"tls_cert_path"`
	MaxRecv     int    `yaml:"grpc_max_recv_msg_size"`
	Internal    int    `yaml:"internal"`
}

type inlined struct {
	Backend string `yaml:"backend"`
}

type layoutConfig struct {
	Ring    ringConfig   `yaml:"ring"`
	Client  clientConfig `yaml:"ingester_client"`
	Storage struct {
		inlined `yaml:",inline"`
		Dir     string `yaml:"dir"`
	} `yaml:"blocks_storage"`
	Timeout time.Duration `yaml:"timeout"`
}

func (c *layoutConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Ring.KVStore.Store, "ring.store", "inmemory", "")
	f.StringVar(&c.Client.TLSCertPath, "ingester.client.tls-cert-path", "", "")
	f.IntVar(&c.Client.MaxRecv, "ingester.client.grpc-max-recv-msg-size", 100, "")
	f.StringVar(&c.Storage.Backend, "blocks-storage.backend", "filesystem", "")
}

func (c *layoutConfig) KeyMoves() []Move {
	return []Move{
		{File: "ingester_client.grpc_client_config.tls_cert_path", Struct: "ingester_client.tls_cert_path"},
		{File: "ingester_client.grpc_client_config.max_recv_msg_size", Struct: "ingester_client.grpc_max_recv_msg_size"},
		{File: "query_range.timeout", Struct: "timeout"},
		{Struct: "ingester_client.internal"},
	}
}

func (c *layoutConfig) CheckKey(path, value string) error {
	switch {
	case path == "storage" || strings.HasPrefix(path, "storage."):
		return errors.New("the chunks storage is not built here")
	case path == "ring.kvstore.store" && value == "dynamodb":
		return errors.New(`"dynamodb" is not built here`)
	}
	return nil
}

func loadLayout(t *testing.T, content string, args ...string) (*layoutConfig, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg layoutConfig
	err := Load(fs, append([]string{"-config.file=" + writeFile(t, content)}, args...), &cfg)
	return &cfg, err
}

func TestLayoutMovesKeys(t *testing.T) {
	cfg, err := loadLayout(t, `
ingester_client:
  grpc_client_config:
    tls_cert_path: client.crt
    max_recv_msg_size: 7
query_range:
  timeout: 3s
blocks_storage:
  backend: s3
  dir: d
ring:
  extra:
    a: {port: 1}
  members:
    - name: x
`, "-ingester.client.grpc-max-recv-msg-size=9")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Client.TLSCertPath != "client.crt" || cfg.Client.MaxRecv != 9 || cfg.Timeout != 3*time.Second || cfg.Storage.Backend != "s3" || cfg.Storage.Dir != "d" || cfg.Ring.Extra["a"].Port != 1 || cfg.Ring.Members[0].Name != "x" {
		t.Fatalf("cfg = %+v", cfg)
	}
}

func TestLayoutRefusals(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"unknown nested key", "ring:\n  kvstore:\n    store: consul\n    foo: 1\n", "unknown key ring.kvstore.foo (line 4)"},
		{"unknown key under a moved key's block", "ingester_client:\n  grpc_client_config:\n    bogus: 1\n", "unknown key ingester_client.grpc_client_config.bogus (line 3)"},
		{"unknown key in a list", "ring:\n  members:\n    - name: a\n      nick: b\n", "unknown key ring.members[0].nick (line 4)"},
		{"unknown key in a map value", "ring:\n  extra:\n    a:\n      host: h\n", "unknown key ring.extra.a.host (line 4)"},
		{"unknown key beside an inline struct", "blocks_storage:\n  backend: s3\n  bucket: b\n", "unknown key blocks_storage.bucket (line 3)"},
		{"the struct's own path of a moved key", "ingester_client:\n  tls_cert_path: c\n", "unknown key ingester_client.tls_cert_path (line 2): the configuration file reference names it ingester_client.grpc_client_config.tls_cert_path"},
		{"a struct field with no file key", "ingester_client:\n  internal: 1\n", "unknown key ingester_client.internal (line 2)"},
		{"a feature not built", "storage:\n  engine: chunks\n", "key storage (line 1): the chunks storage is not built here"},
		{"a value not built", "ring:\n  kvstore:\n    store: dynamodb\n", `key ring.kvstore.store (line 3): "dynamodb" is not built here`},
		{"every refused key, in line order", "zzz: 1\nring:\n  kvstore:\n    yyy: 2\n", "2 keys refused:\n  unknown key zzz (line 1)\n  unknown key ring.kvstore.yyy (line 4)"},
		{"refusals of each kind together", "storage: {}\nbogus: 1\ningester_client:\n  internal: 2\n", "3 keys refused:\n  key storage (line 1): the chunks storage is not built here\n  unknown key bogus (line 2)\n  unknown key ingester_client.internal (line 4)"},
		{"a typo beside a struct's key", "ring:\n  kvstor:\n    store: consul\n", "unknown key ring.kvstor (line 2): did you mean ring.kvstore?"},
		{"a typo beside a moved key", "ingester_client:\n  grpc_client_config:\n    tls_cert_pth: c\n", "unknown key ingester_client.grpc_client_config.tls_cert_pth (line 3): did you mean ingester_client.grpc_client_config.tls_cert_path?"},
		{"a typo of a moved key's block", "ingester_client:\n  grpc_client_confg:\n    tls_cert_path: c\n", "unknown key ingester_client.grpc_client_confg (line 2): did you mean ingester_client.grpc_client_config?"},
		{"no struct-only key suggested", "ingester_client:\n  internl: 1\n", "unknown key ingester_client.internl (line 2)"},
		{"no suggestion for a short key half different", "ring:\n  extra:\n    a:\n      host: h\n", "unknown key ring.extra.a.host (line 4)"},
		{"a moved key set twice", "query_range:\n  timeout: 1s\ntimeout: 2s\n", "unknown key timeout (line 3): the configuration file reference names it query_range.timeout"},
	} {
		_, err := loadLayout(t, tc.content)
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to end with %q", tc.name, err, tc.want)
		}
	}
}

// explainedConfig knows the keys and flags of a feature not built.
type explainedConfig struct {
	layoutConfig `yaml:",inline"`
}

func (c *explainedConfig) ExplainKey(path string) (string, bool) {
	switch path {
	case "ring.kvstore.consul.tls_enabled":
		return "Cortex's -consul.tls-enabled is not built here: no TLS to consul", false
	case "ring.kvstore.consul":
		return "", true
	}
	return "", false
}

func (c *explainedConfig) ExplainFlag(name string) string {
	if name == "consul.tls-enabled" {
		return "Cortex's -consul.tls-enabled is not built here: no TLS to consul"
	}
	return ""
}

func loadExplained(t *testing.T, content string, args ...string) (string, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "usage") }
	var cfg explainedConfig
	err := Load(fs, append([]string{"-config.file=" + writeFile(t, content)}, args...), &cfg)
	return out.String(), err
}

func TestExplainedKeysAndFlags(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"a key of a feature not built", "ring:\n  kvstore:\n    consul:\n      tls_enabled: true\n", "ring.kvstore.consul.tls_enabled (line 4): Cortex's -consul.tls-enabled is not built here: no TLS to consul"},
		{"an unknown key in a block of the explainer's", "ring:\n  kvstore:\n    consul:\n      bogus: 1\n", "unknown key ring.kvstore.consul.bogus (line 4)"},
		{"an unknown key the explainer does not know", "ring:\n  bogus: 1\n", "unknown key ring.bogus (line 2)"},
	} {
		_, err := loadExplained(t, tc.content)
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to end with %q", tc.name, err, tc.want)
		}
	}

	// A flag of a feature not built: refused with the explanation, then the
	// usage, as the flag package refuses an undefined flag.
	out, err := loadExplained(t, "", "-consul.tls-enabled=true")
	want := "Cortex's -consul.tls-enabled is not built here: no TLS to consul"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if out != want+"\nusage\n" {
		t.Errorf("output %q, want the explanation and the usage", out)
	}
	// A flag the explainer does not know keeps the flag package's error.
	out, err = loadExplained(t, "", "-no-such-flag")
	want = "flag provided but not defined: -no-such-flag"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if out != want+"\nusage\n" {
		t.Errorf("output %q, want the flag package's error and the usage", out)
	}
}

func TestLayoutTypeErrorKeepsTheFileLine(t *testing.T) {
	_, err := loadLayout(t, "\n\nquery_range:\n  timeout: forever\n")
	if err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("err = %v, want line 4", err)
	}
}

func TestDumpUsesTheFileLayout(t *testing.T) {
	cfg, err := loadLayout(t, "ingester_client:\n  grpc_client_config:\n    tls_cert_path: c.crt\n")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Dump(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"  grpc_client_config:\n    tls_cert_path: c.crt\n    max_recv_msg_size: 100\n", "query_range:\n  timeout: 0s\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("dump lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "internal") {
		t.Errorf("dump shows a struct-only key:\n%s", s)
	}
	// The dump loads back to the same configuration.
	back, err := loadLayout(t, s)
	if err != nil {
		t.Fatalf("loading the dump: %v\n%s", err, s)
	}
	if back.Client != cfg.Client || back.Timeout != cfg.Timeout || back.Ring.KVStore != cfg.Ring.KVStore {
		t.Errorf("round trip: got %+v, want %+v", back, cfg)
	}
}
