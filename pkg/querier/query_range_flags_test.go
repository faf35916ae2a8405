package querier

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// -querier.max-query-into-future moves a read's end back to now plus the
// setting: samples after it are not read.
func TestMaxQueryIntoFuture(t *testing.T) {
	for _, tc := range []struct {
		into time.Duration
		want string
	}{
		// now+10m is t0+30s: the samples at t0, t0+15s and t0+30s.
		{10 * time.Minute, `"value":[1700000060,"3"]`},
		{0, `"value":[1700000060,"5"]`},
	} {
		c, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.MaxQueryIntoFuture = tc.into }})
		c.querier.queryable.now = func() time.Time { return time.UnixMilli(t0 + 30000).Add(-10 * time.Minute) }
		code, body := get(t, srv, `/prometheus/api/v1/query?query=count_over_time(up{job="a"}[5m])&time=1700000060`, "team-a")
		if code != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Fatalf("-querier.max-query-into-future=%s: %d %s, want %s", tc.into, code, body, tc.want)
		}
		// A range wholly beyond it reads nothing.
		code, body = get(t, srv, "/prometheus/api/v1/series?match[]=up&start=1700000040&end=1700000100", "team-a")
		if want := `{"status":"success","data":[]}`; tc.into > 0 && (code != http.StatusOK || body != want) {
			t.Fatalf("series beyond -querier.max-query-into-future: %d %s, want %s", code, body, want)
		}
	}
	cfg := defaultConfig()
	if cfg.MaxQueryIntoFuture != 10*time.Minute {
		t.Fatalf("default %s, want Cortex's 10m", cfg.MaxQueryIntoFuture)
	}
	cfg.MaxQueryIntoFuture = -time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-querier.max-query-into-future must not be negative") {
		t.Fatalf("negative: %v", err)
	}
}

// -querier.ignore-max-query-length leaves max_query_length to the
// query-frontend for PromQL, and still applies it to series requests.
func TestIgnoreMaxQueryLength(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{
		limits: func(l *validation.Limits) { l.MaxQueryLength = model.Duration(time.Minute) },
		cfg:    func(c *Config) { c.IgnoreMaxQueryLength = true },
	})
	code, body := get(t, srv, "/prometheus/api/v1/query_range?query=up&start=1700000000&end=1700000060&step=15", "team-a")
	if code != http.StatusOK || !strings.Contains(body, `"job":"a"`) {
		t.Fatalf("query_range over max_query_length, ignored: %d %s, want 200 with the series", code, body)
	}
	code, body = get(t, srv, "/prometheus/api/v1/series?match[]=up&start=1699990000&end=1700000060", "team-a")
	if want := "the query time range exceeds the limit"; code != http.StatusUnprocessableEntity || !strings.Contains(body, want) {
		t.Fatalf("series over max_query_length: %d %s, want 422 %q", code, body, want)
	}
}

