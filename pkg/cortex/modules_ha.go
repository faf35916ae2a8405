package cortex

import (
	"fmt"

	dskitkv "github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/ha"
	"github.com/cortex-tls/cortex/pkg/kv"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// haLimits reads each tenant's -distributor.ha-tracker.max-clusters.
type haLimits struct{ o *validation.Overrides }

func (l haLimits) MaxHAClusters(userID string) int { return l.o.For(userID).HAMaxClusters }

// initHATracker builds the HA tracker of -distributor.ha-tracker.enable,
// on the KV store of -distributor.ha-tracker.store.
func (t *Cortex) initHATracker() (services.Service, error) {
	cfg := t.Cfg.Distributor.HATracker
	if !cfg.EnableHATracker || !t.Cfg.runs(Distributor) {
		return nil, nil
	}
	if cfg.KVStore.Store == "memberlist" && t.gossip == nil {
		return nil, fmt.Errorf("-distributor.ha-tracker.store=memberlist: the gossip KV (-memberlist.*) is not running in this process")
	}
	reg := prometheus.WrapRegistererWithPrefix("cortex_", t.Registry)
	client, err := kv.NewClient(cfg.KVStore, ha.Codec{}, t.gossip, "distributor-hatracker", reg, t.Logger, kv.WithTLS(t.TLS, "distributor.ha-tracker."))
	if err != nil {
		return nil, fmt.Errorf("HA tracker: -distributor.ha-tracker.store=%s: %w", cfg.KVStore.Store, err)
	}
	if cfg.KVStore.Store == "memberlist" {
		// Keep the elections apart from the rings' keys in the gossip, as
		// dskit's consul and etcd clients keep them under the prefix.
		client = dskitkv.PrefixClient(client, cfg.KVStore.Prefix)
	}
	tr, err := ha.New(cfg, client, haLimits{t.Overrides}, t.Logger.With("component", "ha-tracker"), t.Registry)
	if err != nil {
		return nil, err
	}
	t.haTracker = tr
	return tr, nil
}
