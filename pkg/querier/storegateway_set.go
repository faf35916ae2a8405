package querier

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"

	"github.com/cortex-tls/cortex/pkg/storegateway"
)

// StaticGateways are the store-gateways of -querier.store-gateway-addresses,
// each holding every block (no sharding). A block's store-gateways are
// tried from one chosen by the block's hash, so each block is read by one
// store-gateway (whose caches hold it) and the blocks spread over all.
type StaticGateways []StoreGateway

func (s StaticGateways) Candidates(_ string, id ulid.ULID) ([]StoreGateway, error) {
	if len(s) == 0 {
		return nil, errors.New("no store-gateway to query (-querier.store-gateway-addresses)")
	}
	start := int(storegateway.HashBlockID(id) % uint32(len(s)))
	return append(append(make([]StoreGateway, 0, len(s)), s[start:]...), s[:start]...), nil
}

// RingGateways finds a block's store-gateways on the store-gateway ring (on
// the tenant's shard of it, with shuffle sharding): the ACTIVE owners of
// the block, the primary first, extended past owners
// that are not ACTIVE (they keep their blocks until the new owners are).
// Connections are dialled on first use and closed once their store-gateway
// has left the ring.
type RingGateways struct {
	ring   ring.ReadRing
	shards storegateway.TenantShards
	dial   func(addr string) (StoreGateway, error)

	mu    sync.Mutex
	conns map[string]StoreGateway
}

// NewRingGateways returns the store-gateways of r, connected with dial;
// shards must be the store-gateways' own.
func NewRingGateways(r ring.ReadRing, shards storegateway.TenantShards, dial func(addr string) (StoreGateway, error)) *RingGateways {
	return &RingGateways{ring: r, shards: shards, dial: dial, conns: map[string]StoreGateway{}}
}

func (g *RingGateways) Candidates(tenant string, id ulid.ULID) ([]StoreGateway, error) {
	rs, err := g.shards.Ring(g.ring, tenant).Get(storegateway.HashBlockID(id), storegateway.BlocksRead, nil, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("finding the block's store-gateways on the ring: %w", err)
	}
	out := make([]StoreGateway, 0, len(rs.Instances))
	for _, inst := range rs.Instances {
		c, err := g.conn(inst.Addr)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (g *RingGateways) conn(addr string) (StoreGateway, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.conns[addr]; ok {
		return c, nil
	}
	g.prune()
	c, err := g.dial(addr)
	if err != nil {
		return nil, fmt.Errorf("store-gateway %s: %w", addr, err)
	}
	g.conns[addr] = c
	return c, nil
}

// prune closes the connections to store-gateways no longer in the ring, so
// that their number follows the ring's size.
func (g *RingGateways) prune() {
	rs, err := g.ring.GetAllHealthy(storegateway.BlocksOwnerSync)
	if err != nil {
		return
	}
	for addr, c := range g.conns {
		if !rs.Includes(addr) {
			closeGateway(c)
			delete(g.conns, addr)
		}
	}
}

// Close closes every connection.
func (g *RingGateways) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for addr, c := range g.conns {
		closeGateway(c)
		delete(g.conns, addr)
	}
	return nil
}

func closeGateway(c StoreGateway) {
	if cl, ok := c.(io.Closer); ok {
		_ = cl.Close()
	}
}
