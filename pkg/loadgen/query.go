package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// QueryConfig describes a query load against any Prometheus-API URL.
type QueryConfig struct {
	URL              string // e.g. https://localhost:9009/prometheus
	Tenant           string
	Queries          []string
	Rate             float64       // queries per second, spread over the set
	Range            time.Duration // range queries cover this much history; 0: instant queries only
	Step             time.Duration
	Duration         time.Duration
	Concurrency      int
	ProgressInterval time.Duration
}

// DefaultQueries are dashboard-like queries over the series RunWrite makes.
var DefaultQueries = []string{
	`sum(rate(loadgen_metric[1m]))`,
	`sum by (label_2) (loadgen_metric)`,
	`topk(5, loadgen_metric)`,
	`count(loadgen_metric)`,
	`avg_over_time(loadgen_metric{label_2="value-1"}[5m])`,
}

// RunQuery sends queries at the configured rate, open loop, and returns the
// summary. Every query alternates between an instant and, when Range is
// set, a range query.
func RunQuery(ctx context.Context, cfg QueryConfig, client *http.Client, progress io.Writer) (*Summary, error) {
	if cfg.Rate <= 0 || len(cfg.Queries) == 0 {
		return nil, fmt.Errorf("-query-rate must be positive and at least one query given")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	// Queries in flight when the duration ends still finish and count: a
	// slow query cut off would otherwise be missing from the percentiles.
	queryCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	stats := newRecorder()
	start := time.Now()
	defer stats.progress(progress, cfg.ProgressInterval, start)()

	slots := make(chan struct{}, cfg.Concurrency)
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			for i := 0; i < cap(slots); i++ {
				slots <- struct{}{}
			}
			return stats.summary(time.Since(start)), nil
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			// Open loop: a query that cannot start on time is an error, not a delay.
			stats.record(0, 0, "skipped")
			continue
		}
		q := cfg.Queries[n%len(cfg.Queries)]
		ranged := cfg.Range > 0 && n%2 == 1
		go func() {
			defer func() { <-slots }()
			queryOnce(queryCtx, client, cfg, q, ranged, stats)
		}()
	}
}

func queryOnce(ctx context.Context, client *http.Client, cfg QueryConfig, q string, ranged bool, stats *recorder) {
	now := time.Now()
	form := url.Values{"query": {q}, "time": {formatTime(now)}}
	path := "/api/v1/query"
	if ranged {
		step := cfg.Step
		if step <= 0 {
			step = max(cfg.Range/250, time.Second)
		}
		path = "/api/v1/query_range"
		form = url.Values{"query": {q}, "start": {formatTime(now.Add(-cfg.Range))}, "end": {formatTime(now)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(cfg.URL, "/")+path, strings.NewReader(form.Encode()))
	if err != nil {
		stats.record(0, 0, "request")
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cfg.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", cfg.Tenant)
	}
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			stats.recordError(time.Since(began), "transport", err.Error())
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
		stats.recordError(time.Since(began), strconv.Itoa(resp.StatusCode), firstLine(body))
		return
	}
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		stats.recordError(time.Since(began), "bad_body", "decoding the answer: "+err.Error())
		return
	}
	if body.Status != "success" {
		stats.recordError(time.Since(began), "bad_body", fmt.Sprintf("status %q: %s", body.Status, body.Error))
		return
	}
	stats.record(time.Since(began), 0, strconv.Itoa(resp.StatusCode))
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}
