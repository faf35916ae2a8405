package cortex

import (
	"os"
	"slices"
	"testing"
)

// Cortex's own runtime configuration example loads unchanged: per-tenant
// overrides, multi_kv_config and ingester_limits.
func TestCortexRuntimeConfigExampleLoads(t *testing.T) {
	f, err := os.Open("../../integration/testdata/cortex-examples/runtime-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := loadConfig(t)
	v, err := newRuntimeConfigLoader(&cfg).load(f)
	if err != nil {
		t.Fatal(err)
	}
	rc := v.(*RuntimeConfigValues)
	for tenant, exemplars := range map[string]int{"tenant1": 1, "tenant2": 0} {
		l := rc.TenantLimits[tenant]
		if l == nil || l.IngestionRate != 10000 || l.MaxExemplars != exemplars {
			t.Errorf("%s's limits %+v: want ingestion_rate 10000 and max_exemplars %d", tenant, l, exemplars)
		}
	}
	if rc.Multi.PrimaryStore != "memberlist" || rc.Multi.Mirroring == nil || *rc.Multi.Mirroring {
		t.Errorf("multi_kv_config %+v: want primary memberlist, mirroring off", rc.Multi)
	}
	if il := rc.IngesterLimits; il == nil || il.MaxIngestionRate != 42000 || il.MaxInflightPushRequests != 10000 {
		t.Errorf("ingester_limits %+v: want max_ingestion_rate 42000 and max_inflight_push_requests 10000", il)
	}
}

// A ring whose store is multi with the gossip store as one of its two
// stores runs the gossip KV, whichever of the two is primary.
func TestMultiStoreOverGossipRunsTheGossipKV(t *testing.T) {
	for _, args := range [][]string{
		{"-ring.store=multi", "-multi.primary=memberlist", "-multi.secondary=inmemory"},
		{"-ring.store=multi", "-multi.primary=inmemory", "-multi.secondary=memberlist"},
	} {
		cfg := loadConfig(t, args...)
		if !slices.Contains(cfg.ringStores(), "memberlist") {
			t.Errorf("%v: the rings' stores %v leave the gossip KV off", args, cfg.ringStores())
		}
	}
}
