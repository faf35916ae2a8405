package kv

import (
	"context"
	"flag"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kitlog "github.com/go-kit/log"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cortex-tls/cortex/pkg/kv/gossip"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// Values are rings, which the gossip store can merge; a ring holding one
// ingester stands for that ingester's name.
var ringCodec = ring.GetCodec()

func ringName(v any) string {
	d, _ := v.(*ring.Desc)
	if d == nil {
		return ""
	}
	for id := range d.Ingesters {
		return id
	}
	return ""
}

// put replaces key's ring with one holding only id.
func put(t *testing.T, c kv.Client, key, id string) {
	t.Helper()
	err := c.CAS(context.Background(), key, func(in any) (any, bool, error) {
		d, _ := in.(*ring.Desc)
		if d == nil {
			d = ring.NewDesc()
		}
		for old := range d.Ingesters {
			d.RemoveIngester(old)
		}
		d.AddIngester(id, "127.0.0.1:1", "", nil, ring.ACTIVE, time.Unix(1, 0), false, time.Time{}, nil)
		return d, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c kv.Client, key string) string {
	t.Helper()
	v, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return ringName(v)
}

// startGossip runs a one-member gossip store on loopback.
func startGossip(t *testing.T) *gossip.KV {
	t.Helper()
	var cfg gossip.Config
	cfg.RegisterFlags(flag.NewFlagSet("gossip", flag.PanicOnError))
	cfg.NodeName = "a"
	cfg.TCPTransport.BindAddrs = []string{"127.0.0.1"}
	cfg.TCPTransport.BindPort = 0
	logger := slog.New(slog.DiscardHandler)
	g, err := gossip.New(cfg, gossip.TLSConfig{}, tlsconfig.NewLoader(logger, prometheus.NewRegistry()), logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), g.Service()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), g.Service()) })
	return g
}

// The multi store over the gossip store and consul: writes go to the
// primary and are mirrored when mirroring is on; multi_kv_config switches
// the primary, and a running watch moves to the new one.
func TestMultiStoreWithGossip(t *testing.T) {
	g := startGossip(t)
	second, _ := consul.NewInMemoryClient(ringCodec, kitlog.NewNopLogger(), nil)
	cfg := kv.Config{Store: "multi"}
	cfg.Multi = kv.MultiConfig{Primary: "memberlist", Secondary: "consul", MirrorTimeout: time.Second}
	runtime := make(chan kv.MultiRuntimeConfig)
	cfg.Multi.ConfigProvider = func() <-chan kv.MultiRuntimeConfig { return runtime }
	reg := prometheus.NewRegistry()
	primary := g.Client(ringCodec)
	m := newMultiClient(cfg.Multi, primary, second, reg, slog.New(slog.DiscardHandler))

	put(t, m, "k", "v1")
	if got := get(t, primary, "k"); got != "v1" {
		t.Fatalf("gossip store has %v, want v1", got)
	}
	if got := get(t, second, "k"); got != "" {
		t.Fatalf("consul has %v without mirroring, want nothing", got)
	}

	on := true
	runtime <- kv.MultiRuntimeConfig{Mirroring: &on}
	testkit.Eventually(t, 10*time.Second, "mirroring on", m.mirroring.Load)
	put(t, m, "k", "v2")
	if got := get(t, second, "k"); got != "v2" {
		t.Fatalf("consul has %v with mirroring, want v2", got)
	}
	if got := testutil.ToFloat64(m.mirrorWrites); got != 1 {
		t.Errorf("mirror writes = %v, want 1", got)
	}

	var seen atomic.Value
	seen.Store("")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		m.WatchKey(ctx, "w", func(v any) bool { seen.Store(ringName(v)); return true })
	}()
	testkit.Eventually(t, 10*time.Second, "the watch running on the gossip store", func() bool {
		put(t, primary, "w", "from-gossip")
		return seen.Load() == "from-gossip"
	})

	runtime <- kv.MultiRuntimeConfig{PrimaryStore: "consul"}
	testkit.Eventually(t, 10*time.Second, "the primary switched", func() bool { return m.primary.Load() == 1 })
	if got := testutil.ToFloat64(m.primaryGauge.WithLabelValues("consul")); got != 1 {
		t.Errorf("multikv_primary_store{store=consul} = %v, want 1", got)
	}
	put(t, m, "k", "v3")
	if got := get(t, second, "k"); got != "v3" {
		t.Fatalf("consul, now primary, has %v, want v3", got)
	}
	if got := get(t, primary, "k"); got != "v3" {
		t.Fatalf("the gossip store, now mirrored to, has %v, want v3", got)
	}
	testkit.Eventually(t, 10*time.Second, "the watch moved to consul", func() bool {
		put(t, second, "w", "from-consul")
		return seen.Load() == "from-consul"
	})
	cancel()
	<-watchDone
}

func TestMultiStoreWithGossipIsBuiltByNewClient(t *testing.T) {
	g := startGossip(t)
	cfg := kv.Config{Store: "multi"}
	cfg.Multi = kv.MultiConfig{Primary: "memberlist", Secondary: "inmemory"}
	c, err := NewClient(cfg, ringCodec, g, "test", prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, "k", "v")
	if got := get(t, g.Client(ringCodec), "k"); got != "v" {
		t.Fatalf("the gossip store has %v, want v", got)
	}

	cfg.Multi.Secondary = "memberlist"
	if _, err := NewClient(cfg, ringCodec, g, "test", prometheus.NewRegistry(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), `primary and secondary stores must differ, both are "memberlist"`) {
		t.Fatalf("the same store twice: err = %v", err)
	}
}
