package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cortex-tls/cortex/pkg/loadgen"
)

// The comparison with the original Cortex: both binaries run as one process
// (-target=all) from the same configuration file, Cortex's own
// single-process-config-blocks-tls.yaml with the guide's TLS flags, and are
// measured in interleaved rounds (original, this system, original, ...), so
// that the machine's noise falls on both alike and only their ratios count.

// exampleConfig is Cortex's example both binaries run, as this repository
// holds it for the example tests.
const exampleConfig = "integration/testdata/cortex-examples/single-process-config-blocks-tls.yaml"

// system is one binary of the comparison.
type system struct {
	name, binary string
}

// measured is what one run of one system gave.
type measured struct {
	write    *loadgen.Summary
	writeCPU float64 // server CPU seconds during the measured write window
	idleRSS  int64   // bytes, ready and before any push
	loadRSS  int64   // bytes, after the write load
	query    *loadgen.Summary
	queryCPU float64 // server CPU seconds from the first query until the last answer
	// One query at a time: the time the server takes to answer, without
	// the queueing of the rate above.
	alone    []time.Duration // sorted
	aloneCPU float64         // server CPU seconds over them
}

func (m measured) perCPU() float64         { return float64(m.write.Samples) / m.writeCPU }
func (m measured) perSeries(n int) float64 { return float64(m.loadRSS) / float64(n) }
func (m measured) cpuPerQuery() float64 {
	return m.queryCPU / float64(m.query.SucceededRequests)
}
func (m measured) alonePercentile(q float64) float64 {
	i := max(0, min(int(q*float64(len(m.alone))+0.5)-1, len(m.alone)-1))
	return float64(m.alone[i]) / float64(time.Millisecond)
}
func (m measured) cpuPerQueryAlone() float64 { return m.aloneCPU / float64(len(m.alone)) }

// compare measures the original and this system for the given rounds, one
// after the other in each round, and returns runs[round][0: original, 1: ours].
func (b *bench) compare(original, ours system) ([][2]measured, error) {
	if _, err := os.Stat(exampleConfig); err != nil {
		return nil, fmt.Errorf("the comparison runs Cortex's example %s from the repository's root: %w", exampleConfig, err)
	}
	var runs [][2]measured
	for round := 0; round < b.rounds; round++ {
		var pair [2]measured
		for i, s := range []system{original, ours} {
			log.Printf("round %d: measuring %s", round+1, s.name)
			m, err := b.runSystem(s)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round+1, s.name, err)
			}
			pair[i] = m
		}
		runs = append(runs, pair)
	}
	return runs, nil
}