// With -querier.active-query-tracker-dir, the queries holding a slot are
// in Prometheus' active query file; a querier started after a crash logs
// them.
func TestActiveQueryLog(t *testing.T) {
	var clientCfg client.Config
	clientCfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	testClientConfig := func() client.Config { return clientCfg }
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.ActiveQueryTrackerDir = dir
	cfg.MaxConcurrent = 2
	s := newQuerySlots(cfg.MaxConcurrent, time.Second)
	if err := s.openActiveQueryLog(dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	first, err := s.Insert(context.Background(), `sum(rate(http_requests_total[5m]))`)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Insert(context.Background(), `up == 0`)
	if err != nil {
		t.Fatal(err)
	}
	s.Delete(second)
	file, err := os.ReadFile(filepath.Join(dir, "queries.active"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(file, []byte(`"query":"sum(rate(http_requests_total[5m]))"`)) || bytes.Contains(file, []byte("up == 0")) {
		t.Fatalf("active query file %q, want the query in flight and not the finished one", bytes.Trim(file, "\x00"))
	}
	// A slot taken and freed keeps the slots and the file's entries in
	// step: both slots can be taken again.
	if _, err := s.Insert(context.Background(), "count by (job) (up)"); err != nil {
		t.Fatal(err)
	}
	s.Delete(first)

	// The process dies with a query in flight; the next querier logs it.
	var logged bytes.Buffer
	q, err := New(cfg, testClientConfig(), nil, validation.NewOverrides(validation.Limits{}, nil), newRing(t, 1), slog.New(slog.NewTextHandler(&logged, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "didn't finish") || !strings.Contains(logged.String(), "count by (job) (up)") || strings.Contains(logged.String(), "http_requests_total") {
		t.Fatalf("log %q, want the unfinished query", logged.String())
	}
	if err := q.promEngine.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.ActiveQueryTrackerDir = filepath.Join(dir, "queries.active", "below-a-file")
	if _, err := New(cfg, testClientConfig(), nil, validation.NewOverrides(validation.Limits{}, nil), newRing(t, 1), nil, nil); err == nil || !strings.Contains(err.Error(), "-querier.active-query-tracker-dir") {
		t.Fatalf("a directory under a file: %v, want an error naming the flag", err)
	}
}

// -querier.ingester-query-max-attempts tries again a read too few
// ingesters answered; with one attempt, such a read fails.
func TestIngesterQueryMaxAttempts(t *testing.T) {
	for _, tc := range []struct {
		attempts int
		code     int
	}{
		{1, http.StatusServiceUnavailable},
		{2, http.StatusOK},
	} {
		c, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.IngesterQueryMaxAttempts = tc.attempts }})
		for _, path := range []string{"/prometheus/api/v1/query?query=sum(up)&time=1700000060", "/prometheus/api/v1/label/job/values"} {
			// Two of three ingesters fail their next call: the first
			// attempt has no quorum, the second does.
			c.ingesters[1].failNext.Store(1)
			c.ingesters[2].failNext.Store(1)
			code, body := get(t, srv, path, "team-a")
			if code != tc.code {
				t.Fatalf("%d attempts, %s: %d %s, want %d", tc.attempts, path, code, body, tc.code)
			}
			if code == http.StatusOK && !strings.Contains(body, `"55"`) && !strings.Contains(body, `["a","b"]`) {
				t.Fatalf("%d attempts, %s: %s, want the whole answer", tc.attempts, path, body)
			}
		}
	}
	cfg := defaultConfig()
	cfg.IngesterQueryMaxAttempts = 0
	if err := cfg.Validate(); err == nil || err.Error() != "-querier.ingester-query-max-attempts must be at least 1, got 0" {
		t.Fatalf("0 attempts: %v", err)
	}
}

// -querier.ingester-label-names-with-matchers=false takes label names with
// matchers from the matching series: the same answer, with no LabelNames
// call; without matchers, LabelNames is still asked.
func TestIngesterLabelNamesWithMatchers(t *testing.T) {
	for _, withMatchers := range []bool{true, false} {
		c, srv := apiCluster(t, clusterOpts{cfg: func(c *Config) { c.IngesterLabelNamesWithMatchers = withMatchers }})
		code, body := get(t, srv, `/prometheus/api/v1/labels?match[]=up{job="a"}`, "team-a")
		if want := `{"status":"success","data":["__name__","instance","job"]}`; code != http.StatusOK || body != want {
			t.Fatalf("with matchers in LabelNames %v: %d %s, want %s", withMatchers, code, body, want)
		}
		calls := int64(0)
		for _, f := range c.ingesters {
			calls += f.labelNamesCalls.Load()
		}
		if withMatchers != (calls > 0) {
			t.Fatalf("with matchers in LabelNames %v: %d LabelNames calls", withMatchers, calls)
		}
		code, body = get(t, srv, `/prometheus/api/v1/labels?limit=1`, "team-a")
		if want := `{"status":"success","data":["__name__"]`; code != http.StatusOK || !strings.HasPrefix(body, want) {
			t.Fatalf("without matchers: %d %s, want %s", code, body, want)
		}
	}
}
