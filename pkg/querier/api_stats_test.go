package querier

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// queryStatsAnswer is the part of an answer the statistics tests read.
type queryStatsAnswer struct {
	Data struct {
		Stats *struct {
			Timings *struct {
				EvalTotalTime *float64 `json:"evalTotalTime"`
			} `json:"timings"`
			Samples *struct {
				TotalQueryableSamplesPerStep [][2]float64 `json:"totalQueryableSamplesPerStep"`
				TotalQueryableSamples        int64        `json:"totalQueryableSamples"`
				PeakSamples                  int64        `json:"peakSamples"`
			} `json:"samples"`
		} `json:"stats"`
	} `json:"data"`
}

func queryStats(t *testing.T, body string) queryStatsAnswer {
	t.Helper()
	var a queryStatsAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return a
}

func TestAPIQueryStats(t *testing.T) {
	// up{job="a"} holds 1..5 at t0, +15s, ..., +60s: at steps t0+30s and
	// t0+60s a 30s range selects 2 samples (the range is left-open).
	const rangeQuery = `/prometheus/api/v1/query_range?query=count_over_time(up{job="a"}[30s])&start=1700000030&end=1700000060&step=30`

	t.Run("per-step statistics enabled", func(t *testing.T) {
		_, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.EnablePerStepStats = true }})
		code, body := get(t, srv, rangeQuery+"&stats=all", "team-a")
		if code != http.StatusOK {
			t.Fatalf("got %d %s", code, body)
		}
		s := queryStats(t, body).Data.Stats
		if s == nil || s.Samples == nil || s.Timings == nil || s.Timings.EvalTotalTime == nil {
			t.Fatalf("no timings and samples statistics in %s", body)
		}
		want := [][2]float64{{1700000030, 2}, {1700000060, 2}}
		if got := s.Samples.TotalQueryableSamplesPerStep; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("per-step samples %v, want %v", got, want)
		}
		if s.Samples.TotalQueryableSamples != 4 {
			t.Fatalf("total queryable samples %d, want 4", s.Samples.TotalQueryableSamples)
		}

		// stats=true (any value but all) answers the totals only, as Prometheus.
		_, body = get(t, srv, rangeQuery+"&stats=true", "team-a")
		s = queryStats(t, body).Data.Stats
		if s == nil || s.Samples == nil || s.Samples.TotalQueryableSamples != 4 || s.Samples.TotalQueryableSamplesPerStep != nil {
			t.Fatalf("stats=true: %s", body)
		}
		// Without the parameter, no statistics.
		_, body = get(t, srv, rangeQuery, "team-a")
		if strings.Contains(body, `"stats"`) {
			t.Fatalf("statistics without the stats parameter: %s", body)
		}
	})

	t.Run("per-step statistics disabled", func(t *testing.T) {
		_, srv := apiCluster(t, clusterOpts{})
		code, body := get(t, srv, rangeQuery+"&stats=all", "team-a")
		s := queryStats(t, body).Data.Stats
		if code != http.StatusOK || s == nil || s.Samples == nil {
			t.Fatalf("got %d %s", code, body)
		}
		if s.Samples.TotalQueryableSamplesPerStep != nil || s.Samples.TotalQueryableSamples != 4 {
			t.Fatalf("without -querier.per-step-stats-enabled: %s", body)
		}
	})

	t.Run("instant query", func(t *testing.T) {
		_, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.EnablePerStepStats = true }})
		_, body := get(t, srv, `/prometheus/api/v1/query?query=up&time=1700000060&stats=all`, "team-a")
		s := queryStats(t, body).Data.Stats
		if s == nil || s.Samples == nil || len(s.Samples.TotalQueryableSamplesPerStep) != 1 || s.Samples.TotalQueryableSamplesPerStep[0] != [2]float64{1700000060, 2} {
			t.Fatalf("instant query statistics: %s", body)
		}
	})
}

func TestAPIExperimentalFunctions(t *testing.T) {
	const path = `/prometheus/api/v1/query?query=sort_by_label(up,"job")&time=1700000060`

	_, srv := apiCluster(t, clusterOpts{})
	code, body := get(t, srv, path, "team-a")
	want := `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:1: parse error: function \"sort_by_label\" is not enabled"}`
	if code != http.StatusBadRequest || body != want {
		t.Fatalf("without -querier.enable-promql-experimental-functions: got %d %s\nwant 400 %s", code, body, want)
	}

	_, srv = apiCluster(t, clusterOpts{cfg: func(c *Config) { c.EnablePromQLExperimentalFunctions = true }})
	code, body = get(t, srv, `/prometheus/api/v1/query?query=sort_by_label_desc(up,"job")&time=1700000060`, "team-a")
	want = `{"status":"success","data":{"resultType":"vector","result":[` +
		`{"metric":{"__name__":"up","instance":"y","job":"b"},"value":[1700000060,"50"]},` +
		`{"metric":{"__name__":"up","instance":"x","job":"a"},"value":[1700000060,"5"]}]}}`
	if code != http.StatusOK || body != want {
		t.Fatalf("with -querier.enable-promql-experimental-functions: got %d %s\nwant %s", code, body, want)
	}
}
