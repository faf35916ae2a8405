package tenantfederation

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// BenchmarkSelect reads 20,000 series: from one tenant (read upstream
// unchanged), or split among 2 and 10 tenants (read per tenant, labelled,
// merged), to measure what federation adds to a Select.
func BenchmarkSelect(b *testing.B) {
	const total = 20000
	for _, n := range []int{1, 2, 10} {
		s := &tenantStore{series: map[string][]labels.Labels{}}
		var ids []string
		for i := range n {
			id := fmt.Sprintf("tenant-%02d", i)
			ids = append(ids, id)
			for j := range total / n {
				s.series[id] = append(s.series[id], labels.FromStrings("__name__", "up", "instance", fmt.Sprintf("host-%05d", j), "job", "api"))
			}
		}
		org := ids[0]
		for _, id := range ids[1:] {
			org += tenant.Separator + id
		}
		q := NewQueryable(s, Config{Enabled: true, MaxConcurrent: 16})
		ctx := tenant.Inject(context.Background(), org)
		m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				qr, _ := q.Querier(0, 1)
				set := qr.Select(ctx, true, &storage.SelectHints{}, m)
				got := 0
				for set.Next() {
					got++
				}
				if set.Err() != nil || got != total/n*n {
					b.Fatalf("%d series, %v", got, set.Err())
				}
				_ = qr.Close()
			}
		})
	}
}
