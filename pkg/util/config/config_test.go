package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/flagext"
	"gopkg.in/yaml.v3"
)

type serverConfig struct {
	HTTPListenPort int            `yaml:"http_listen_port"`
	Timeout        time.Duration  `yaml:"timeout"`
	Password       flagext.Secret `yaml:"password"`
}

func (c *serverConfig) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.HTTPListenPort, "server.http-listen-port", 80, "HTTP port.")
	f.DurationVar(&c.Timeout, "server.timeout", 5*time.Second, "Timeout.")
	f.Var(&c.Password, "server.password", "Password.")
}

type testConfig struct {
	Target  flagext.StringSliceCSV `yaml:"target"`
	Verbose bool                   `yaml:"verbose"`
	Name    string                 `yaml:"name"`
	Server  serverConfig           `yaml:"server"`
}

func (c *testConfig) RegisterFlags(f *flag.FlagSet) {
	c.Target = flagext.StringSliceCSV{"all"}
	f.Var(&c.Target, "target", "Modules to run.")
	f.BoolVar(&c.Verbose, "verbose", false, "Verbose.")
	f.StringVar(&c.Name, "name", "cortex", "Name.")
	c.Server.RegisterFlags(f)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cfg.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, args ...string) (*testConfig, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg testConfig
	err := Load(fs, args, &cfg)
	return &cfg, err
}

func mustLoad(t *testing.T, args ...string) *testConfig {
	t.Helper()
	cfg, err := load(t, args...)
	if err != nil {
		t.Fatalf("Load(%q): %v", args, err)
	}
	return cfg
}

func TestDefaultsWithoutFile(t *testing.T) {
	cfg := mustLoad(t)
	want := testConfig{
		Target: flagext.StringSliceCSV{"all"},
		Name:   "cortex",
		Server: serverConfig{HTTPListenPort: 80, Timeout: 5 * time.Second},
	}
	if !reflect.DeepEqual(*cfg, want) {
		t.Fatalf("got %+v, want %+v", *cfg, want)
	}
}

func TestFileOverridesDefaults(t *testing.T) {
	path := writeFile(t, `
target: distributor,ingester
server:
  http_listen_port: 9009
  timeout: 1m30s
  password: hunter2
`)
	cfg := mustLoad(t, "-config.file", path)
	if got, want := cfg.Target, (flagext.StringSliceCSV{"distributor", "ingester"}); !reflect.DeepEqual(got, want) {
		t.Errorf("target = %q, want %q", got, want)
	}
	if cfg.Server.HTTPListenPort != 9009 {
		t.Errorf("port = %d, want 9009", cfg.Server.HTTPListenPort)
	}
	if cfg.Server.Timeout != 90*time.Second {
		t.Errorf("timeout = %v, want 1m30s", cfg.Server.Timeout)
	}
	if cfg.Server.Password.String() != "hunter2" {
		t.Errorf("password = %q, want hunter2", cfg.Server.Password.String())
	}
	// Keys the file omits keep their flag defaults.
	if cfg.Name != "cortex" {
		t.Errorf("name = %q, want default cortex", cfg.Name)
	}
}

func TestFlagOverridesFile(t *testing.T) {
	path := writeFile(t, "name: fromfile\nserver:\n  http_listen_port: 9009\n  timeout: 10s\n")
	// Every spelling of -config.file, placed before and after other flags,
	// including a boolean flag that must not swallow the next argument.
	for _, args := range [][]string{
		{"-config.file", path, "-server.http-listen-port=1234"},
		{"--config.file=" + path, "-server.http-listen-port", "1234"},
		{"-verbose", "-server.http-listen-port", "1234", "-config.file=" + path},
	} {
		cfg := mustLoad(t, args...)
		if cfg.Server.HTTPListenPort != 1234 {
			t.Errorf("%q: port = %d, want 1234 from flag", args, cfg.Server.HTTPListenPort)
		}
		if cfg.Name != "fromfile" || cfg.Server.Timeout != 10*time.Second {
			t.Errorf("%q: file values not applied: %+v", args, cfg)
		}
	}
}