// runSystem starts one -target=all process of s on fresh directories,
// loads and queries it, and stops it.
func (b *bench) runSystem(s system) (measured, error) {
	dir, err := os.MkdirTemp(b.work, "compare")
	if err != nil {
		return measured{}, err
	}
	// The ruler's and the alertmanager's local storage must exist.
	for _, d := range []string{"rules", "alerts"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return measured{}, err
		}
	}
	config, err := b.writeExampleConfig(dir)
	if err != nil {
		return measured{}, err
	}
	p := &proc{http: freePort(), grpc: freePort(), ingester: true}
	p.cmd = exec.Command(s.binary, compareFlags(config, dir, b.certs, p)...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		return measured{}, err
	}
	defer func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		_ = p.cmd.Wait()
	}()
	procs := []*proc{p}

	client := b.client(true)
	base := "https://127.0.0.1:" + strconv.Itoa(p.http)
	if err := waitReady(client, base+"/ready"); err != nil {
		return measured{}, err
	}
	if err := waitRing(client, base, 1); err != nil {
		return measured{}, err
	}
	m := measured{idleRSS: rss(p.cmd.Process.Pid)}

	write := loadgen.WriteConfig{URL: base + "/api/v1/push", Tenant: "bench", Series: b.series, LabelsPerSeries: 8,
		SeriesPerRequest: 1000, Writers: 4, Duration: b.warmup}
	warm, err := loadgen.RunWrite(context.Background(), write, client, nil)
	if err != nil {
		return m, err
	}
	if err := noErrors("warm-up push", warm); err != nil {
		return m, err
	}
	cpuBefore := totalCPU(procs)
	write.Duration = b.duration
	if m.write, err = loadgen.RunWrite(context.Background(), write, client, nil); err != nil {
		return m, err
	}
	m.writeCPU = totalCPU(procs) - cpuBefore
	m.loadRSS = rss(p.cmd.Process.Pid)
	if err := noErrors("push", m.write); err != nil {
		return m, err
	}

	backfill := loadgen.WriteConfig{URL: base + "/api/v1/push", Tenant: "bench-query", Series: b.series, LabelsPerSeries: 8,
		SeriesPerRequest: 1000, Writers: 4, ScrapeInterval: 15 * time.Second, Backfill: 10 * time.Minute}
	filled, err := loadgen.RunWrite(context.Background(), backfill, client, nil)
	if err != nil {
		return m, err
	}
	if err := noErrors("backfill push", filled); err != nil {
		return m, err
	}
	// Both tenants must hold every series: a server that acknowledged
	// pushes it did not store would otherwise pass for a fast one.
	for _, tenant := range []string{"bench", "bench-query"} {
		if err := expectSeries(client, base, tenant, b.series); err != nil {
			return m, err
		}
	}

	cpuBefore = totalCPU(procs)
	if m.query, err = loadgen.RunQuery(context.Background(), loadgen.QueryConfig{URL: base + "/prometheus", Tenant: "bench-query",
		Queries: loadgen.DefaultQueries, Rate: 4, Range: 10 * time.Minute, Duration: 10 * time.Second}, client, nil); err != nil {
		return m, err
	}
	m.queryCPU = totalCPU(procs) - cpuBefore
	if err := noErrors("query", m.query); err != nil {
		return m, err
	}
	cpuBefore = totalCPU(procs)
	if m.alone, err = queriesOneByOne(client, base+"/prometheus", "bench-query", 10*time.Second); err != nil {
		return m, err
	}
	m.aloneCPU = totalCPU(procs) - cpuBefore
	return m, nil
}

// queriesOneByOne sends the dashboard queries as RunQuery chooses them, the
// next as soon as the last is answered, for at least d and at least once
// each as an instant and as a range query, and returns their latencies,
// sorted.
func queriesOneByOne(c *http.Client, base, tenant string, d time.Duration) ([]time.Duration, error) {
	var latencies []time.Duration
	start := time.Now()
	for n := 0; time.Since(start) < d || n < 2*len(loadgen.DefaultQueries); n++ {
		q := loadgen.DefaultQueries[n%len(loadgen.DefaultQueries)]
		now := time.Now()
		form := url.Values{"query": {q}, "time": {unixSeconds(now)}}
		path := "/api/v1/query"
		if n%2 == 1 {
			// As RunQuery's range queries: the last 10 minutes in 250 steps.
			form = url.Values{"query": {q}, "start": {unixSeconds(now.Add(-10 * time.Minute))}, "end": {unixSeconds(now)}, "step": {"2.4"}}
			path = "/api/v1/query_range"
		}
		began := time.Now()
		body, err := postQuery(c, base+path, tenant, form)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		if !strings.Contains(string(body), `"status":"success"`) {
			return nil, fmt.Errorf("%s: %.300s", q, body)
		}
		latencies = append(latencies, time.Since(began))
	}
	slices.Sort(latencies)
	return latencies, nil
}

func unixSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// writeExampleConfig writes Cortex's example into dir, rewritten as
// Cortex's example tests rewrite it: its directories under dir, blocks on
// the filesystem instead of S3, and the certificates' real paths.
func (b *bench) writeExampleConfig(dir string) (string, error) {
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		return "", err
	}
	s := string(data)
	rewrites := []string{"/tmp/cortex", dir, "backend: s3", "backend: filesystem"}
	for _, f := range []string{"server.crt", "server.key", "client.crt", "client.key", "root.crt"} {
		rewrites = append(rewrites, `"`+f+`"`, `"`+filepath.Join(b.certs, f)+`"`)
	}
	for i := 0; i < len(rewrites); i += 2 {
		if !strings.Contains(s, rewrites[i]) {
			return "", fmt.Errorf("%s no longer contains %q", exampleConfig, rewrites[i])
		}
		s = strings.ReplaceAll(s, rewrites[i], rewrites[i+1])
	}
	path := filepath.Join(dir, "cortex.yaml")
	return path, os.WriteFile(path, []byte(s), 0o600)
}

