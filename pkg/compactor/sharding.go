package compactor

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"

	"github.com/grafana/dskit/ring"

	"github.com/cortex-tls/cortex/pkg/shardring"
)

// ringOp finds a tenant's compactor among the ACTIVE instances only, as
// Cortex's: a joining or leaving compactor owns nothing.
var ringOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// WithRing shards the tenants over the compactors of member's ring
// (-compactor.sharding-enabled): this compactor compacts and cleans up
// only the tenants it owns. The compactor joins the ring when it starts
// and leaves it when it stops.
func WithRing(member *shardring.Member) Option {
	return func(c *Compactor) { c.ring = member }
}

// WithTenantShardSize gives each tenant's -compactor.tenant-shard-size:
// with -compactor.sharding-strategy=shuffle-sharding, a tenant's compactor
// is taken from the tenant's shuffle shard of that many compactors (0:
// the whole ring).
func WithTenantShardSize(size func(tenant string) float64) Option {
	return func(c *Compactor) { c.shardSize = size }
}

// tenantShardSize is the tenant's shard size in compactors: a value below
// 1 is a fraction of the ring's instances, rounded up, as in Cortex.
func (c *Compactor) tenantShardSize(tenant string) int {
	v := c.shardSize(tenant)
	if v < 1 {
		return int(math.Ceil(v * float64(c.ring.Ring().InstancesCount())))
	}
	return int(math.Ceil(v))
}

// tenantHash is the tenant's token in the ring, fnv32a of its ID as in
// Cortex.
func tenantHash(tenant string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	return h.Sum32()
}

// ownedTenants keeps the tenants this compactor owns: all of them without
// a ring. A tenant whose owner cannot be found is left to the next run.
func (c *Compactor) ownedTenants(tenants []string) []string {
	return c.keepTenants(tenants, "finding the tenant's compactor in the ring; skipping the tenant", c.owns)
}

// shardTenants keeps the tenants whose shard of the ring this compactor
// is in, as Cortex's partitioning strategy: every compactor of a tenant's
// shuffle shard compacts the tenant, the partitions' visit markers
// keeping them off one another's partitions. A tenant whose shard cannot
// be read is left to the next run.
func (c *Compactor) shardTenants(tenants []string) []string {
	return c.keepTenants(tenants, "finding the tenant's compactors in the ring; skipping the tenant", func(r ring.ReadRing, _ string) (bool, error) {
		rs, err := r.GetAllHealthy(ringOp)
		if err != nil {
			return false, err
		}
		return rs.Includes(c.ring.Addr()), nil
	})
}

// keepTenants keeps the tenants keep accepts, given each tenant's ring
// (the whole ring or the tenant's shuffle shard of it); all of them
// without a ring. A tenant keep fails on is logged with failed and left
// to the next run.
func (c *Compactor) keepTenants(tenants []string, failed string, keep func(r ring.ReadRing, tenant string) (bool, error)) []string {
	if c.ring == nil {
		return tenants
	}
	shards := shardring.TenantShards{Strategy: c.cfg.ShardingStrategy}
	if c.shardSize != nil {
		shards.ShardSize = c.tenantShardSize
	}
	kept := make([]string, 0, len(tenants))
	for _, t := range tenants {
		ok, err := keep(shards.Ring(c.ring.Ring(), t), t)
		if err != nil {
			c.logger.Warn(failed, "user", t, "err", err)
			continue
		}
		if ok {
			kept = append(kept, t)
		}
	}
	return kept
}

// owns reports whether this compactor is the tenant's in r, the whole
// ring or the tenant's shuffle shard of it.
func (c *Compactor) owns(r ring.ReadRing, tenant string) (bool, error) {
	rs, err := r.Get(tenantHash(tenant), ringOp, nil, nil, nil)
	if err != nil {
		return false, err
	}
	return rs.Includes(c.ring.Addr()), nil
}

func (c *Compactor) joinRing(ctx context.Context) error {
	if c.ring == nil {
		return nil
	}
	if err := c.ring.Start(ctx); err != nil {
		return fmt.Errorf("compactor ring (-%s.*): %w", RingFlagPrefix, err)
	}
	c.logger.Info("joined the compactor ring", "id", c.ring.ID(), "addr", c.ring.Addr())
	return nil
}

func (c *Compactor) stopping(error) error {
	if c.ring == nil {
		return nil
	}
	return c.ring.Stop()
}

const shardingDisabledPage = "Compactor has no ring because sharding is disabled (-compactor.sharding-enabled=false).\n"

// RingHandler serves /compactor/ring: the ring's status page, or, as in
// Cortex, a note that sharding is disabled.
func (c *Compactor) RingHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.ring == nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte(shardingDisabledPage))
			return
		}
		c.ring.ServeHTTP(w, r)
	})
}
