package cortex

import (
	"fmt"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"

	cortexkv "github.com/cortex-tls/cortex/pkg/kv"
	"github.com/cortex-tls/cortex/pkg/ruler"
	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// rulerSharding builds the ruler's membership of the ruler ring
// (-ruler.enable-sharding): the member advertising the gRPC server, the
// ownership of groups on it (the tenant's shard with shuffle sharding),
// and the peers GET /api/v1/rules asks over the -ruler.client TLS link
// (and, with -ruler.enable-ha-evaluation, the liveness checks).
// Without sharding it returns no option and no member.
func (t *Cortex) rulerSharding() ([]ruler.Option, *shardring.Member, error) {
	cfg := t.Cfg.Ruler.Sharding
	if !cfg.EnableSharding {
		return nil, nil, nil
	}
	if cfg.Ring.KVStore.Store == "memberlist" && t.gossip == nil {
		return nil, nil, fmt.Errorf("-ruler.ring.store=memberlist: the gossip KV (-memberlist.*) is not running in this process")
	}
	reg := prometheus.WrapRegistererWithPrefix("cortex_", t.Registry)
	kvStore, err := cortexkv.NewClient(cfg.Ring.KVStore, ring.GetCodec(), t.gossip, "ruler-ring", reg, t.Logger)
	if err != nil {
		return nil, nil, fmt.Errorf("ruler ring: -ruler.ring.store=%s: %w", cfg.Ring.KVStore.Store, err)
	}
	host, port := t.advertisedGRPC()
	member, err := shardring.NewMember(cfg.Ring, ruler.RingName, ruler.RingKey, kvStore, host, port, ring.ACTIVE, t.Logger.With("component", Ruler), reg)
	if err != nil {
		return nil, nil, fmt.Errorf("ruler ring: %w", err)
	}
	clientTLS, err := tlsconfig.NewClient(ruler.ClientTLSPrefix, t.Cfg.Ruler.Client.TLS, t.TLS)
	if err != nil {
		return nil, nil, err
	}
	pool := ruler.NewClientPool(t.Cfg.Ruler.Client, clientTLS)
	t.closers = append(t.closers, pool)
	shards := ruler.TenantShards{
		Strategy:  cfg.ShardingStrategy,
		ShardSize: func(tenant string) int { return t.Overrides.For(tenant).RulerTenantShardSize },
	}
	owner := ruler.RingOwner(member.Ring(), member.Addr(), shards)
	if t.Cfg.Ruler.EnableHAEvaluation {
		owner = ruler.HARingOwner(member.Ring(), member.Addr(), shards, pool, t.Cfg.Ruler.LivenessCheckTimeout, t.Logger.With("component", Ruler))
	}
	return []ruler.Option{
		ruler.WithOwner(owner),
		ruler.WithPeers(ruler.NewRingPeers(member.Ring(), member.Addr(), shards, pool)),
	}, member, nil
}
