package frontend

import (
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// TestExperimentalFunctionsAreShardedWhenEnabled: with the queriers'
// -querier.enable-promql-experimental-functions the frontend parses a query
// using an experimental aggregation, and shards it; without it the query
// goes whole to a querier, which answers with Prometheus' parse error.
func TestExperimentalFunctionsAreShardedWhenEnabled(t *testing.T) {
	const query = `limitk by (job) (1, rate(x[5m]))`
	if qs := shardQueries(promqlParser, query, 2); qs != nil {
		t.Fatalf("sharded without experimental functions: %q", qs)
	}
	f := &Frontend{}
	WithParserOptions(parser.Options{EnableExperimentalFunctions: true})(f)
	qs := shardQueries(f.promql(), query, 2)
	want := []string{
		`limitk by (job) (1, rate(x{__CORTEX_SHARDS__="{\"shard_index\":0,\"total_shards\":2,\"by\":true,\"labels\":[\"job\"]}"}[5m]))`,
		`limitk by (job) (1, rate(x{__CORTEX_SHARDS__="{\"shard_index\":1,\"total_shards\":2,\"by\":true,\"labels\":[\"job\"]}"}[5m]))`,
	}
	if len(qs) != 2 || qs[0] != want[0] || qs[1] != want[1] {
		t.Fatalf("shard queries %q, want %q", qs, want)
	}
	if got := pinStartEnd(f.promql(), `sort_by_label(x @ start(), "a")`, 1000, 2000); got != `sort_by_label(x @ 1.000, "a")` {
		t.Fatalf("@ start() pinned as %q", got)
	}
}
