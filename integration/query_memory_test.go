package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// attackQuery evaluates vector(1) at 86.4 million steps: without the
// subquery limits the process grows by gigabytes before the engine's
// sample limit refuses it.
const attackQuery = "count_over_time(vector(1)[1d:1ms])"

// victimQuery is another tenant's dashboard query.
const victimQuery = "sum(rate(victim_metric[5m]))"

// memoryCluster is one -target=all process with mutual TLS on every link,
// the certificates it was started with and a client certificate's client.
type memoryCluster struct {
	p      *testkit.Cortex
	client *http.Client
	tsdb   string // its -blocks-storage.tsdb.dir, which finds its pid
	// victimAt is the time of the victim's last samples, which its
	// queries ask about, so that their answer does not age.
	victimAt time.Time
}

func startMemoryCluster(tb testing.TB, flags ...string) *memoryCluster {
	tb.Helper()
	pki := testkit.NewPKI(tb, "root")
	pki.Issue(tb, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(tb, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	tsdb := tb.TempDir()
	args := append(append(mtlsFlags(pki.Dir), ingesterClientFlags(pki.Dir)...),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+tsdb,
		// The victim's history is written at once.
		"-distributor.ingestion-rate-limit=10000000",
		"-distributor.ingestion-burst-size=10000000",
	)
	p := testkit.StartCortex(tb, append(args, flags...)...)
	cfg := clientConfig(pki.Dir, "client")
	cfg.CommonNameFallback = true
	cfg.MinVersion = "VersionTLS12"
	tc, err := tlsconfig.NewClient("test.client", cfg, tlsconfig.NewLoader(discard(), nil))
	if err != nil {
		tb.Fatal(err)
	}
	// Queries of the unprotected binary take half a minute.
	client := &http.Client{Transport: tc.HTTPTransport(), Timeout: 2 * time.Minute}
	p.WaitReady(client, "https://"+p.HTTPAddr+"/ready")
	return &memoryCluster{p: p, client: client, tsdb: tsdb}
}

// pushVictim writes series victim_metric series, scraped every 15 s for
// the last 15 minutes.
func (m *memoryCluster) pushVictim(tb testing.TB, series int) {
	tb.Helper()
	now := time.Now().Add(-time.Second).UnixMilli()
	m.victimAt = time.UnixMilli(now)
	for step := 59; step >= 0; step-- {
		req := &prompb.WriteRequest{}
		for i := range series {
			ts := now - int64(step)*15000
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "victim_metric"}, {Name: "instance", Value: "i-" + strconv.Itoa(i)}},
				Samples: []prompb.Sample{{Timestamp: ts, Value: float64(ts / 1000)}},
			})
		}
		raw, err := req.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		httpReq, _ := http.NewRequest(http.MethodPost, "https://"+m.p.HTTPAddr+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
		httpReq.Header.Set("Content-Encoding", "snappy")
		httpReq.Header.Set("Content-Type", "application/x-protobuf")
		httpReq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		httpReq.Header.Set("X-Scope-OrgID", "victim")
		resp, err := m.client.Do(httpReq)
		if err != nil {
			tb.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// 204 since remote write answers as Prometheus does; 200 before.
		if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
			tb.Fatalf("push: %d %s", resp.StatusCode, body)
		}
	}
}