func TestUnknownKey(t *testing.T) {
	path := writeFile(t, "server:\n  http_listen_port: 1\n  bogus_key: 2\n")
	_, err := load(t, "-config.file="+path)
	if err == nil {
		t.Fatal("expected error for unknown key")
	}
	want := `-config.file "` + path + `": unknown key server.bogus_key (line 3)`
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestBadType(t *testing.T) {
	for name, content := range map[string]string{
		"int":      "name: x\nserver:\n  http_listen_port: notanumber\n",
		"duration": "name: x\nserver:\n  timeout: forever\n",
	} {
		path := writeFile(t, content)
		_, err := load(t, "-config.file="+path)
		if err == nil {
			t.Fatalf("%s: expected error", name)
		}
		for _, want := range []string{path, "line 3"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not mention %q", name, err, want)
			}
		}
	}
}

func TestMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := load(t, "-config.file", path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v does not name %q", err, path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not wrap os.ErrNotExist", err)
	}
}

func TestEmptyFile(t *testing.T) {
	cfg := mustLoad(t, "-config.file", writeFile(t, "# only a comment\n"))
	if cfg.Server.HTTPListenPort != 80 {
		t.Errorf("port = %d, want default 80", cfg.Server.HTTPListenPort)
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("CORTEX_TEST_PORT", "7777")
	t.Setenv("CORTEX_TEST_NAME", "envname")
	path := writeFile(t, "name: $CORTEX_TEST_NAME\nserver:\n  http_listen_port: ${CORTEX_TEST_PORT}\n")

	cfg := mustLoad(t, "-config.file", path, "-config.expand-env")
	if cfg.Server.HTTPListenPort != 7777 || cfg.Name != "envname" {
		t.Errorf("env not expanded: %+v", cfg)
	}

	// Without the flag the text is taken literally.
	cfg = mustLoad(t, "-config.file", writeFile(t, "name: ${CORTEX_TEST_NAME}\n"))
	if cfg.Name != "${CORTEX_TEST_NAME}" {
		t.Errorf("name = %q, want literal", cfg.Name)
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		// A missing file must not mask the help request.
		_, err := load(t, "-config.file=/does/not/exist", arg)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: err = %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestBadFlag(t *testing.T) {
	_, err := load(t, "-no-such-flag")
	if err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("err = %v, want unknown flag error", err)
	}
	_, err = load(t, "-server.http-listen-port=x")
	if err == nil || !strings.Contains(err.Error(), "server.http-listen-port") {
		t.Fatalf("err = %v, want invalid value error", err)
	}
}

func TestDump(t *testing.T) {
	path := writeFile(t, "target: a,b\nserver:\n  timeout: 2m\n")
	cfg := mustLoad(t, "-config.file", path, "-server.password=hunter2")

	out, err := Dump(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "hunter2") {
		t.Fatalf("secret leaked:\n%s", s)
	}
	for _, want := range []string{`password: '********'`, "timeout: 2m0s", "target: a,b", "  http_listen_port: 80"} {
		if !strings.Contains(s, want) {
			t.Errorf("dump missing %q:\n%s", want, s)
		}
	}

	// Everything but the masked secret round-trips through the file path.
	var back testConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	if err := Load(fs, []string{"-config.file", writeFile(t, s)}, &back); err != nil {
		t.Fatal(err)
	}
	if back.Server.Password.String() != "********" {
		t.Errorf("password = %q, want the mask", back.Server.Password.String())
	}
	back.Server.Password = cfg.Server.Password
	if !reflect.DeepEqual(back, *cfg) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, *cfg)
	}

	// An empty secret stays empty rather than looking set.
	out, err = Dump(&testConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Server map[string]any `yaml:"server"`
	}
	if err := yaml.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if got := m.Server["password"]; got != "" {
		t.Errorf("empty password dumped as %q", got)
	}
}
