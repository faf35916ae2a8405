package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// receiver is a remote-write endpoint that checks what a real receiver
// would: the encoding, and that every series' timestamps only grow.
type receiver struct {
	mu       sync.Mutex
	last     map[string]int64
	samples  int
	requests int
	reject   func(n int) int // status for the n-th request
	problems []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	raw, err := snappy.Decode(nil, body)
	var req prompb.WriteRequest
	if err == nil {
		err = req.Unmarshal(raw)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if err != nil || r.Header.Get("Content-Encoding") != "snappy" || r.Header.Get("X-Scope-OrgID") != "t1" {
		rc.problems = append(rc.problems, "bad request")
		w.WriteHeader(400)
		return
	}
	if code := rc.reject(rc.requests); code != http.StatusNoContent {
		// As Cortex answers: the reason on the first line, details after.
		http.Error(w, "ingestion rate limit (100) exceeded for tenant t1 (request "+strconv.Itoa(rc.requests)+")\nsecond line", code)
		return
	}
	for _, ts := range req.Timeseries {
		key := ""
		for _, l := range ts.Labels {
			key += l.Name + "=" + l.Value + ","
		}
		if len(ts.Labels) != 4 {
			rc.problems = append(rc.problems, "wrong label count "+key)
		}
		for _, s := range ts.Samples {
			if s.Timestamp <= rc.last[key] {
				rc.problems = append(rc.problems, "timestamp went back for "+key)
			}
			rc.last[key] = s.Timestamp
			rc.samples++
		}
	}
	// Cortex and Prometheus answer a stored write with 204 No Content.
	w.WriteHeader(http.StatusNoContent)
}

func TestRunWrite(t *testing.T) {
	rc := &receiver{last: map[string]int64{}, reject: func(n int) int {
		if n%10 == 0 {
			return 429
		}
		return http.StatusNoContent
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	var progress strings.Builder
	sum, err := RunWrite(context.Background(), WriteConfig{
		URL: srv.URL, Tenant: "t1", Series: 250, LabelsPerSeries: 4, SeriesPerRequest: 100,
		Writers: 3, Requests: 60, ChurnPerMinute: 6000, ProgressInterval: 0,
	}, srv.Client(), &progress)
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.problems) > 0 {
		t.Fatalf("receiver saw: %v", rc.problems[:min(5, len(rc.problems))])
	}
	if sum.Requests != 60 || rc.requests != 60 {
		t.Fatalf("requests: summary %d, receiver %d, want 60", sum.Requests, rc.requests)
	}
	if sum.Errors["429"] != 6 || sum.SucceededRequests != 54 {
		t.Fatalf("errors %v, ok %d; want 6 rejected and 54 ok", sum.Errors, sum.SucceededRequests)
	}
	// Which of the rejected requests answered first depends on the writers'
	// interleaving: its number is one of 10, 20, ..., 60.
	msg := sum.ErrorMessages["429"]
	if !strings.HasPrefix(msg, "ingestion rate limit (100) exceeded for tenant t1 (request ") || strings.Contains(msg, "second line") {
		t.Fatalf("429 message %q, want the first line of the server's answer", msg)
	}
	if report := sum.String(); !strings.Contains(report, "errors: 429=6\n  first 429: "+msg+"\n") {
		t.Fatalf("report does not show the server's error:\n%s", report)
	}
	if int(sum.Samples) != rc.samples {
		t.Fatalf("acknowledged %d samples, receiver stored %d", sum.Samples, rc.samples)
	}
	if sum.LatencyP50Ms <= 0 || sum.LatencyP99Ms < sum.LatencyP50Ms {
		t.Fatalf("latencies p50 %v p99 %v", sum.LatencyP50Ms, sum.LatencyP99Ms)
	}
}

func TestRunWriteScrapeInterval(t *testing.T) {
	rc := &receiver{last: map[string]int64{}, reject: func(int) int { return http.StatusNoContent }}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	// 200 series every 100ms, 10 requests: 5 rounds of 2 requests, the
	// last one 400ms after the first.
	began := time.Now()
	sum, err := RunWrite(context.Background(), WriteConfig{
		URL: srv.URL, Tenant: "t1", Series: 200, LabelsPerSeries: 4, SeriesPerRequest: 100,
		Writers: 2, ScrapeInterval: 100 * time.Millisecond, Requests: 10,
	}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Samples != 1000 {
		t.Fatalf("acknowledged %d samples, want 1000 (5 scrapes of 200 series)", sum.Samples)
	}
	if took := time.Since(began); took < 400*time.Millisecond {
		t.Fatalf("5 scrapes 100ms apart took %s: the writers did not wait for the interval", took)
	}
}

func TestRunQuery(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		paths[r.URL.Path]++
		mu.Unlock()
		if r.FormValue("query") == "bad" {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"status":"error","errorType":"bad_data","error":"1:1: parse error: unexpected identifier \"bad\""}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	defer srv.Close()
	sum, err := RunQuery(context.Background(), QueryConfig{
		URL: srv.URL + "/prometheus", Queries: []string{"up", "bad"}, Rate: 100, Range: time.Hour, Duration: 300 * time.Millisecond,
	}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if paths["/prometheus/api/v1/query"] == 0 || paths["/prometheus/api/v1/query_range"] == 0 {
		t.Fatalf("paths hit: %v, want both instant and range queries", paths)
	}
	if sum.Errors["400"] == 0 || sum.SucceededRequests == 0 {
		t.Fatalf("summary %+v: want both successes and 400s counted", sum)
	}
	if want := `{"status":"error","errorType":"bad_data","error":"1:1: parse error: unexpected identifier \"bad\""}`; sum.ErrorMessages["400"] != want {
		t.Fatalf("400 message %q, want the server's answer %q", sum.ErrorMessages["400"], want)
	}
}

func TestChurnReplacesSeries(t *testing.T) {
	set := &seriesSet{cfg: WriteConfig{LabelsPerSeries: 8, MetricName: "m"}, gens: make([]atomic.Uint32, 5)}
	before := set.labels(3)
	if len(before) != 8 || before[0].Value != "m" {
		t.Fatalf("labels %v", before)
	}
	next := set.churn(2, 2) // series 2 and 3
	if next != 4 {
		t.Fatalf("next churn position %d, want 4", next)
	}
	after := set.labels(3)
	if after[1].Value == before[1].Value {
		t.Fatalf("series 3 kept its identity %q after churn", after[1].Value)
	}
	if set.labels(4)[1].Value != "series-4-0" {
		t.Fatalf("series 4 changed without churn: %v", set.labels(4)[1])
	}
	if next := set.churn(4, 3); next != 2 {
		t.Fatalf("churn wraps around to %d, want 2", next)
	}
}

func TestRunWriteBackfill(t *testing.T) {
	rc := &receiver{last: map[string]int64{}, reject: func(int) int { return http.StatusNoContent }}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	began := time.Now()
	// Ten minutes of history at 15s: 40 (or 41) samples per series, written at once.
	sum, err := RunWrite(context.Background(), WriteConfig{
		URL: srv.URL, Tenant: "t1", Series: 50, LabelsPerSeries: 4, SeriesPerRequest: 25,
		Writers: 2, ScrapeInterval: 15 * time.Second, Backfill: 10 * time.Minute, Duration: time.Minute,
	}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Samples < 50*40 || sum.Samples > 50*41 {
		t.Fatalf("acknowledged %d samples, want 40 or 41 per series for 50 series", sum.Samples)
	}
	if time.Since(began) > 20*time.Second {
		t.Fatalf("backfill waited in real time: %s", time.Since(began))
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for key, ts := range rc.last {
		if age := time.Since(time.UnixMilli(ts)); age > 15*time.Second+time.Minute || age < -time.Second {
			t.Fatalf("series %s ends at %s, not near now", key, time.UnixMilli(ts))
		}
	}
	if len(rc.problems) > 0 {
		t.Fatalf("receiver saw: %v", rc.problems[:min(5, len(rc.problems))])
	}
}

func TestCommandReportsTheServersError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "series has too many labels (actual: 9, limit: 8) series: 'loadgen_metric{...}'\nmore", http.StatusBadRequest)
	}))
	defer srv.Close()
	var stdout, stderr strings.Builder
	code := Command([]string{"-url", srv.URL, "-series", "10", "-series-per-request", "5", "-writers", "1", "-requests", "3", "-progress-interval", "0"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1 when every request failed; stderr: %s", code, stderr.String())
	}
	msg := "series has too many labels (actual: 9, limit: 8) series: 'loadgen_metric{...}'"
	if !strings.Contains(stdout.String(), "errors: 400=3\n  first 400: "+msg+"\n") {
		t.Errorf("report:\n%s\nwant the status and the first line of the answer", stdout.String())
	}
	if want := "error: no request succeeded: 3 x 400: " + msg + "\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

func TestFirstLine(t *testing.T) {
	for body, want := range map[string]string{
		"":                        "(empty body)",
		"\n\n  out of bounds \nx": "out of bounds",
		strings.Repeat("é", 200):  strings.Repeat("é", maxMessageLen/2) + "...",
	} {
		if got := firstLine([]byte(body)); got != want {
			t.Errorf("firstLine(%q) = %q, want %q", body, got, want)
		}
	}
}

func TestTransportErrorIsReported(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	sum, err := RunWrite(context.Background(), WriteConfig{
		URL: url, Tenant: "t1", Series: 5, LabelsPerSeries: 2, SeriesPerRequest: 5, Writers: 1, Requests: 2,
	}, http.DefaultClient, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Errors["transport"] != 2 || !strings.Contains(sum.ErrorMessages["transport"], "connection refused") {
		t.Fatalf("errors %v, messages %v: want 2 transport errors saying the connection was refused", sum.Errors, sum.ErrorMessages)
	}
}