// instant sends an instant query as tenantID, at the time at when not
// zero, and returns the status code and body.
func (m *memoryCluster) instant(ctx context.Context, tenantID, query string, at time.Time) (int, string, error) {
	form := url.Values{"query": {query}}
	if !at.IsZero() {
		form.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+m.p.HTTPAddr+"/prometheus/api/v1/query", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Scope-OrgID", tenantID)
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// victimRate queries the victim's rate and checks the answer: every series
// grows by one per second.
func (m *memoryCluster) victimRate(ctx context.Context, series int) error {
	code, body, err := m.instant(ctx, "victim", victimQuery, m.victimAt)
	if err != nil {
		return err
	}
	var out promResponse
	if err := json.Unmarshal([]byte(body), &out); err != nil || code != http.StatusOK || len(out.Data.Result) != 1 {
		return fmt.Errorf("victim query: %d %s", code, body)
	}
	v, _ := out.Data.Result[0].Value[1].(string)
	if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0.99*float64(series) || f > 1.01*float64(series) {
		return fmt.Errorf("victim query: rate %s, want %d", v, series)
	}
	return nil
}

// pid finds the process serving m among /proc's by its unique TSDB
// directory argument.
func (m *memoryCluster) pid(tb testing.TB) int {
	tb.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	want := "-blocks-storage.tsdb.dir=" + m.tsdb
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if slices.Contains(strings.Split(string(cmdline), "\x00"), want) {
			return pid
		}
	}
	tb.Fatalf("no process with %s", want)
	return 0
}

// engineQueries returns the querier engine's running queries
// (prometheus_engine_queries), or -1 when /metrics does not answer.
func (m *memoryCluster) engineQueries() float64 {
	code, body := tryGet(m.client, "https://"+m.p.HTTPAddr+"/metrics")
	if code != http.StatusOK {
		return -1
	}
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, `prometheus_engine_queries{engine="querier"} `); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// peakRSS returns the process's peak resident set size (VmHWM), in bytes.
func peakRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestQueryMemoryLimits sends the subquery that used to take gigabytes to a
// -target=all process with mutual TLS: it is refused with 400 naming the
// limit and its flag, while another tenant's queries are answered, and the
// process stays far below a gigabyte.
func TestQueryMemoryLimits(t *testing.T) {
	t.Parallel()
	const victimSeries = 100
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{
			name: "subquery steps",
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": the subquery [1d:1ms] has 86400000 steps (its range divided by its step), more than the 11000 points per series allowed by -querier.max-subquery-steps (max_subquery_steps): increase the subquery's step or shorten its range"}`,
		},
		{
			name:  "samples",
			flags: []string{"-querier.max-subquery-steps=0", "-querier.max-samples=1000000"},
			want:  `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": the query's subqueries evaluate 86400001 steps over the query's range, each held in memory like a sample, more than the limit of 1000000 samples set by -querier.max-samples (max_samples): increase the subqueries' steps or shorten the query's range"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := startMemoryCluster(t, tc.flags...)
			m.pushVictim(t, victimSeries)
			ctx := context.Background()

			// The attacker sends the query over and over while the
			// victim's queries are answered.
			stop := make(chan struct{})
			var (
				wg      sync.WaitGroup
				refused atomic.Int64
				wrong   atomic.Value
			)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, body, err := m.instant(ctx, "attacker", attackQuery, time.Time{})
					if err != nil || code != http.StatusBadRequest || body != tc.want {
						wrong.Store(fmt.Sprintf("%d %s %v", code, body, err))
						return
					}
					refused.Add(1)
				}
			}()
			for i := 0; i < 20 || refused.Load() < 20; i++ {
				if err := m.victimRate(ctx, victimSeries); err != nil {
					close(stop)
					wg.Wait()
					t.Fatal(err)
				}
				if w := wrong.Load(); w != nil {
					break
				}
			}
			close(stop)
			wg.Wait()
			if w := wrong.Load(); w != nil {
				t.Fatalf("attack query: got %s\nwant 400 %s", w, tc.want)
			}
			if peak := peakRSS(t, m.pid(t)); peak > 512<<20 {
				t.Fatalf("peak RSS %d MiB after %d refused attacks, want well under 1 GiB", peak>>20, refused.Load())
			}
		})
	}
}

// TestQueryHeapProtection starts a process with a memory limit and heap
// thresholds every heap is over: queries are refused with 503 naming the
// flag, at the querier and at the ingester, and writes are still accepted.
func TestQueryHeapProtection(t *testing.T) {
	// A 1 TiB limit never makes the runtime collect early; a threshold of
	// one millionth of a millionth of it is below any heap.
	t.Setenv("GOMEMLIMIT", "1TiB")
	for _, tc := range []struct {
		component string
		flags     []string
		want      string
	}{
		{"querier", []string{"-querier.query-protection.rejection.threshold.heap-utilization=1e-12"},
			`"errorType":"unavailable","error":"heap utilization limit reached: the heap holds `},
		{"ingester", []string{"-ingester.query-protection.rejection.threshold.heap-utilization=1e-12"},
			`"errorType":"unavailable","error":"expanding series: too few ingesters answered (at most 0 of 1 may fail): ingester 127.0.0.1:`},
	} {
		t.Run(tc.component, func(t *testing.T) {
			m := startMemoryCluster(t, tc.flags...)
			m.pushVictim(t, 10)
			code, body, err := m.instant(context.Background(), "victim", victimQuery, m.victimAt)
			if err != nil {
				t.Fatal(err)
			}
			flag := "-" + tc.component + ".query-protection.rejection.threshold.heap-utilization"
			if code != http.StatusServiceUnavailable || !strings.Contains(body, tc.want) ||
				!strings.Contains(body, "of the memory limit of 1099511627776 bytes (GOMEMLIMIT), at or above the threshold of 0.0% set by "+flag) {
				t.Fatalf("got %d %s\nwant 503 with %s naming %s", code, body, tc.want, flag)
			}
		})
	}
}

