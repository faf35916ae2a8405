package distributor

import (
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// The values of -distributor.sharding-strategy, Cortex's.
const (
	ShardingStrategyDefault = "default"
	ShardingStrategyShuffle = "shuffle-sharding"
)

// tenantRing is the part of the ingester ring the tenant's series are
// written to: with shuffle sharding and a shard size, the tenant's
// shuffle shard (dskit's ShuffleShard, the same subring for the same
// ring, so every distributor and querier picks the same ingesters; with
// zone awareness, shardSize/zones ingesters of each zone, rounded up);
// otherwise the whole ring. Either way without the read-only ingesters
// (POST /ingester/mode?mode=READONLY), which take no new samples.
func (d *Distributor) tenantRing(userID string, shardSize int) ring.ReadRing {
	if d.cfg.ShardingStrategy != ShardingStrategyShuffle || shardSize <= 0 {
		// dskit's ShuffleShard with no size is the ring without its
		// read-only instances (the ring itself when there are none),
		// cached until the ring changes: one key for every tenant.
		return d.ring.ShuffleShard(writableRingKey, 0)
	}
	return d.ring.ShuffleShard(userID, shardSize)
}

// writableRingKey caches the writable ring; no tenant ID is empty.
const writableRingKey = ""

// seriesKey is the ring token of a series.
func (d *Distributor) seriesKey(userHash uint32, ls []prompb.Label) uint32 {
	if d.cfg.ShardByAllLabels {
		return shardByAllLabels(userHash, ls)
	}
	name, _ := validation.MetricName(ls)
	return hashAdd32a(userHash, name)
}

// fnv32a, written out so that hashing a series allocates nothing.
const (
	offset32 = 2166136261
	prime32  = 16777619
)

func hashAdd32a(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime32
	}
	return h
}

func shardByUser(userID string) uint32 { return hashAdd32a(offset32, userID) }

// shardByAllLabels hashes a tenant's hash with sorted labels, as Cortex's
// ShardByAllLabels does (with fnv32a).
func shardByAllLabels(userHash uint32, ls []prompb.Label) uint32 {
	h := userHash
	for _, l := range ls {
		h = hashAdd32a(h, l.Name)
		h = hashAdd32a(h, l.Value)
	}
	return h
}
