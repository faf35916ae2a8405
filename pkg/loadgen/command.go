package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// Command runs `cortex loadgen [flags]` and returns the exit code.
func Command(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cortex loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		mode    = fs.String("mode", "write", "write: remote-write load; query: PromQL load against a Prometheus API.")
		url     = fs.String("url", "https://localhost:9009/api/v1/push", "Remote-write URL (write mode) or Prometheus API base URL, e.g. https://localhost:9009/prometheus (query mode).")
		tenant  = fs.String("tenant", "loadgen", "Tenant sent as X-Scope-OrgID; empty sends none.")
		asJSON  = fs.Bool("json", false, "Print the summary as JSON on stdout.")
		tlsCfg  tlsconfig.ClientConfig
		write   WriteConfig
		query   QueryConfig
		queries = fs.String("queries", "", "Semicolon-separated PromQL queries for query mode. Empty uses a built-in dashboard-like set.")
	)
	tlsCfg.RegisterFlagsWithPrefix("client", fs)
	fs.IntVar(&write.Series, "series", 20000, "Active series.")
	fs.IntVar(&write.LabelsPerSeries, "labels", 8, "Labels per series, the metric name included.")
	fs.DurationVar(&write.ScrapeInterval, "scrape-interval", 0, "Each series gets one sample per interval. 0 runs closed loop: every writer sends its next request as soon as the last is acknowledged.")
	fs.IntVar(&write.SeriesPerRequest, "series-per-request", 1000, "Series (one sample each) per remote-write request.")
	fs.IntVar(&write.Writers, "writers", 4, "Concurrent writers.")
	fs.DurationVar(&write.Duration, "duration", time.Minute, "How long to run.")
	fs.IntVar(&write.Requests, "requests", 0, "Stop after this many requests (write mode); 0 runs for -duration.")
	fs.IntVar(&write.ChurnPerMinute, "churn", 0, "Series replaced by new ones per minute.")
	fs.DurationVar(&write.Backfill, "backfill", 0, "Write this much history first, one sample per series every -scrape-interval, as fast as acknowledged, then stop: realistic data for query mode.")
	fs.DurationVar(&write.ProgressInterval, "progress-interval", 5*time.Second, "Interval of the progress line on stderr; 0 prints none.")
	fs.StringVar(&write.MetricName, "metric-name", "loadgen_metric", "Metric name of the generated series.")
	fs.Float64Var(&query.Rate, "query-rate", 10, "Queries per second (query mode).")
	fs.DurationVar(&query.Range, "query-range", time.Hour, "History covered by range queries; every other query is a range query. 0 sends instant queries only.")
	fs.IntVar(&query.Concurrency, "query-concurrency", 16, "Queries in flight at most; a query that cannot start on time counts as skipped.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	loader := tlsconfig.NewLoader(slog.New(slog.NewTextHandler(stderr, nil)), nil)
	tlsClient, err := tlsconfig.NewClient("client", tlsCfg, loader)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	transport := tlsClient.HTTPTransport()
	transport.MaxIdleConnsPerHost = max(write.Writers, query.Concurrency)
	client := &http.Client{Transport: transport, Timeout: 2 * time.Minute}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var summary *Summary
	switch *mode {
	case "write":
		write.URL, write.Tenant = *url, *tenant
		summary, err = RunWrite(ctx, write, client, stderr)
	case "query":
		query.URL, query.Tenant, query.Duration, query.ProgressInterval = *url, *tenant, write.Duration, write.ProgressInterval
		query.Queries = DefaultQueries
		if *queries != "" {
			query.Queries = strings.Split(*queries, ";")
		}
		summary, err = RunQuery(ctx, query, client, stderr)
	default:
		err = fmt.Errorf("-mode=%q: valid values are write and query", *mode)
	}
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(summary)
	} else {
		fmt.Fprint(stdout, summary)
	}
	if summary.SucceededRequests == 0 {
		fmt.Fprintln(stderr, "error: no request succeeded:", firstFailure(summary))
		return 1
	}
	return 0
}

// firstFailure names the most frequent failure and what it said.
func firstFailure(s *Summary) string {
	if len(s.Errors) == 0 {
		return "no request was sent"
	}
	worst := ""
	for k, n := range s.Errors {
		if worst == "" || n > s.Errors[worst] || (n == s.Errors[worst] && k < worst) {
			worst = k
		}
	}
	msg := fmt.Sprintf("%d x %s", s.Errors[worst], worst)
	if m, ok := s.ErrorMessages[worst]; ok {
		msg += ": " + m
	}
	return msg
}
