package querier

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// max_query_length and max_query_lookback hold for PromQL and the series
// API as for remote read and exemplars.
func TestQueryTimeRangeLimits(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxQueryLength = model.Duration(time.Minute) }})
	// The lookback delta counts: PromQL reads (t0-5m, t0+60s].
	code, body := get(t, srv, "/prometheus/api/v1/query_range?query=up&start=1700000000&end=1700000060&step=15", "team-a")
	if want := "the query time range exceeds the limit (query length: 5m59.999s, limit: 1m0s, set by -store.max-query-length or max_query_length)"; code != http.StatusUnprocessableEntity || !strings.Contains(body, want) {
		t.Fatalf("query_range over max_query_length: %d %s, want 422 %q", code, body, want)
	}

	c, srv := apiCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxQueryLookback = model.Duration(time.Minute) }})
	c.querier.queryable.now = func() time.Time { return time.UnixMilli(t0 + 90000) }
	// The start moves up to t0+30s: only the samples from there on count.
	code, body = get(t, srv, `/prometheus/api/v1/query?query=count_over_time(up{job="a"}[2m])&time=1700000060`, "team-a")
	if want := `"value":[1700000060,"3"]`; code != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("query with max_query_lookback: %d %s, want %s", code, body, want)
	}
	code, body = get(t, srv, "/prometheus/api/v1/series?match[]=up&start=1699990000&end=1700000010", "team-a")
	if want := `{"status":"success","data":[]}`; code != http.StatusOK || body != want {
		t.Fatalf("series entirely before max_query_lookback: %d %s, want %s", code, body, want)
	}
}
