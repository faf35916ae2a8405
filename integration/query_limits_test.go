package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// singleProcess runs -target=all (the query-frontend in front of the
// querier) with mutual TLS, and returns it with a client.
func singleProcess(t testing.TB, flags ...string) (*testkit.Cortex, *http.Client) {
	t.Helper()
	certs := certDirTB(t)
	p := testkit.StartCortex(t, append(append(append(mtlsFlags(certs), ingesterClientFlags(certs)...),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
	), flags...)...)
	cfg := clientConfig(certs, "client")
	cfg.MinVersion = "VersionTLS12"
	tc, err := tlsconfig.NewClient("test.client", cfg, tlsconfig.NewLoader(discard(), nil))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tc.HTTPTransport(), Timeout: 2 * time.Minute}
	waitReady(p, client)
	return p, client
}

// certDirTB is certDir for benchmarks too.
func certDirTB(t testing.TB) string {
	t.Helper()
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	return p.Dir
}

// askQuery sends a query as tenantID and returns the status, the body and
// how long the answer took.
func askQuery(t testing.TB, client *http.Client, p *testkit.Cortex, tenantID, path string, form url.Values) (int, string, time.Duration, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+p.HTTPAddr+"/prometheus/api/v1/"+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Scope-OrgID", tenantID)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", time.Since(start), err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), time.Since(start), err
}

func nestedParens(n int) string { return strings.Repeat("(", n) + "up" + strings.Repeat(")", n) }

// chain is vector(1) + vector(1) + ..., n operators: a tree n deep, which
// the engine takes seconds to evaluate for a few thousand.
func chain(n int) string { return "vector(1)" + strings.Repeat(" + vector(1)", n) }

