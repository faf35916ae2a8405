package querier

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"

	querierstats "github.com/cortex-tls/cortex/pkg/querier/stats"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// The store-gateways' statistics of each Series call reach the query's
// statistics (which the query-frontend logs), and, with
// -querier.store-gateway-query-stats-enabled, are logged per call.
func TestStoreGatewayQueryStats(t *testing.T) {
	b := newBlocksBucket(t, 2)
	g := startGateway(t, b.bkt, func(ulid.ULID) bool { return true })
	for _, enabled := range []bool{true, false} {
		var logs bytes.Buffer
		q := newStoreQueryable(b.bkt, gateways(g), sgConfig(), storeLimits(t, 0))
		q.logStats, q.logger = enabled, slog.New(slog.NewTextHandler(&logs, nil))

		qs := &querierstats.QueryStats{}
		ctx := querierstats.NewContext(tenant.Inject(context.Background(), sgTenant), qs)
		ss := mustQuerier(t, q, 0, 2*twoHours).Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "a"))
		n := 0
		for ss.Next() {
			n++
		}
		if ss.Err() != nil || n != 1 {
			t.Fatalf("%d series, %v", n, ss.Err())
		}
		// One posting of series a in each of the two blocks, of 4 bytes.
		if got := qs.StoreGatewayTouchedPostings.Load(); got != 2 {
			t.Errorf("touched postings %d, want 2", got)
		}
		if got := qs.StoreGatewayTouchedPostingBytes.Load(); got != 8 {
			t.Errorf("touched posting bytes %d, want 8", got)
		}
		line := `msg="store gateway series request stats" instance=` + g.Addr()
		logged := strings.Contains(logs.String(), line) &&
			strings.Contains(logs.String(), " blocks_queried=2 series_merged_count=1 chunks_merged_count=") &&
			strings.Contains(logs.String(), " postings_touched=2 postings_touched_size_sum=8 series_touched=2 ")
		if logged != enabled {
			t.Errorf("-querier.store-gateway-query-stats-enabled=%v, logs:\n%s", enabled, logs.String())
		}
	}

	enc := (&querierstats.QueryStats{}).Encode()
	if enc != "" {
		t.Fatalf("statistics of nothing encoded as %q", enc)
	}
	qs := &querierstats.QueryStats{}
	qs.AddStoreGatewayTouchedPostings(3, 12)
	back, err := querierstats.Decode(qs.Encode())
	if err != nil || back.StoreGatewayTouchedPostings.Load() != 3 || back.StoreGatewayTouchedPostingBytes.Load() != 12 {
		t.Fatalf("%q decoded as %v, %v", qs.Encode(), back, err)
	}
}