// BenchmarkQueryUnderMemoryAttack measures a victim tenant's instant query
// latency with and without an attacker looping attackQuery, side by side
// in interleaved phases against one -target=all process with mutual TLS,
// and the process's peak RSS. It passes no flag a binary without the
// memory limits lacks, so the same benchmark measures either. Run with
// -benchtime=1x: one iteration is the whole measurement.
func BenchmarkQueryUnderMemoryAttack(b *testing.B) {
	const (
		victimSeries = 1000
		rounds       = 3
		phase        = 10 * time.Second
	)
	m := startMemoryCluster(b)
	m.pushVictim(b, victimSeries)
	pid := m.pid(b)
	ctx := context.Background()
	// Warm up: connections, the TSDB's head and the engine's pools.
	for range 20 {
		if err := m.victimRate(ctx, victimSeries); err != nil {
			b.Fatal(err)
		}
	}
	baseline := peakRSS(b, pid)

	var (
		alone, attacked             []time.Duration
		errorsAlone, errorsAttacked int
		attacks, attackFailures     atomic.Int64
	)
	// A failed victim query counts as an error (its latency too): without
	// the limits, the attack's memory makes some fail.
	measure := func(into *[]time.Duration, errs *int) {
		for end := time.Now().Add(phase); time.Now().Before(end); {
			start := time.Now()
			if err := m.victimRate(ctx, victimSeries); err != nil {
				*errs++
				b.Logf("victim query: %v", err)
			}
			*into = append(*into, time.Since(start))
		}
	}
	b.ResetTimer()
	for range b.N {
		for range rounds {
			measure(&alone, &errorsAlone)
			attackCtx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for attackCtx.Err() == nil {
					code, _, err := m.instant(attackCtx, "attacker", attackQuery, time.Time{})
					if attackCtx.Err() != nil {
						return
					}
					attacks.Add(1)
					if err != nil || code == http.StatusOK {
						attackFailures.Add(1)
					}
				}
			}()
			measure(&attacked, &errorsAttacked)
			cancel()
			<-done
		}
	}
	b.StopTimer()
	pct := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(alone, 0.5), "p50-ms-alone")
	b.ReportMetric(pct(alone, 0.99), "p99-ms-alone")
	b.ReportMetric(pct(attacked, 0.5), "p50-ms-attacked")
	b.ReportMetric(pct(attacked, 0.99), "p99-ms-attacked")
	b.ReportMetric(float64(len(alone)), "queries-alone")
	b.ReportMetric(float64(len(attacked)), "queries-attacked")
	b.ReportMetric(float64(errorsAlone), "victim-errors-alone")
	b.ReportMetric(float64(errorsAttacked), "victim-errors-attacked")
	b.ReportMetric(float64(attacks.Load()), "attacks-answered")
	b.ReportMetric(float64(attackFailures.Load()), "attacks-not-refused")
	b.ReportMetric(float64(baseline>>20), "peak-rss-MiB-before-attacks")
	b.ReportMetric(float64(peakRSS(b, pid)>>20), "peak-rss-MiB")
	b.Logf("victim p50/p99 alone %.1f/%.1f ms, attacked %.1f/%.1f ms; victim errors %d alone, %d attacked; %d attacks answered, %d not refused; peak RSS %d MiB",
		pct(alone, 0.5), pct(alone, 0.99), pct(attacked, 0.5), pct(attacked, 0.99), errorsAlone, errorsAttacked, attacks.Load(), attackFailures.Load(), peakRSS(b, pid)>>20)
	// An attack canceled by its client may still be evaluated (without the
	// limits, for minutes): the process stops gracefully only once the
	// engine is idle.
	for deadline := time.Now().Add(3 * time.Minute); m.engineQueries() != 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
}
