package querier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

var readResponseTypes = []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS}

// rawReadQueries posts queries asking for response type rt.
func rawReadQueries(t *testing.T, srv *httptest.Server, rt prompb.ReadRequest_ResponseType, queries ...*prompb.Query) (int, string) {
	t.Helper()
	body := encodeReadRequest(t, &prompb.ReadRequest{Queries: queries, AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt}})
	code, _, b := rawRead(t, srv, body, "team-a")
	return code, string(b)
}

// max_query_lookback moves a remote read's start up and max_query_length
// refuses a longer range, as for PromQL.
func TestRemoteReadTimeRangeLimits(t *testing.T) {
	up := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}
	job := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "job", Value: "a"}

	_, srv := apiCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxQueryLength = model.Duration(30 * time.Second) }})
	for _, rt := range readResponseTypes {
		code, body := rawReadQueries(t, srv, rt, readQuery(t, t0, t0+60000, up, job))
		if want := "the query time range exceeds the limit (query length: 1m0s, limit: 30s, set by -store.max-query-length or max_query_length)"; code != http.StatusUnprocessableEntity || !strings.HasPrefix(body, want) {
			t.Fatalf("%s over max_query_length: got %d %q, want 422 %q", rt, code, body, want)
		}
		ss, err := readClient(t, srv, "/prometheus/api/v1/read", "team-a", rt).Read(context.Background(), readQuery(t, t0+15000, t0+45000, up, job), true)
		if err != nil {
			t.Fatalf("%s within max_query_length: %v", rt, err)
		}
		if got, want := dumpSeries(t, ss), `{__name__="up", instance="x", job="a"} 15000=2 30000=3 45000=4`+"\n"; got != want {
			t.Fatalf("%s within max_query_length: got\n%swant\n%s", rt, got, want)
		}
	}

	c, srv := apiCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxQueryLookback = model.Duration(time.Minute) }})
	c.querier.queryable.now = func() time.Time { return time.UnixMilli(t0 + 90000) }
	for _, rt := range readResponseTypes {
		ss, err := readClient(t, srv, "/prometheus/api/v1/read", "team-a", rt).Read(context.Background(), readQuery(t, t0, t0+60000, up, job), true)
		if err != nil {
			t.Fatalf("%s with max_query_lookback: %v", rt, err)
		}
		if got, want := dumpSeries(t, ss), `{__name__="up", instance="x", job="a"} 30000=3 45000=4 60000=5`+"\n"; got != want {
			t.Fatalf("%s with max_query_lookback: got\n%swant\n%s", rt, got, want)
		}
	}
}

// The fetched-data limits hold for remote read, in either response type,
// before anything is streamed.
func TestRemoteReadFetchedLimits(t *testing.T) {
	up := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}
	for _, tc := range []struct {
		name   string
		limits func(*validation.Limits)
		want   string
	}{
		{"max_fetched_series_per_query", func(l *validation.Limits) { l.MaxFetchedSeriesPerQuery = 1 },
			"the query hit the max number of series fetched limit (limit: 1 series, set by -querier.max-fetched-series-per-query or max_fetched_series_per_query)"},
		{"max_fetched_chunk_bytes_per_query", func(l *validation.Limits) { l.MaxFetchedChunkBytesPerQuery = 20 },
			"the query hit the aggregated chunk size limit (limit: 20 bytes, set by -querier.max-fetched-chunk-bytes-per-query or max_fetched_chunk_bytes_per_query)"},
		{"max_fetched_data_bytes_per_query", func(l *validation.Limits) { l.MaxFetchedDataBytesPerQuery = 40 },
			"the query hit the aggregated data size limit (limit: 40 bytes, set by -querier.max-fetched-data-bytes-per-query or max_fetched_data_bytes_per_query)"},
	} {
		_, srv := apiCluster(t, clusterOpts{limits: tc.limits})
		for _, rt := range readResponseTypes {
			code, body := rawReadQueries(t, srv, rt, readQuery(t, t0, t0+60000, up))
			if code != http.StatusUnprocessableEntity || !strings.HasPrefix(body, tc.want) {
				t.Fatalf("%s, %s: got %d %q, want 422 %q", tc.name, rt, code, body, tc.want)
			}
		}
	}
}

// -querier.max-samples bounds the whole answer, summed over its queries,
// and a streamed answer as well: the chunk that takes it over is not
// sent.
func TestRemoteReadSampleLimit(t *testing.T) {
	job := func(j string) *prompb.Query {
		return readQuery(t, t0, t0+60000,
			&prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"},
			&prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "job", Value: j})
	}
	const want = "exceeded sample limit (6, set by -querier.max-samples): read fewer series or a shorter time range\n"
	_, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.MaxSamples = 6 }})
	// Five samples each: one query is within the limit, two are not.
	if code, body := rawReadQueries(t, srv, prompb.ReadRequest_SAMPLES, job("a")); code != http.StatusOK {
		t.Fatalf("one query of 5 samples: got %d %q", code, body)
	}
	if code, body := rawReadQueries(t, srv, prompb.ReadRequest_SAMPLES, job("a"), job("b")); code != http.StatusBadRequest || body != want {
		t.Fatalf("two queries of 5 samples: got %d %q, want 400 %q", code, body, want)
	}

	_, srv = apiCluster(t, clusterOpts{cfg: func(c *Config) { c.MaxSamples = 4 }})
	code, body := rawReadQueries(t, srv, prompb.ReadRequest_STREAMED_XOR_CHUNKS, job("a"))
	if want := strings.Replace(want, "(6,", "(4,", 1); code != http.StatusBadRequest || body != want {
		t.Fatalf("streamed chunk of 5 samples: got %d %q, want 400 %q", code, body, want)
	}
	// Over the limit once the first query's frame is out: the stream is
	// cut, and Prometheus's reader reports it rather than a short answer.
	_, srv = apiCluster(t, clusterOpts{cfg: func(c *Config) { c.MaxSamples = 6 }})
	ss, err := readClient(t, srv, "/prometheus/api/v1/read", "team-a", prompb.ReadRequest_STREAMED_XOR_CHUNKS).ReadMultiple(context.Background(), []*prompb.Query{job("a"), job("b")}, true)
	if err == nil {
		for ss.Next() {
		}
		err = ss.Err()
	}
	if err == nil {
		t.Fatal("a streamed answer over -querier.max-samples after its first frame read as complete")
	}
}

// A remote read ends at -querier.timeout with 503, in either response
// type, as a PromQL query does.
func TestRemoteReadTimeout(t *testing.T) {
	up := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}
	c, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.Timeout = 200 * time.Millisecond }})
	block := make(chan struct{})
	defer close(block)
	for _, f := range c.ingesters {
		f.block = block
	}
	for _, rt := range readResponseTypes {
		code, body := rawReadQueries(t, srv, rt, readQuery(t, t0, t0+60000, up))
		// The deadline shows as the context's error or, when it ends an
		// ingester's stream first, as that stream's gRPC DeadlineExceeded.
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "context deadline exceeded") && !strings.Contains(body, "code = DeadlineExceeded") {
			t.Fatalf("%s: got %d %q, want 503 with the deadline", rt, code, body)
		}
	}
}
