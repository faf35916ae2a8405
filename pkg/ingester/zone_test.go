package ingester

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func TestRingMemberRegistersItsZone(t *testing.T) {
	kvClient := newKV(t)
	cfg := testConfig(t, t.TempDir(), kvClient)
	cfg.LifecyclerConfig.RingConfig.ZoneAwarenessEnabled = true
	cfg.LifecyclerConfig.Zone = "zone-b"
	h := startHarness(t, cfg, newTestLimits(t, nil))
	testkit.EventuallyNil(t, 10*time.Second, "the ingester to be ready", func() error { return h.ing.CheckReady(context.Background()) })
	if inst := ringDesc(t, kvClient).Ingesters[cfg.LifecyclerConfig.ID]; inst.Zone != "zone-b" {
		t.Fatalf("ring entry in zone %q, want zone-b (-ingester.availability-zone)", inst.Zone)
	}
}

func TestZoneAwarenessNeedsAZone(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.LifecyclerConfig.RingConfig.ZoneAwarenessEnabled = true
	_, err := newRingMember(cfg.LifecyclerConfig, ringStoreOf(cfg), testLogger(t), prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "-distributor.zone-awareness-enabled needs -ingester.availability-zone") {
		t.Fatalf("newRingMember() = %v, want an error naming -ingester.availability-zone", err)
	}
}
