package cortex

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// The zone and shuffle sharding settings load from Cortex's flags and
// YAML keys, and the queriers read the tenants' shards when the
// distributors write to them.
func TestZoneAndShuffleShardingConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cortex.yaml")
	yaml := `
distributor:
  sharding_strategy: shuffle-sharding
querier:
  shuffle_sharding_ingesters_lookback_period: 13h
ingester:
  lifecycler:
    availability_zone: zone-b
    ring:
      zone_awareness_enabled: true
limits:
  ingestion_tenant_shard_size: 4
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	logger := (&testkit.Buffer{}).Logger()
	for name, args := range map[string][]string{
		"yaml": {"-config.file=" + file},
		"flags": {
			"-distributor.sharding-strategy=shuffle-sharding",
			"-querier.shuffle-sharding-ingesters-lookback-period=13h",
			"-ingester.availability-zone=zone-b",
			"-distributor.zone-awareness-enabled=true",
			"-distributor.ingestion-tenant-shard-size=4",
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := loadConfig(t, args...).finalize(logger)
			lc := cfg.Ingester.LifecyclerConfig
			if lc.Zone != "zone-b" || !lc.RingConfig.ZoneAwarenessEnabled {
				t.Fatalf("ingester zone %q, zone awareness %v", lc.Zone, lc.RingConfig.ZoneAwarenessEnabled)
			}
			if cfg.Distributor.ShardingStrategy != "shuffle-sharding" || cfg.Limits.IngestionTenantShardSize != 4 {
				t.Fatalf("sharding strategy %q, shard size %d", cfg.Distributor.ShardingStrategy, cfg.Limits.IngestionTenantShardSize)
			}
			if !cfg.Querier.ShuffleShardIngesters || cfg.Querier.ShuffleShardingIngestersLookbackPeriod != 13*time.Hour {
				t.Fatalf("querier: shuffle shards %v, lookback %s", cfg.Querier.ShuffleShardIngesters, cfg.Querier.ShuffleShardingIngestersLookbackPeriod)
			}
		})
	}
	if cfg := loadConfig(t).finalize(logger); cfg.Querier.ShuffleShardIngesters || cfg.Distributor.ShardingStrategy != "default" {
		t.Fatalf("defaults: sharding strategy %q, querier shuffle shards %v", cfg.Distributor.ShardingStrategy, cfg.Querier.ShuffleShardIngesters)
	}
}