// TestDeepExpressionsRefused sends 20,000-deep expressions to a real
// process: each is refused with Prometheus's bad_data error naming the
// limit's flag, quickly, while a tenant whose runtime overrides raise the
// limit is served.
func TestDeepExpressionsRefused(t *testing.T) {
	t.Parallel()
	runtimeFile := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(runtimeFile, []byte("overrides:\n  deep:\n    max_query_expression_depth: 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, client := singleProcess(t, "-runtime-config.file="+runtimeFile)

	n := 20000
	for name, expr := range map[string]string{
		"parentheses": nestedParens(n),
		"unary":       strings.Repeat("-", n) + "up",
		"binary":      "up" + strings.Repeat(" + up", n),
	} {
		for _, path := range []string{"query", "query_range"} {
			form := url.Values{"query": {expr}, "start": {"0"}, "end": {"600"}, "step": {"60"}}
			code, body, took, err := askQuery(t, client, p, "team-a", path, form)
			if err != nil {
				t.Fatalf("%s %s: %v", name, path, err)
			}
			var resp struct{ Status, ErrorType, Error string }
			_ = json.Unmarshal([]byte(body), &resp)
			if code != http.StatusBadRequest || resp.ErrorType != "bad_data" ||
				!strings.HasPrefix(resp.Error, "the query expression nests deeper than the limit of 256 levels") ||
				!strings.Contains(resp.Error, "(-query-frontend.max-query-expression-depth)") {
				t.Errorf("%s %s: %d %.300s", name, path, code, body)
			}
			t.Logf("%s %s refused in %s", name, path, took)
		}
	}
	code, body, _, err := askQuery(t, client, p, "team-a", "series", url.Values{"match[]": {strings.Repeat("{", n) + strings.Repeat("}", n)}})
	if err != nil || code != http.StatusBadRequest || !strings.Contains(body, `the match[] expression nests deeper than the limit of 256 levels at byte 256 (-query-frontend.max-query-expression-depth)`) {
		t.Errorf("series: %v %d %.300s", err, code, body)
	}
	code, body, _, err = askQuery(t, client, p, "team-a", "query", url.Values{"query": {"up" + strings.Repeat(" ", 128<<10)}})
	if err != nil || code != http.StatusBadRequest || !strings.Contains(body, `"error":"the query expression is 131074 bytes long, over the limit of 131072 bytes (-query-frontend.max-query-expression-size-bytes)"`) {
		t.Errorf("long query: %v %d %.300s", err, code, body)
	}
	// 300 levels: over the default, within the tenant's override.
	form := url.Values{"query": {strings.Repeat("(", 300) + "vector(7)" + strings.Repeat(")", 300)}}
	if code, body, _, err := askQuery(t, client, p, "team-a", "query", form); err != nil || code != http.StatusBadRequest {
		t.Errorf("300 levels on the default limit: %v %d %.300s", err, code, body)
	}
	if code, body, _, err := askQuery(t, client, p, "deep", "query", form); err != nil || code != http.StatusOK || !strings.Contains(body, `"7"`) {
		t.Errorf("300 levels for the tenant with a raised limit: %v %d %.300s", err, code, body)
	}
}

// TestQueryTimeouts runs queries longer than -server.http-write-timeout
// against a real process: a query within -querier.timeout is answered,
// one past it gets Prometheus's timeout error, not a cut connection. The
// timeouts are a quarter of a second, well below the time the slow query
// takes even on a fast machine (0.8 s at least, seen in CI).
func TestQueryTimeouts(t *testing.T) {
	t.Parallel()
	p, client := singleProcess(t,
		"-server.http-write-timeout=250ms",
		"-querier.timeout=1m",
		// No expression limits: the long chain below is the slow query.
		"-query-frontend.max-query-expression-depth=0",
	)
	code, body, took, err := askQuery(t, client, p, "team-a", "query", url.Values{"query": {chain(4000)}})
	if err != nil || code != http.StatusOK || !strings.Contains(body, `"4001"`) {
		t.Fatalf("query longer than the write timeout: %v %d %.300s", err, code, body)
	}
	if took < 250*time.Millisecond {
		t.Fatalf("the query took %s, less than the 250ms write timeout: it tests nothing", took)
	}
	t.Logf("answered after %s, past the 250ms write timeout", took)

	p2, client2 := singleProcess(t,
		"-querier.timeout=250ms",
		"-query-frontend.max-query-expression-depth=0",
	)
	code, body, took, err = askQuery(t, client2, p2, "team-a", "query", url.Values{"query": {chain(4000)}})
	if took > 3*time.Second {
		t.Errorf("the timeout took %s to answer with -querier.timeout=250ms", took)
	}
	var resp struct{ Status, ErrorType, Error string }
	_ = json.Unmarshal([]byte(body), &resp)
	if err != nil || code != http.StatusServiceUnavailable || resp.ErrorType != "timeout" || !strings.HasPrefix(resp.Error, "query timed out in ") {
		t.Fatalf("query past -querier.timeout: %v %d %.300s, want 503 timeout", err, code, body)
	}
	t.Logf("timed out after %s: %s", took, resp.Error)
}

// TestShutdownWithLongQueryInFlight sends SIGTERM while a query that would
// run for minutes is evaluated: the process exits within
// -server.graceful-shutdown-timeout (and the time the engine takes to
// notice), not when the query ends.
func TestShutdownWithLongQueryInFlight(t *testing.T) {
	t.Parallel()
	p, client := singleProcess(t,
		"-server.graceful-shutdown-timeout=2s",
		"-querier.timeout=5m",
		"-query-frontend.max-query-expression-depth=0",
		"-query-frontend.max-query-expression-size-bytes=0",
	)
	go func() {
		_, _, _, _ = askQuery(t, client, p, "team-a", "query", url.Values{"query": {chain(20000)}})
	}()
	p.EventuallyNil(time.Minute, "the long query to be evaluated", func() error {
		if n := metricOf(t, client, p, `prometheus_engine_queries{engine="querier"}`); n == 0 {
			return fmt.Errorf("prometheus_engine_queries is %v", n)
		}
		return nil
	})
	start := time.Now()
	p.Stop()
	took := time.Since(start)
	t.Logf("stopped %s after SIGTERM", took)
	if took > 10*time.Second {
		t.Fatalf("the process took %s to stop after SIGTERM with -server.graceful-shutdown-timeout=2s", took)
	}
}

// BenchmarkVictimLatencyUnderDeepExpressions measures another tenant's
// query latency while an attacking tenant sends 20,000-deep expressions
// in a loop, against a real -target=all process with one querier worker,
// with the default expression limits and with them turned off. Run with
// -bench VictimLatency -benchtime 40x: p50-ms and p99-ms are the victim's.
func BenchmarkVictimLatencyUnderDeepExpressions(b *testing.B) {
	if testing.Short() {
		b.Skip("starts two processes")
	}
	common := []string{"-querier.worker-parallelism=1", "-querier.max-concurrent=1"}
	protected, pc := singleProcess(b, common...)
	unprotected, uc := singleProcess(b, append(common,
		"-query-frontend.max-query-expression-depth=0",
		"-query-frontend.max-query-expression-size-bytes=0")...)
	victimQuery := url.Values{"query": {`sum by (job) (rate(http_requests_total[5m]))`}}
	attack := url.Values{"query": {nestedParens(20000)}}
	for _, target := range []struct {
		name   string
		p      *testkit.Cortex
		client *http.Client
	}{{"limits=default", protected, pc}, {"limits=off", unprotected, uc}} {
		for _, attackers := range []int{0, 2} {
			b.Run(fmt.Sprintf("%s/attackers=%d", target.name, attackers), func(b *testing.B) {
				stop := make(chan struct{})
				done := make(chan struct{}, attackers)
				var attacks atomic.Int64
				for range attackers {
					go func() {
						defer func() { done <- struct{}{} }()
						for {
							select {
							case <-stop:
								return
							default:
							}
							_, _, _, _ = askQuery(b, target.client, target.p, "attacker", "query", attack)
							attacks.Add(1)
						}
					}()
				}
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for range b.N {
					code, body, took, err := askQuery(b, target.client, target.p, "victim", "query", victimQuery)
					if err != nil || code != http.StatusOK {
						b.Fatalf("victim query: %v %d %.200s", err, code, body)
					}
					lat = append(lat, took)
				}
				b.StopTimer()
				close(stop)
				for range attackers {
					<-done
				}
				slices.Sort(lat)
				pct := func(q float64) float64 {
					return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
				}
				b.ReportMetric(pct(0.5), "p50-ms")
				b.ReportMetric(pct(0.99), "p99-ms")
				b.ReportMetric(float64(attacks.Load()), "attacks")
			})
		}
	}
}
