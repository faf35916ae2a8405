package querier

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// The tenant's query limits hold for /api/v1/query_exemplars as for
// PromQL: the lookback moves the start up, a longer range than
// max_query_length and an answer over the fetched series or bytes limits
// are refused with 422.
func TestQueryExemplarsLimits(t *testing.T) {
	lbls := func(job string) []prompb.Label {
		return prompb.FromLabels(labels.FromStrings("__name__", "requests_total", "job", job), nil)
	}
	a := []prompb.TimeSeries{
		{Labels: lbls("a"), Exemplars: []prompb.Exemplar{exemplarOf(t0, 1, "t1"), exemplarOf(t0+1500, 2.5, "t2"), exemplarOf(t0+3000, 3, "t3")}},
		{Labels: lbls("b"), Exemplars: []prompb.Exemplar{exemplarOf(t0+10, 7, "b1")}},
	}
	b := []prompb.TimeSeries{
		{Labels: lbls("a"), Exemplars: []prompb.Exemplar{exemplarOf(t0+2000, 4, "t4")}},
	}
	const path = `/prometheus/api/v1/query_exemplars?query=requests_total{job="a"}&start=1700000000&end=1700000010`
	at := func(ms int64) func() time.Time { return func() time.Time { return time.UnixMilli(ms) } }

	for _, tc := range []struct {
		name   string
		limits func(*validation.Limits)
		now    func() time.Time
		path   string
		code   int
		want   string // the whole body for 200, a part of it otherwise
	}{
		{
			name:   "max_query_lookback moves the start up",
			limits: func(l *validation.Limits) { l.MaxQueryLookback = model.Duration(1750 * time.Millisecond) },
			now:    at(t0 + 3750),
			path:   path,
			code:   http.StatusOK,
			want: `{"status":"success","data":[{"seriesLabels":{"__name__":"requests_total","job":"a"},"exemplars":[` +
				`{"labels":{"trace_id":"t4"},"value":"4","timestamp":1700000002},` +
				`{"labels":{"trace_id":"t3"},"value":"3","timestamp":1700000003}]}]}`,
		},
		{
			name:   "max_query_lookback leaves nothing",
			limits: func(l *validation.Limits) { l.MaxQueryLookback = model.Duration(time.Second) },
			now:    at(t0 + time.Hour.Milliseconds()),
			path:   path,
			code:   http.StatusOK,
			want:   `{"status":"success","data":[]}`,
		},
		{
			name:   "max_query_length",
			limits: func(l *validation.Limits) { l.MaxQueryLength = model.Duration(5 * time.Second) },
			path:   path,
			code:   http.StatusUnprocessableEntity,
			want:   "the query time range exceeds the limit (query length: 10s, limit: 5s, set by -store.max-query-length or max_query_length)",
		},
		{
			name: "max_query_length after the lookback",
			limits: func(l *validation.Limits) {
				l.MaxQueryLength = model.Duration(9 * time.Second)
				l.MaxQueryLookback = model.Duration(time.Hour)
			},
			now:  at(t0 + time.Hour.Milliseconds() + 1750),
			path: path,
			code: http.StatusOK,
			want: `{"status":"success","data":[{"seriesLabels":{"__name__":"requests_total","job":"a"},"exemplars":[` +
				`{"labels":{"trace_id":"t4"},"value":"4","timestamp":1700000002},` +
				`{"labels":{"trace_id":"t3"},"value":"3","timestamp":1700000003}]}]}`,
		},
		{
			name:   "max_fetched_series_per_query",
			limits: func(l *validation.Limits) { l.MaxFetchedSeriesPerQuery = 1 },
			path:   `/prometheus/api/v1/query_exemplars?query=requests_total&start=1700000000&end=1700000010`,
			code:   http.StatusUnprocessableEntity,
			want:   "the query hit the max number of series fetched limit (limit: 1 series, set by -querier.max-fetched-series-per-query or max_fetched_series_per_query)",
		},
		{
			name:   "max_fetched_data_bytes_per_query",
			limits: func(l *validation.Limits) { l.MaxFetchedDataBytesPerQuery = 50 },
			path:   path,
			code:   http.StatusUnprocessableEntity,
			want:   "the query hit the aggregated data size limit (limit: 50 bytes, set by -querier.max-fetched-data-bytes-per-query or max_fetched_data_bytes_per_query)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := exemplarServerWith(t, tc.limits, tc.now, a, b)
			code, body := get(t, srv, tc.path, "team-a")
			if code != tc.code || (code == http.StatusOK && body != tc.want) || (code != http.StatusOK && !strings.Contains(body, tc.want)) {
				t.Fatalf("got %d\n%s\nwant %d\n%s", code, body, tc.code, tc.want)
			}
		})
	}
}

// An exemplar query ends at -querier.timeout with 503, as a PromQL query.
func TestQueryExemplarsTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	cfg := defaultConfig()
	cfg.Timeout = 200 * time.Millisecond
	srv := exemplarServerBlocking(t, nil, nil, cfg, block, nil, nil)
	code, body := get(t, srv, "/prometheus/api/v1/query_exemplars?query=requests_total&start=1700000000&end=1700000010", "team-a")
	if want := `{"status":"error","errorType":"timeout","error":"query timed out in exemplar query"}`; code != http.StatusServiceUnavailable || body != want {
		t.Fatalf("got %d %s, want 503 timeout", code, body)
	}
}
