package frontend

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// TestMaxQueryResponseSize: -frontend.max-query-response-size bounds the
// sum of the querier answers to one query or query_range request, over its
// split queries; a query over it fails with 422 naming the limit.
func TestMaxQueryResponseSize(t *testing.T) {
	const answer = `{"status":"success","data":{"resultType":"matrix","result":[]}}`
	var calls atomic.Int64
	querier := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	})
	size := len(answer)
	limited := func(n int) *validation.Limits {
		l := *defaultLimits(nil).For("x")
		l.MaxQueryResponseSize = int64(n)
		return &l
	}
	h := newHarnessWith(t, querier, WithLimits(defaultLimits(map[string]*validation.Limits{
		"three-parts": limited(3 * size), "two-parts": limited(3*size - 1), "none": limited(size - 1),
	})))
	// Three split queries of one answer each (-querier.split-queries-by-interval=24h).
	rangeQuery := url.Values{"query": {"up"}, "start": {"0"}, "end": {"176400"}, "step": {"3600"}}
	if code, body := h.get(context.Background(), "three-parts", "/prometheus/api/v1/query_range", rangeQuery); code != http.StatusOK {
		t.Fatalf("query_range within the limit: %d %s", code, body)
	}
	if calls.Load() != 3 {
		t.Fatalf("the query_range ran as %d queries, want 3", calls.Load())
	}
	want := `{"error":"the query response size exceeds limit (limit: ` + strconv.Itoa(3*size-1) + ` bytes)","errorType":"execution","status":"error"}`
	if code, body := h.get(context.Background(), "two-parts", "/prometheus/api/v1/query_range", rangeQuery); code != http.StatusUnprocessableEntity || body != want {
		t.Fatalf("query_range over the limit: %d %s, want 422 %s", code, body, want)
	}
	if code, body := h.get(context.Background(), "none", "/prometheus/api/v1/query", url.Values{"query": {"up"}}); code != http.StatusUnprocessableEntity {
		t.Fatalf("instant query over the limit: %d %s, want 422", code, body)
	}
	// Other APIs are not bounded, as in Cortex.
	if code, body := h.get(context.Background(), "none", "/prometheus/api/v1/labels", nil); code != http.StatusOK {
		t.Fatalf("labels of a tenant with a response size limit: %d %s", code, body)
	}
	// Tenants without a limit are not bounded.
	if code, body := h.get(context.Background(), "other", "/prometheus/api/v1/query_range", rangeQuery); code != http.StatusOK {
		t.Fatalf("query_range of a tenant without a limit: %d %s", code, body)
	}
}
