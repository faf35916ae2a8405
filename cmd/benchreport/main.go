// Command benchreport starts the system on loopback in several layouts,
// drives each with `cortex loadgen`'s load, and writes docs/benchmarks.md
// with what it measured in that one run: samples per server CPU-second,
// mutual TLS against plaintext side by side, ingester memory per series, and
// query latency. `make bench` runs it.
//
// With -baseline naming the original Cortex's binary, it measures that
// binary and this system's side by side instead, both as one process with
// mutual TLS, and rewrites only the report's "Against Cortex 1.21.1"
// section. `make bench-cortex` runs it so.
//
// It is a development tool, never part of the cortex binary: it must not be
// imported by any package, and it writes nothing outside its temporary
// directory but the -out file.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/loadgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

func main() {
	binary := flag.String("binary", "./cortex", "The cortex binary to measure.")
	out := flag.String("out", "docs/benchmarks.md", "Report to write.")
	duration := flag.Duration("duration", 15*time.Second, "Measured load per layout and round.")
	warmup := flag.Duration("warmup", 5*time.Second, "Load before measuring, so every series exists.")
	series := flag.Int("series", 20000, "Active series.")
	rounds := flag.Int("rounds", 3, "Rounds; each measures every layout with plaintext then mutual TLS, back to back, and the report takes medians.")
	baseline := flag.String("baseline", "", "The original Cortex's binary (scripts/cortex-original.sh builds it): measure it and -binary in interleaved rounds, each with mutual TLS as one process, and rewrite only the report's comparison section.")
	flag.Parse()

	run := benchmark
	if *baseline != "" {
		run = func(binary, out string, duration, warmup time.Duration, series, rounds int) error {
			return againstBaseline(*baseline, binary, out, duration, warmup, series, rounds, strings.Join(os.Args[1:], " "))
		}
	}
	if err := run(*binary, *out, *duration, *warmup, *series, *rounds); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s", *out)
}

// benchmark measures every layout for the given number of rounds in a
// temporary directory, which it removes before returning, and writes the
// report to out.
func benchmark(binary, out string, duration, warmup time.Duration, series, rounds int) error {
	work, err := os.MkdirTemp("", "cortex-bench")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			log.Printf("removing %s: %v", work, err)
		}
	}()
	certs := filepath.Join(work, "certs")
	if err := writeCerts(certs); err != nil {
		return err
	}
	b := &bench{binary: binary, work: work, certs: certs, duration: duration, warmup: warmup, series: series, rounds: rounds}

	layouts := []layout{
		{name: "single process (-target=all)", ingesters: 0, rf: 1},
		{name: "separate processes, 1 ingester, RF 1", ingesters: 1, rf: 1},
		{name: "separate processes, 3 ingesters, RF 3", ingesters: 3, rf: 3},
	}
	// runs[layout][tls] holds one result per round.
	runs := make([][2][]result, len(layouts))
	for round := 0; round < rounds; round++ {
		for i, l := range layouts {
			for t, tls := range []bool{false, true} {
				l.tls = tls
				l.queries = round == 0
				log.Printf("round %d: measuring %s, tls=%v", round+1, l.name, tls)
				r, err := b.run(l)
				if err != nil {
					return fmt.Errorf("%s: %w", l.name, err)
				}
				runs[i][t] = append(runs[i][t], r)
			}
		}
	}
	page := report(b, runs)
	// The comparison with the original is measured apart (-baseline): keep it.
	if old, err := os.ReadFile(out); err == nil {
		if section := sectionOf(string(old)); section != "" {
			page = withSection(page, section)
		}
	}
	return os.WriteFile(out, []byte(page), 0o644)
}

// againstBaseline measures the original Cortex and this system side by side
// and rewrites the comparison section of out, leaving the rest of it as is.
func againstBaseline(baseline, binary, out string, duration, warmup time.Duration, series, rounds int, args string) error {
	// A name without a directory is a file here, not one to look up in $PATH.
	var err error
	if baseline, err = filepath.Abs(baseline); err != nil {
		return err
	}
	if binary, err = filepath.Abs(binary); err != nil {
		return err
	}
	if err := checkOriginal(baseline); err != nil {
		return err
	}
	page, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	work, err := os.MkdirTemp("", "cortex-bench")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			log.Printf("removing %s: %v", work, err)
		}
	}()
	certs := filepath.Join(work, "certs")
	if err := writeCerts(certs); err != nil {
		return err
	}
	b := &bench{binary: binary, work: work, certs: certs, duration: duration, warmup: warmup, series: series, rounds: rounds}
	original, ours := system{name: "Cortex 1.21.1", binary: baseline}, system{name: "this system", binary: binary}
	runs, err := b.compare(original, ours)
	if err != nil {
		return err
	}
	section, err := compareReport(b, runs, original, ours, "go run ./cmd/benchreport "+args)
	if err != nil {
		return err
	}
	return os.WriteFile(out, []byte(withSection(string(page), section)), 0o644)
}

