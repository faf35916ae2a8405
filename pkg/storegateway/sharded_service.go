package storegateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"

	"github.com/cortex-tls/cortex/pkg/shardring"
)

// ringCheckPeriod is how often a store-gateway looks for changes of the
// ring, syncing at once when instances came, went or changed state
// (Cortex's period): a new store-gateway's blocks are taken over, and a
// departed one's loaded by the others, without waiting for the next
// periodic sync.
const ringCheckPeriod = 5 * time.Second

// ShardedService runs the bucket store as one member of the store-gateway
// ring, loading only the blocks member owns (of each tenant's shard of the
// ring, with shuffle sharding). Starting, it joins the ring
// JOINING, waits for the ring to settle
// (-store-gateway.sharding-ring.wait-stability-*), loads its blocks and
// only then turns ACTIVE, so that queriers never ask it for blocks it has
// not loaded. It syncs every -blocks-storage.bucket-store.sync-interval and
// whenever the ring changes; stopping, it leaves the ring before closing
// its blocks.
func (s *BucketStore) ShardedService(member *shardring.Member, shards TenantShards) services.Service {
	s.SetBlockFilter(ownedBy(member, shards))
	var last ring.ReplicationSet
	ringState := func() ring.ReplicationSet {
		rs, err := member.Ring().GetAllHealthy(BlocksOwnerSync)
		if err != nil {
			return ring.ReplicationSet{}
		}
		return rs
	}
	starting := func(ctx context.Context) error {
		if err := member.Start(ctx); err != nil {
			return err // Start leaves nothing running when it fails
		}
		last = ringState()
		if err := s.SyncBlocks(ctx); err != nil {
			return errors.Join(fmt.Errorf("initial blocks sync: %w", err), member.Stop(), s.Close())
		}
		if err := member.Activate(ctx); err != nil {
			return errors.Join(err, member.Stop(), s.Close())
		}
		s.logger.Info("ACTIVE in the store-gateway ring", "instance", member.ID(), "addr", member.Addr(), "blocks_loaded", s.loadedCount())
		return nil
	}
	running := func(ctx context.Context) error {
		syncTicker := time.NewTicker(s.cfg.SyncInterval)
		defer syncTicker.Stop()
		ringTicker := time.NewTicker(ringCheckPeriod)
		defer ringTicker.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-syncTicker.C:
			case <-ringTicker.C:
				cur := ringState()
				if !ring.HasReplicationSetChanged(last, cur) {
					continue
				}
				last = cur
				s.logger.Info("the store-gateway ring changed; syncing blocks")
			}
			if err := s.SyncBlocks(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn("blocks sync failed; retrying at the next interval", "err", err)
			}
		}
	}
	stopping := func(error) error {
		// Leave first: queriers then stop asking for these blocks.
		return errors.Join(member.Stop(), s.Close())
	}
	return services.NewBasicService(starting, running, stopping).WithName("store-gateway-bucket-store")
}

// ownedBy serves the blocks member owns on the ring (on the tenant's shard
// of it with shuffle sharding), and keeps serving a
// block it no longer owns while one of the new owners is not ACTIVE yet
// (it may still be loading it). When the ring cannot be read, what is
// loaded stays loaded and nothing new is loaded.
func ownedBy(member *shardring.Member, shards TenantShards) BlockFilter {
	return func(tenant string, id ulid.ULID, loaded bool) bool {
		rs, err := shards.Ring(member.Ring(), tenant).Get(HashBlockID(id), BlocksOwnerSync, nil, nil, nil)
		if err != nil {
			return loaded
		}
		if rs.Includes(member.Addr()) {
			return true
		}
		if loaded {
			for _, inst := range rs.Instances {
				if inst.State != ring.ACTIVE {
					return true
				}
			}
		}
		return false
	}
}

// loadedCount is how many blocks are loaded, over all tenants.
func (s *BucketStore) loadedCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, blocks := range s.blocks {
		n += len(blocks)
	}
	return n
}
