package querier

import (
	"errors"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
)

// -querier.store-gateway-consistency-check-max-attempts bounds the rounds
// of asking another store-gateway for the blocks not answered yet: a block
// only the third store-gateway holds is found in three rounds, not two.
func TestStoreGatewayConsistencyCheckMaxAttempts(t *testing.T) {
	b := newBlocksBucket(t, 2)
	lacksSecond := func(id ulid.ULID) bool { return id != b.blocks[1] }
	for _, tc := range []struct {
		attempts int
		ok       bool
	}{{2, false}, {3, true}} {
		first := startGateway(t, b.bkt, lacksSecond)
		second := startGateway(t, b.bkt, lacksSecond)
		third := startGateway(t, b.bkt, func(ulid.ULID) bool { return true })
		sg := newStoreQueryable(b.bkt, gateways(first, second, third), sgConfig(), storeLimits(t, 0))
		cfg := defaultConfig()
		cfg.StoreGatewayConsistencyCheckMaxAttempts = tc.attempts
		WithStore(sg)(&Querier{cfg: cfg, split: &timeSplitQueryable{}})
		if sg.maxAttempts != tc.attempts {
			t.Fatalf("WithStore set %d attempts, want %d", sg.maxAttempts, tc.attempts)
		}

		got, err := selectStore(sg, 0, 2*twoHours-1)
		if !tc.ok {
			var unavailable *unavailableError
			if !errors.As(err, &unavailable) || !strings.Contains(err.Error(), "consistency check failed because some blocks were not queried: "+b.blocks[1].String()) {
				t.Fatalf("%d attempts: %v, want a consistency error naming %s", tc.attempts, err, b.blocks[1])
			}
			if third.calls.Load() != 0 {
				t.Fatalf("%d attempts: the third store-gateway was asked", tc.attempts)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%d attempts: %v", tc.attempts, err)
		}
		wantMinutes(t, got["a"], 0, 2*twoHours)
	}
	cfg := defaultConfig()
	if cfg.StoreGatewayConsistencyCheckMaxAttempts != 3 {
		t.Fatalf("default %d, want Cortex's 3", cfg.StoreGatewayConsistencyCheckMaxAttempts)
	}
	cfg.StoreGatewayConsistencyCheckMaxAttempts = 0
	if err := cfg.Validate(); err == nil || err.Error() != "-querier.store-gateway-consistency-check-max-attempts must be at least 1, got 0" {
		t.Fatalf("0 attempts: %v", err)
	}
}
