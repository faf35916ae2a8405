package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

func chunksLimits(limit int) *validation.Overrides {
	var l validation.Limits
	l.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	l.MaxFetchedChunksPerQuery = limit
	return validation.NewOverrides(l, nil)
}

// selectEvery reads every series of q over the store's two blocks.
func selectEvery(q storage.Queryable) (storage.Querier, error) {
	querier, err := q.Querier(0, 2*twoHours-1)
	if err != nil {
		return nil, err
	}
	ss := querier.Select(tenant.Inject(context.Background(), sgTenant), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
	}
	return querier, ss.Err()
}

// -querier.max-fetched-chunks-per-query counts the chunks of the ingesters'
// and the store-gateways' answers together: a query fetching exactly the
// limit passes, one chunk over is refused naming the flag, though either
// side alone is within it.
func TestFetchedChunksLimit(t *testing.T) {
	b := newBlocksBucket(t, 2)
	g := startGateway(t, b.bkt, func(ulid.ULID) bool { return true })
	queryables := func(limit int) (ingesters, store storage.Queryable) {
		c := newCluster(t, clusterOpts{ingesters: 1, rf: 1, limits: func(l *validation.Limits) { l.MaxFetchedChunksPerQuery = limit }})
		for _, j := range []string{"a", "b", "c"} {
			c.add(sgTenant, series(map[string]string{"__name__": "m", "job": j}, sample(1000, 1), sample(2000, 2)))
		}
		return c.querier.queryable, newStoreQueryable(b.bkt, gateways(g), sgConfig(), chunksLimits(limit))
	}
	ing, st := queryables(0)
	iq, err := selectEvery(ing)
	if err != nil {
		t.Fatal(err)
	}
	sq, err := selectEvery(st)
	if err != nil {
		t.Fatal(err)
	}
	fromIngesters, fromStore := iq.(*ingesterQuerier).chunks.Load(), sq.(*storeGatewayQuerier).chunks.Load()
	if fromIngesters != 3 || fromStore < 2 {
		t.Fatalf("counted %d chunks from the ingesters and %d from the store-gateways, want 3 (one per series) and at least 2", fromIngesters, fromStore)
	}
	total := int(fromIngesters + fromStore)

	for _, tc := range []struct {
		limit int
		err   string
	}{
		{0, ""},
		{total, ""},
		{total - 1, fmt.Sprintf("the query hit the max number of chunks limit (limit: %d chunks, set by -querier.max-fetched-chunks-per-query or max_fetched_chunks_per_query)", total-1)},
	} {
		ing, st := queryables(tc.limit)
		for name, q := range map[string]storage.Queryable{"ingesters": ing, "store-gateways": st} {
			if _, err := selectEvery(q); err != nil {
				t.Errorf("limit %d, %s alone: %v", tc.limit, name, err)
			}
		}
		_, err := selectEvery(&timeSplitQueryable{ingesters: ing, store: st, now: time.Now})
		if tc.err == "" {
			if err != nil {
				t.Errorf("limit %d, both: %v", tc.limit, err)
			}
			continue
		}
		var le *limitError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("limit %d, both: %v, want the limit error %q", tc.limit, err, tc.err)
		}
	}
}