type layout struct {
	name      string
	ingesters int // 0: one process runs everything
	rf        int
	tls       bool
	queries   bool // also measure query latency
}

type result struct {
	layout
	write       *loadgen.Summary
	query       *loadgen.Summary
	serverCPU   float64 // seconds, all server processes, during the measured window
	ingesterRSS int64   // bytes, summed over ingesters, after the load
	handshakes  int     // client TLS handshakes between components, whole run
}

type bench struct {
	binary, work, certs string
	duration, warmup    time.Duration
	series, rounds      int
}

type proc struct {
	cmd        *exec.Cmd
	http, grpc int
	ingester   bool
}

func (b *bench) run(l layout) (result, error) {
	dir, err := os.MkdirTemp(b.work, "run")
	if err != nil {
		return result{}, err
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			_ = p.cmd.Process.Signal(os.Interrupt)
			_ = p.cmd.Wait()
		}
	}()
	start := func(ingester bool, flags ...string) (*proc, error) {
		p := &proc{http: freePort(), grpc: freePort(), ingester: ingester}
		args := append([]string{
			"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=" + strconv.Itoa(p.http),
			"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=" + strconv.Itoa(p.grpc),
			"-distributor.ingestion-rate-limit=0", "-ingester.min-ready-duration=0s", "-ingester.join-after=0s",
			"-ingester.lifecycler.addr=127.0.0.1", "-ingester.max-series-per-metric=0", "-log.level=warn",
			"-distributor.replication-factor=" + strconv.Itoa(l.rf),
		}, flags...)
		if l.tls {
			args = append(args, tlsFlags(b.certs)...)
		}
		p.cmd = exec.Command(b.binary, args...)
		p.cmd.Stderr = os.Stderr
		if err := p.cmd.Start(); err != nil {
			return nil, err
		}
		procs = append(procs, p)
		return p, nil
	}

	var front *proc
	if l.ingesters == 0 {
		p, err := start(true, "-target=all", "-blocks-storage.tsdb.dir="+filepath.Join(dir, "tsdb"))
		if err != nil {
			return result{}, err
		}
		front = p
	} else {
		seed := freePort()
		ring := func(port int) []string {
			return []string{"-ring.store=memberlist", "-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port=" + strconv.Itoa(port),
				"-memberlist.join=127.0.0.1:" + strconv.Itoa(seed)}
		}
		for i := 0; i < l.ingesters; i++ {
			port := freePort()
			if i == 0 {
				port = seed
			}
			if _, err := start(true, append(ring(port), "-target=ingester", "-ingester.lifecycler.ID=ingester-"+strconv.Itoa(i),
				"-blocks-storage.tsdb.dir="+filepath.Join(dir, "ingester-"+strconv.Itoa(i)))...); err != nil {
				return result{}, err
			}
		}
		p, err := start(false, append(ring(freePort()), "-target=distributor,querier")...)
		if err != nil {
			return result{}, err
		}
		front = p
	}

	client := b.client(l.tls)
	scheme := "http"
	if l.tls {
		scheme = "https"
	}
	base := scheme + "://127.0.0.1:" + strconv.Itoa(front.http)
	for _, p := range procs {
		if err := waitReady(client, scheme+"://127.0.0.1:"+strconv.Itoa(p.http)+"/ready"); err != nil {
			return result{}, err
		}
	}
	if err := waitRing(client, base, max(l.ingesters, 1)); err != nil {
		return result{}, err
	}

	write := loadgen.WriteConfig{URL: base + "/api/v1/push", Tenant: "bench", Series: b.series, LabelsPerSeries: 8,
		SeriesPerRequest: 1000, Writers: 4, Duration: b.warmup}
	if _, err := loadgen.RunWrite(context.Background(), write, client, nil); err != nil {
		return result{}, err
	}
	cpuBefore := totalCPU(procs)
	write.Duration = b.duration
	ws, err := loadgen.RunWrite(context.Background(), write, client, nil)
	if err != nil {
		return result{}, err
	}
	r := result{layout: l, write: ws, serverCPU: totalCPU(procs) - cpuBefore}
	for _, p := range procs {
		if p.ingester {
			r.ingesterRSS += rss(p.cmd.Process.Pid)
		}
	}
	metrics := scrape(client, base+"/metrics")
	r.handshakes = int(metrics["cortex_tls_client_handshakes_total"])
	if !l.queries {
		return r, nil
	}
	// Queries read a tenant written as Prometheus would scrape it (one
	// sample every 15s for the last 10 minutes): the closed-loop tenant
	// above holds several samples per second per series, which no
	// dashboard reads.
	backfill := loadgen.WriteConfig{URL: base + "/api/v1/push", Tenant: "bench-query", Series: b.series, LabelsPerSeries: 8,
		SeriesPerRequest: 1000, Writers: 4, ScrapeInterval: 15 * time.Second, Backfill: 10 * time.Minute}
	if _, err := loadgen.RunWrite(context.Background(), backfill, client, nil); err != nil {
		return r, err
	}
	r.query, err = loadgen.RunQuery(context.Background(), loadgen.QueryConfig{URL: base + "/prometheus", Tenant: "bench-query",
		Queries: loadgen.DefaultQueries, Rate: 4, Range: 10 * time.Minute, Duration: 10 * time.Second}, client, nil)
	return r, err
}

