package client

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// -distributor.sign-write-requests-keys reads as Cortex's comma-separated
// list from a flag or a file, and never prints the keys.
func TestSigningKeys(t *testing.T) {
	var k SigningKeys
	if err := k.Set("new,old"); err != nil || !slices.Equal(k, SigningKeys{"new", "old"}) || k.String() != "********" {
		t.Fatalf("flag: %v %v %q", k, err, k.String())
	}
	var cfg struct {
		Keys SigningKeys `yaml:"sign_write_requests_keys"`
	}
	if err := yaml.Unmarshal([]byte("sign_write_requests_keys: k1,k2\n"), &cfg); err != nil || !slices.Equal(cfg.Keys, SigningKeys{"k1", "k2"}) {
		t.Fatalf("file: %v %v", cfg.Keys, err)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil || strings.Contains(string(out), "k1") || !strings.Contains(string(out), "sign_write_requests_keys: '********'") {
		t.Fatalf("dump %q %v, want the keys masked", out, err)
	}
	var empty SigningKeys
	if empty.String() != "" {
		t.Fatalf("no keys print as %q", empty.String())
	}
}
