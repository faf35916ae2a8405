package ha

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
)

// A tracker started with -distributor.ha-tracker.enable-startup-sync holds
// the stored elections before any sample; without it, it reads an election
// when the cluster first sends, and a replica that is not elected is
// refused either way.
func TestStartupSync(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	kvc, closer := consul.NewInMemoryClient(Codec{}, log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	start := func(sync bool) *Tracker {
		cfg := testConfig()
		cfg.EnableStartupSync = sync
		tr, err := New(cfg, kvc, maxClusters(0), nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		tr.now = c.Now
		if err := services.StartAndAwaitRunning(context.Background(), tr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), tr) })
		return tr
	}
	cached := func(tr *Tracker) int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.elected["team-a"])
	}

	first := start(false)
	if err := first.CheckReplica(context.Background(), "team-a", "prom", "replica-1"); err != nil {
		t.Fatal(err)
	}

	// starting is what runs before the distributor takes traffic.
	for _, sync := range []bool{true, false} {
		cfg := testConfig()
		cfg.EnableStartupSync = sync
		tr, err := New(cfg, kvc, maxClusters(0), nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.starting(context.Background()); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[sync]; cached(tr) != want {
			t.Errorf("enable-startup-sync=%v: %d elections cached once started, want %d", sync, cached(tr), want)
		}
	}
	synced, lazy := start(true), start(false)
	for name, tr := range map[string]*Tracker{"synced": synced, "lazy": lazy} {
		var nm ReplicasNotMatchError
		if err := tr.CheckReplica(context.Background(), "team-a", "prom", "replica-2"); !errors.As(err, &nm) || nm.Elected != "replica-1" {
			t.Errorf("%s tracker: replica-2 got %v, want refused for the elected replica-1", name, err)
		}
	}
}