// compareFlags are the flags both binaries get on top of the example: the
// loopback ports, the guide's TLS flags on the links the example leaves out
// (the HTTP server, the store-gateway client), the -<prefix>.tls-enabled
// the original needs before it uses a client's certificates at all, and
// what the load needs.
func compareFlags(config, dir, certs string, p *proc) []string {
	path := func(f string) string { return filepath.Join(certs, f) }
	flags := []string{
		"-config.file=" + config,
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=" + strconv.Itoa(p.http),
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=" + strconv.Itoa(p.grpc),
		"-ingester.lifecycler.addr=127.0.0.1", "-ingester.join-after=0s", "-log.level=warn",
		"-blocks-storage.filesystem.dir=" + filepath.Join(dir, "blocks"),
		// The gossiping alertmanager cluster would listen on a fixed port.
		"-alertmanager.cluster.listen-address=",
		// The example disables tenants; the load writes two.
		"-auth.enabled=true",
		// Cortex reads a rate limit of 0 as "nothing passes": a limit no
		// load here reaches instead.
		"-distributor.ingestion-rate-limit=1e9", "-distributor.ingestion-burst-size=1000000000",
		"-server.http-tls-cert-path=" + path("server.crt"), "-server.http-tls-key-path=" + path("server.key"),
		"-server.http-tls-client-auth=RequireAndVerifyClientCert", "-server.http-tls-ca-path=" + path("root.crt"),
	}
	for _, prefix := range []string{"ingester.client", "querier.frontend-client", "querier.store-gateway-client"} {
		flags = append(flags, "-"+prefix+".tls-enabled=true",
			"-"+prefix+".tls-cert-path="+path("client.crt"), "-"+prefix+".tls-key-path="+path("client.key"),
			"-"+prefix+".tls-ca-path="+path("root.crt"))
	}
	return flags
}

// noErrors refuses a load in which any request failed: a run with errors
// is not a figure. Queries the load generator could not start on time
// (all slots busy) are no server error and are reported instead.
func noErrors(what string, s *loadgen.Summary) error {
	for status, n := range s.Errors {
		if status == "skipped" {
			continue
		}
		return fmt.Errorf("%d of %d %s requests failed with %s: %s", n, s.Requests, what, status, s.ErrorMessages[status])
	}
	if s.SucceededRequests == 0 {
		return fmt.Errorf("no %s request succeeded", what)
	}
	return nil
}

// expectSeries asks for the tenant's series count at the present.
func expectSeries(c *http.Client, base, tenant string, want int) error {
	body, err := postQuery(c, base+"/prometheus/api/v1/query", tenant, url.Values{"query": {"count(loadgen_metric)"}})
	if err != nil {
		return fmt.Errorf("count(loadgen_metric) of tenant %s: %w", tenant, err)
	}
	if !strings.Contains(string(body), `"`+strconv.Itoa(want)+`"]`) {
		return fmt.Errorf("count(loadgen_metric) of tenant %s: want %d series, got %.300s", tenant, want, body)
	}
	return nil
}

// postQuery sends a query form as Grafana does and returns the answer,
// which must have status 200.
func postQuery(c *http.Client, target, tenant string, form url.Values) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %.300s", resp.StatusCode, body)
	}
	return body, nil
}

// version names a binary: its -version line in quotes, and the Go release
// and build tags it was built with.
func version(binary string) (string, error) {
	out, err := exec.Command(binary, "-version").Output()
	if err != nil {
		return "", fmt.Errorf("%s -version: %w", binary, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return "", err
	}
	built := "built with " + info.GoVersion
	for _, s := range info.Settings {
		if s.Key == "-tags" {
			built += ", tags " + s.Value
		}
	}
	return fmt.Sprintf("`-version`: \"%s\", %s", strings.TrimSpace(line), built), nil
}

// checkOriginal refuses a build of the original without the slicelabels
// tag: its unsafe casts between label slices and Prometheus' labels would
// misread the default string labels.
func checkOriginal(binary string) error {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return err
	}
	for _, s := range info.Settings {
		if s.Key == "-tags" && strings.Contains(s.Value, "slicelabels") {
			return nil
		}
	}
	return errors.New(binary + " was built without the slicelabels tag, unlike Cortex's releases; build it with scripts/cortex-original.sh")
}

