package compactor

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func TestConfigDefaults(t *testing.T) {
	var cfg Config
	fs := newFlagSet()
	cfg.RegisterFlags(fs)
	want := map[string]string{
		"compactor.block-ranges":           "2h0m0s,12h0m0s,24h0m0s",
		"compactor.data-dir":               "./data",
		"compactor.compaction-interval":    "1h0m0s",
		"compactor.compaction-retries":     "3",
		"compactor.compaction-concurrency": "1",
		"compactor.cleanup-interval":       "15m0s",
		"compactor.cleanup-concurrency":    "20",
		"compactor.deletion-delay":         "12h0m0s",
		"compactor.tenant-cleanup-delay":   "6h0m0s",
		"compactor.sharding-enabled":       "false",
		// Cortex's ring defaults, but for the store (inmemory here).
		"compactor.ring.store":                       "inmemory",
		"compactor.ring.prefix":                      "collectors/",
		"compactor.ring.heartbeat-period":            "5s",
		"compactor.ring.heartbeat-timeout":           "1m0s",
		"compactor.ring.wait-stability-min-duration": "1m0s",
		"compactor.ring.wait-stability-max-duration": "5m0s",
		"compactor.ring.instance-interface-names":    "eth0,en0",
	}
	for name, def := range want {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("flag -%s not registered", name)
			continue
		}
		if f.Value.String() != def {
			t.Errorf("-%s defaults to %q, want %q", name, f.Value.String(), def)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}

	if err := fs.Parse([]string{"-compactor.block-ranges=1h,4h", "-compactor.deletion-delay=30m"}); err != nil {
		t.Fatal(err)
	}
	if len(cfg.BlockRanges) != 2 || cfg.BlockRanges[0] != time.Hour || cfg.BlockRanges[1] != 4*time.Hour || cfg.DeletionDelay != 30*time.Minute {
		t.Fatalf("parsed %+v", cfg)
	}
}

func TestConfigYAML(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(newFlagSet())
	in := `
block_ranges: [1h, 2h, 8h]
data_dir: /var/cortex/compactor
compaction_interval: 30m
compaction_concurrency: 4
cleanup_interval: 5m
deletion_delay: 2h
tenant_cleanup_delay: 1h
sharding_enabled: true
sharding_ring:
  kvstore:
    store: memberlist
  heartbeat_period: 10s
`
	if err := yaml.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.BlockRanges.String() != "1h0m0s,2h0m0s,8h0m0s" || cfg.DataDir != "/var/cortex/compactor" ||
		cfg.CompactionInterval != 30*time.Minute || cfg.CompactionConcurrency != 4 || cfg.CleanupInterval != 5*time.Minute ||
		cfg.DeletionDelay != 2*time.Hour || cfg.CompactionRetries != 3 || cfg.TenantCleanupDelay != time.Hour ||
		!cfg.ShardingEnabled || cfg.ShardingRing.KVStore.Store != "memberlist" || cfg.ShardingRing.HeartbeatPeriod != 10*time.Second ||
		cfg.ShardingRing.HeartbeatTimeout != time.Minute {
		t.Fatalf("decoded %+v", cfg)
	}
	out, err := yaml.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "block_ranges:\n    - 1h0m0s\n    - 2h0m0s\n    - 8h0m0s\n") {
		t.Fatalf("encoded block_ranges as:\n%s", out)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		flag string
	}{
		{func(c *Config) { c.BlockRanges = nil }, "-compactor.block-ranges"},
		{func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour, 3 * time.Hour} }, "-compactor.block-ranges"},
		{func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour, time.Hour} }, "-compactor.block-ranges"},
		{func(c *Config) { c.DataDir = "" }, "-compactor.data-dir"},
		{func(c *Config) { c.CompactionInterval = 0 }, "-compactor.compaction-interval"},
		{func(c *Config) { c.CompactionConcurrency = 0 }, "-compactor.compaction-concurrency"},
		{func(c *Config) { c.CleanupInterval = 0 }, "-compactor.cleanup-interval"},
		{func(c *Config) { c.CleanupConcurrency = 0 }, "-compactor.cleanup-concurrency"},
		{func(c *Config) { c.DeletionDelay = -time.Second }, "-compactor.deletion-delay"},
		{func(c *Config) { c.TenantCleanupDelay = -time.Second }, "-compactor.tenant-cleanup-delay"},
		{func(c *Config) {
			c.ShardingEnabled = true
			c.ShardingRing.WaitStabilityMaxDuration = time.Second
		}, "-compactor.ring.wait-stability-max-duration"},
	} {
		var cfg Config
		cfg.RegisterFlags(newFlagSet())
		tc.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("got %v, want an error naming %s", err, tc.flag)
		}
	}
}
