package validation

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestQueryOverSeveralTenantsObeysTheirSmallestLimits(t *testing.T) {
	defaults := Limits{MaxSeriesPerQuery: 0, QueryVerticalShardSize: 4, MaxQueryLength: model.Duration(24 * time.Hour), MaxQueriersPerTenant: 0, HAClusterLabel: "cluster"}
	o := NewOverrides(defaults, func() map[string]*Limits {
		return map[string]*Limits{
			"a": {MaxSeriesPerQuery: 100, QueryVerticalShardSize: 8, MaxQueryLength: model.Duration(time.Hour), MaxQueriersPerTenant: 0.5, HAClusterLabel: "a-cluster"},
			"b": {MaxSeriesPerQuery: 50, QueryVerticalShardSize: 0, MaxQueryLength: 0, MaxQueriersPerTenant: 3, HAClusterLabel: "b-cluster"},
		}
	})
	l := o.For("a|b|c")
	if l.MaxSeriesPerQuery != 50 || l.QueryVerticalShardSize != 4 || l.MaxQueryLength != model.Duration(time.Hour) || l.MaxQueriersPerTenant != 0.5 || l.HAClusterLabel != "a-cluster" {
		t.Fatalf("limits of a|b|c: %+v", *l)
	}
	// An unlimited tenant's query with a limited one: the limit.
	if l := o.For("b|c"); l.MaxQueryLength != model.Duration(24*time.Hour) {
		t.Fatalf("max_query_length of b|c: %v, want 1d", l.MaxQueryLength)
	}
	// Every tenant unlimited: unlimited.
	if l := o.For("b|b"); l.MaxQueryLength != 0 {
		t.Fatalf("max_query_length of b|b: %v, want 0", l.MaxQueryLength)
	}
	// The tenants' own limits are untouched.
	if o.For("a").MaxSeriesPerQuery != 100 || o.For("c").QueryVerticalShardSize != 4 {
		t.Fatal("a tenant's own limits changed")
	}
}