// compareHeading opens the comparison's section of the report.
const compareHeading = "## Against Cortex 1.21.1"

// measure is one row of the comparison: a figure of each run, and whether
// more of it is better.
type measure struct {
	name       string
	value      func(measured) float64
	higherWins bool
}

func (b *bench) measures() []measure {
	return []measure{
		{"samples per server CPU-second", measured.perCPU, true},
		{"push p50", func(m measured) float64 { return m.write.LatencyP50Ms }, false},
		{"push p99", func(m measured) float64 { return m.write.LatencyP99Ms }, false},
		{"query p50", func(m measured) float64 { return m.query.LatencyP50Ms }, false},
		{"query p99", func(m measured) float64 { return m.query.LatencyP99Ms }, false},
		{"server CPU per query", measured.cpuPerQuery, false},
		{"query p50, one at a time", func(m measured) float64 { return m.alonePercentile(0.5) }, false},
		{"slowest query, one at a time", func(m measured) float64 { return m.alonePercentile(1) }, false},
		{"server CPU per query, one at a time", measured.cpuPerQueryAlone, false},
		{"RSS after the load per active series", func(m measured) float64 { return m.perSeries(b.series) }, false},
		{"RSS added by the load per active series", func(m measured) float64 { return float64(m.loadRSS-m.idleRSS) / float64(b.series) }, false},
	}
}

