package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (r result) perCPU() float64 { return float64(r.write.Samples) / r.serverCPU }

// median returns the run with the median samples per server CPU-second, so
// a row's figures all come from one run.
func median(rs []result) result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.perCPU(), b.perCPU()) })
	return sorted[len(sorted)/2]
}

func report(b *bench, runs [][2][]result) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Benchmarks\n\nMeasured by `make bench` (cmd/benchreport) in one run on %s: %s, commit %s. "+
		"Load: `cortex loadgen`'s closed loop, %d series of 8 labels, 1,000 series per request, 4 writers, %s measured after %s of warm-up, "+
		"client and servers on the same machine, over loopback. %d rounds; each round measures every layout with plaintext and then mutual TLS back to back, "+
		"and each row shows the round with the median samples per server CPU-second. Server CPU is user+system time of every server process during the measured window, from /proc.\n\n",
		today(), machine(), commit(), b.series, b.duration, b.warmup, b.rounds)

	sb.WriteString("## Ingest\n\n| layout | TLS | samples/s (wall) | server CPU cores | samples per server CPU-second | push p50 / p99 | errors | TLS handshakes between components |\n|---|---|---|---|---|---|---|---|\n")
	for _, pair := range runs {
		for _, rs := range pair {
			r := median(rs)
			tls := "plaintext"
			if r.tls {
				tls = "mutual TLS"
			}
			fmt.Fprintf(&sb, "| %s | %s | %.0f | %.2f | %.0f | %.1f / %.1f ms | %s | %d |\n", r.name, tls, r.write.SamplesPerSecond,
				r.serverCPU/r.write.DurationSeconds, r.perCPU(), r.write.LatencyP50Ms, r.write.LatencyP99Ms, errs(r.write.Errors), r.handshakes)
		}
	}
	sb.WriteString("\n## Mutual TLS against plaintext, side by side\n\nSamples per server CPU-second with mutual TLS divided by the same without, for the two runs of each round (measured back to back), and their median.\n\n| layout | per round | median |\n|---|---|---|\n")
	for _, pair := range runs {
		var ratios []float64
		var cells []string
		for i := range pair[0] {
			ratio := pair[1][i].perCPU() / pair[0][i].perCPU()
			ratios = append(ratios, ratio)
			cells = append(cells, fmt.Sprintf("%.3f", ratio))
		}
		slices.Sort(ratios)
		fmt.Fprintf(&sb, "| %s | %s | %.3f |\n", pair[0][0].name, strings.Join(cells, ", "), ratios[len(ratios)/2])
	}
	sb.WriteString("\n## Ingester memory\n\n| layout | TLS | ingester RSS after load | per active series (incl. replicas) |\n|---|---|---|---|\n")
	for _, pair := range runs {
		for _, rs := range pair {
			r := median(rs)
			fmt.Fprintf(&sb, "| %s | %v | %.0f MB | %.1f KB |\n", r.name, r.tls, float64(r.ingesterRSS)/1e6, float64(r.ingesterRSS)/float64(b.series*r.rf)/1e3)
		}
	}
	sb.WriteString("\n## Query latency\n\nDashboard-like queries (`loadgen.DefaultQueries`, instant and 10-minute range alternately), 4 per second for 10 s, after the first round's write load, over a second tenant holding the same series scraped every 15 s for the last 10 minutes (`cortex loadgen -backfill=10m -scrape-interval=15s`); queries still running at the end are waited for and counted. \"skipped\" counts queries that could not start on time because 16 were already running.\n\n| layout | TLS | p50 | p99 | errors |\n|---|---|---|---|---|\n")
	for _, pair := range runs {
		for _, rs := range pair {
			r := rs[0]
			fmt.Fprintf(&sb, "| %s | %v | %.1f ms | %.1f ms | %s |\n", r.name, r.tls, r.query.LatencyP50Ms, r.query.LatencyP99Ms, errs(r.query.Errors))
		}
	}
	if notes, err := os.ReadFile("docs/profiling.md"); err == nil {
		sb.WriteString("\n")
		sb.Write(notes)
	}
	return sb.String()
}

func errs(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+strconv.Itoa(v))
	}
	return strings.Join(parts, " ")
}

func today() string { return time.Now().UTC().Format("2006-01-02") }

// machine names the cores, the CPU model and the Go release of the tool.
func machine() string {
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s", runtime.NumCPU(), cpu, runtime.Version())
}

func commit() string {
	out, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	return strings.TrimSpace(string(out))
}