func (b *bench) client(tls bool) *http.Client {
	var cfg tlsconfig.ClientConfig
	if tls {
		cfg = tlsconfig.ClientConfig{CertPath: filepath.Join(b.certs, "client.crt"), KeyPath: filepath.Join(b.certs, "client.key"),
			CAPath: filepath.Join(b.certs, "root.crt"), MinVersion: "VersionTLS12"}
	}
	c, err := tlsconfig.NewClient("bench", cfg, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		log.Fatal(err)
	}
	t := c.HTTPTransport()
	t.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: t, Timeout: time.Minute}
}

func tlsFlags(certs string) []string {
	var flags []string
	for _, s := range []string{"http", "grpc"} {
		flags = append(flags,
			"-server."+s+"-tls-cert-path="+filepath.Join(certs, "server.crt"), "-server."+s+"-tls-key-path="+filepath.Join(certs, "server.key"),
			"-server."+s+"-tls-client-auth=RequireAndVerifyClientCert", "-server."+s+"-tls-ca-path="+filepath.Join(certs, "root.crt"))
	}
	return append(flags,
		"-ingester.client.tls-cert-path="+filepath.Join(certs, "client.crt"), "-ingester.client.tls-key-path="+filepath.Join(certs, "client.key"),
		"-ingester.client.tls-ca-path="+filepath.Join(certs, "root.crt"))
}

func writeCerts(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := certgen.NewCA(certgen.Options{CommonName: "bench root"})
	if err != nil {
		return err
	}
	pairs := map[string]*certgen.Pair{"root": ca}
	for _, name := range []string{"server", "client"} {
		if pairs[name], err = ca.Issue(certgen.Options{CommonName: name, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
			return err
		}
	}
	for name, p := range pairs {
		if err := os.WriteFile(filepath.Join(dir, name+".crt"), p.CertPEM, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".key"), p.KeyPEM, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// handedOut holds the ports freePort returned; only the main goroutine
// calls it.
var handedOut = map[int]bool{}

// freePort returns a loopback port free now, below Linux's ephemeral range
// (32768 and up): the outgoing connections of the processes already
// running (gRPC, gossip) cannot take it before the process it is for binds it.
// Each port is handed out once per run.
func freePort() int {
	for range 1000 {
		port := 20000 + rand.IntN(12768)
		if handedOut[port] {
			continue
		}
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			l.Close()
			handedOut[port] = true
			return port
		}
	}
	log.Fatal("no free loopback port found between 20000 and 32767")
	return 0
}

func waitReady(c *http.Client, url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within 60s", url)
}

func waitRing(c *http.Client, base string, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", base+"/ingester/ring", nil)
		req.Header.Set("Accept", "application/json")
		if resp, err := c.Do(req); err == nil {
			var sb strings.Builder
			_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
			resp.Body.Close()
			if strings.Count(sb.String(), `"state":"ACTIVE"`) >= n {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("ring at %s never had %d ACTIVE ingesters", base, n)
}

// totalCPU sums user and system CPU seconds of the processes, from /proc.
func totalCPU(procs []*proc) float64 {
	var total float64
	for _, p := range procs {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the ")" that closes the command name: utime is 14th, stime 15th overall.
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		total += (utime + stime) / 100 // USER_HZ is 100 on Linux
	}
	return total
}

func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// scrape sums each metric's series on a /metrics page.
func scrape(c *http.Client, url string) map[string]float64 {
	out := map[string]float64{}
	resp, err := c.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		v, _ := strconv.ParseFloat(strings.Fields(value)[0], 64)
		out[name] += v
	}
	return out
}