// compareReport renders the comparison's section of docs/benchmarks.md.
func compareReport(b *bench, runs [][2]measured, original, ours system, command string) (string, error) {
	origVersion, err := version(original.binary)
	if err != nil {
		return "", err
	}
	oursVersion, err := version(ours.binary)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s\n\n", compareHeading)
	fmt.Fprintf(&sb, "Measured by `make bench-cortex` (`%s`) in one run on %s: %s. "+
		"The original, %s, is built by scripts/cortex-original.sh from its module source as Cortex's release Makefile builds it "+
		"(%s). This system is at commit %s (%s).\n\n", command, today(), machine(), original.name, origVersion, commit(), oursVersion)
	fmt.Fprintf(&sb, "Each runs as one process (`-target=all`) from the same configuration, Cortex's own `single-process-config-blocks-tls.yaml` "+
		"(its directories, certificates and blocks on the filesystem filled in as the example tests do; it sends pushes to the ingester with gzip), "+
		"plus the same flags: the guide's TLS flags on the HTTP server and the store-gateway client, `-<prefix>.tls-enabled=true` on every gRPC client, "+
		"`-auth.enabled=true` (the load writes two tenants), a rate limit of 1e9, loopback listeners. "+
		"Every link has mutual TLS with certificates of one private CA, replication factor 1, fresh directories per run. "+
		"%d rounds, each running the original and then this system; a run in which any push or query fails, or whose tenants do not hold all %d series afterwards, stops the tool. "+
		"Ingest: `cortex loadgen`'s closed loop, %d series of 8 labels, 1,000 series per request, 4 writers, %s measured after %s of warm-up; "+
		"server CPU is the process's user+system time over the measured window, from /proc. "+
		"Memory: the process's RSS after that load, divided by the %d active series. "+
		"Queries: `loadgen.DefaultQueries`, instant and 10-minute range alternately, 4 per second for 10 s, over a second tenant holding the same series "+
		"scraped every 15 s for the last 10 minutes, as `make bench` sends them; server CPU per query is the process's CPU time from the first query to the last answer, divided by the queries answered. "+
		"Then the same queries one at a time for 10 s, each sent when the last is answered: the time to answer without waiting in line "+
		"(a run answers 10 to 30 of them, too few for a 99th percentile: the slowest is given instead). "+
		"Client and server share the machine and its 2 cores, over loopback.\n\n",
		b.rounds, b.series, b.series, b.duration, b.warmup, b.series)
	var cpuPerQuery []float64
	for _, pair := range runs {
		cpuPerQuery = append(cpuPerQuery, pair[0].cpuPerQuery(), pair[1].cpuPerQuery())
	}
	if cores := 4 * medianOf(cpuPerQuery); cores > 0.5*float64(runtime.NumCPU()) {
		fmt.Fprintf(&sb, "At the CPU per query measured, 4 queries per second ask for %.1f of the machine's %d cores: "+
			"at that rate the latencies are mostly time spent waiting in line, and they swing widely from round to round "+
			"with the machine's other load; the one-at-a-time latencies and the CPU per query are the steadier figures.\n\n",
			cores, runtime.NumCPU())
	}

	sb.WriteString("Ratios are this system's figure divided by the original's, per round and their median.\n\n")
	sb.WriteString("| measure | better | per round | median | this system is |\n|---|---|---|---|---|\n")
	var worse []string
	for _, m := range b.measures() {
		ratios := make([]float64, len(runs))
		cells := make([]string, len(runs))
		for i, pair := range runs {
			ratios[i] = m.value(pair[1]) / m.value(pair[0])
			cells[i] = fmt.Sprintf("%.2f", ratios[i])
		}
		med := medianOf(ratios)
		better := "lower"
		verdict := "better"
		if m.higherWins {
			better = "higher"
		}
		if (m.higherWins && med < 1) || (!m.higherWins && med > 1) {
			verdict = "**worse**"
			worse = append(worse, fmt.Sprintf("%s (%.2fx the original's)", m.name, med))
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %.2f | %s |\n", m.name, better, strings.Join(cells, ", "), med, verdict)
	}
	if len(worse) == 0 {
		sb.WriteString("\nThis system is ahead of the original on every measure here.\n")
	} else {
		fmt.Fprintf(&sb, "\nWorse than the original, by the median: %s.\n", strings.Join(worse, "; "))
	}

	sb.WriteString("\nEach run's figures:\n\n| round | binary | samples/s (wall) | server CPU cores | samples per server CPU-second | push p50 / p99 | RSS ready / after load | per active series | query p50 / p99 | server CPU per query | queries answered / skipped | one at a time: p50 / slowest, CPU per query, queries |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for round, pair := range runs {
		for i, m := range pair {
			name := []string{original.name, ours.name}[i]
			fmt.Fprintf(&sb, "| %d | %s | %.0f | %.2f | %.0f | %.1f / %.1f ms | %.0f / %.0f MB | %.1f KB | %.0f / %.0f ms | %.0f ms | %d / %d | %.0f / %.0f ms, %.0f ms, %d |\n",
				round+1, name, m.write.SamplesPerSecond, m.writeCPU/m.write.DurationSeconds, m.perCPU(),
				m.write.LatencyP50Ms, m.write.LatencyP99Ms, float64(m.idleRSS)/1e6, float64(m.loadRSS)/1e6, m.perSeries(b.series)/1e3,
				m.query.LatencyP50Ms, m.query.LatencyP99Ms, m.cpuPerQuery()*1e3, m.query.SucceededRequests, m.query.Errors["skipped"],
				m.alonePercentile(0.5), m.alonePercentile(1), m.cpuPerQueryAlone()*1e3, len(m.alone))
		}
	}
	sb.WriteString("\n\"skipped\" counts queries the load generator could not start on time because 16 were already running; they are in no latency figure.\n")
	return sb.String(), nil
}

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// withSection returns page with its comparison section replaced by
// section, or section inserted before the profiling notes (or at the end)
// when page has none.
func withSection(page, section string) string {
	section = strings.TrimRight(section, "\n") + "\n"
	if start := strings.Index(page, "\n"+compareHeading+"\n"); start >= 0 {
		start++
		end := len(page)
		if next := strings.Index(page[start+len(compareHeading):], "\n## "); next >= 0 {
			end = start + len(compareHeading) + next + 1
			section += "\n"
		}
		return page[:start] + section + page[end:]
	}
	if at := strings.Index(page, "\n## Profiling notes\n"); at >= 0 {
		return page[:at+1] + section + "\n" + page[at+1:]
	}
	return strings.TrimRight(page, "\n") + "\n\n" + section
}

// sectionOf returns page's comparison section, or "" when it has none.
func sectionOf(page string) string {
	start := strings.Index(page, "\n"+compareHeading+"\n")
	if start < 0 {
		return ""
	}
	rest := page[start+1:]
	if next := strings.Index(rest[len(compareHeading):], "\n## "); next >= 0 {
		return rest[:len(compareHeading)+next+1]
	}
	return rest
}
