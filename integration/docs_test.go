package integration

// The docs' shell blocks run here, so a doc cannot break unnoticed.
//
// Convention: every fenced block of a checked doc carries an info string.
// A shell block (sh, bash, shell, console) says what it is after the
// language:
//
//	```sh runnable        run by TestDocs, in order with the doc's other runnable blocks
//	```sh runnable stop-first
//	                      the same, after the servers of the blocks before it are stopped
//	                      (the doc says to stop them, e.g. make run before a multi-process setup)
//	```sh not-runnable    needs what this machine lacks (Kubernetes, Grafana, a Prometheus
//	                      server, other hosts, object storage credentials, the source tree
//	                      for go test) or shows one of several alternatives
//
// Any other block names its language (yaml, text, promql, ...). A shell
// block without either marker, or a block without an info string, fails
// the test. A doc's runnable blocks run as one `bash -euo pipefail` script
// in a temporary directory holding the built binary (as ./cortex and on
// PATH), the repository's Makefile (GO=true: its build step does nothing,
// the binary is already built) and docs/examples. Ports 7000-9999 written in the blocks
// and the examples are rewritten to free loopback ports chosen by the test,
// one free decade per decade used, so computed ports (910$i) keep their
// layout; BASE_PORT=<n> (scripts/cluster.sh's first port) becomes the first
// of 50 free ports. scripts/cluster.sh is there too. A doc without a
// runnable block only has its marks checked. A block waits by polling (`until curl ...; do sleep 1; done`).
// Servers a block starts in the background (`&`) are stopped when the
// script ends.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// docsChecked are the docs whose blocks are all marked.
var docsChecked = []string{"tls.md", "getting-started.md", "multi-process.md", "blocks-storage.md",
	"ingestion.md", "alertmanager.md", "ruler-api.md", "scaling.md"}

// docsScriptTimeout bounds one doc's scripts, unless docsTimeouts says
// otherwise.
const docsScriptTimeout = 50 * time.Second

// docsTimeouts are the docs that start more than a few processes:
// multi-process.md's cluster of ten takes up to two minutes to be ready on
// a loaded 2-core machine (integration/cluster_script_test.go allows 150s).
var docsTimeouts = map[string]time.Duration{"multi-process.md": 200 * time.Second}

type docBlock struct {
	line      int
	lang      string
	runnable  bool
	stopFirst bool
	text      string
}

var shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

// parseDocBlocks returns a doc's fenced blocks, or an error naming every
// block that is not marked.
func parseDocBlocks(name, doc string) ([]docBlock, error) {
	var (
		blocks []docBlock
		errs   []error
		cur    *docBlock
		body   []string
	)
	for i, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur != nil {
			if trimmed == "```" {
				cur.text = strings.Join(body, "\n") + "\n"
				blocks = append(blocks, *cur)
				cur, body = nil, nil
				continue
			}
			body = append(body, line)
			continue
		}
		if !strings.HasPrefix(trimmed, "```") {
			continue
		}
		info := strings.Fields(strings.TrimPrefix(trimmed, "```"))
		b := &docBlock{line: i + 1}
		switch {
		case len(info) == 0:
			errs = append(errs, fmt.Errorf("%s:%d: fenced block without an info string: name its language (text for output)", name, i+1))
		case shellLangs[info[0]]:
			b.lang = info[0]
			marks := info[1:]
			switch {
			case len(marks) == 1 && marks[0] == "runnable":
				b.runnable = true
			case len(marks) == 2 && marks[0] == "runnable" && marks[1] == "stop-first":
				b.runnable, b.stopFirst = true, true
			case len(marks) == 1 && marks[0] == "not-runnable":
			default:
				errs = append(errs, fmt.Errorf("%s:%d: %s block is marked neither runnable nor not-runnable (```%s runnable or ```%s not-runnable)", name, i+1, info[0], info[0], info[0]))
			}
		default:
			b.lang = info[0]
		}
		cur = b
	}
	if cur != nil {
		errs = append(errs, fmt.Errorf("%s:%d: fenced block is never closed", name, cur.line))
	}
	return blocks, errors.Join(errs...)
}

func TestDocsBlocksMarked(t *testing.T) {
	for _, name := range docsChecked {
		data, err := os.ReadFile(filepath.Join("..", "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseDocBlocks(name, string(data)); err != nil {
			t.Error(err)
		}
	}
}

func TestDocsParseRefusesUnmarked(t *testing.T) {
	_, err := parseDocBlocks("x.md", "a\n```sh\nls\n```\n```\nout\n```\n```sh runnable\nls\n```\n")
	want := "x.md:2: sh block is marked neither runnable nor not-runnable (```sh runnable or ```sh not-runnable)\n" +
		"x.md:5: fenced block without an info string: name its language (text for output)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	blocks, err := parseDocBlocks("y.md", "```sh runnable\necho a\n```\n```bash not-runnable\nkubectl apply\n```\n```sh runnable stop-first\necho b\n```\n")
	if err != nil || len(blocks) != 3 || !blocks[0].runnable || blocks[0].stopFirst || blocks[0].text != "echo a\n" || blocks[1].runnable ||
		!blocks[2].runnable || !blocks[2].stopFirst {
		t.Fatalf("got %+v, %v", blocks, err)
	}
}

// portRewriter maps the ports a doc names to free loopback ports, decade by
// decade: 9009 and 910$i keep their last digit within a free decade.
type portRewriter struct {
	t       *testing.T
	decades map[int]int
}

var (
	literalPort  = regexp.MustCompile(`(:\s?|port[=\s])([7-9]\d{3})\b`)
	basePort     = regexp.MustCompile(`\bBASE_PORT=(\d{4,5})\b`)
	computedPort = regexp.MustCompile(`(port=)([7-9]\d{2})\$(\(\(([^)]*)\)\)|[A-Za-z_]\w*)`)

	docsPortsMu sync.Mutex
	docsPorts   = map[int]bool{}
)

func (r *portRewriter) base(decade int) int {
	if b, ok := r.decades[decade]; ok {
		return b
	}
	docsPortsMu.Lock()
	defer docsPortsMu.Unlock()
	for range 200 {
		b := 20000 + 10*rand.IntN(4000)
		if docsPorts[b] {
			continue
		}
		free := true
		for p := b; p < b+10 && free; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			_ = l.Close()
		}
		if free {
			docsPorts[b] = true
			r.decades[decade] = b
			return b
		}
	}
	r.t.Fatal("no free decade of ports on 127.0.0.1")
	return 0
}

// clusterBase returns the first of 50 free ports on 127.0.0.1, for
// scripts/cluster.sh's BASE_PORT, and reserves their decades.
func (r *portRewriter) clusterBase() int {
	docsPortsMu.Lock()
	defer docsPortsMu.Unlock()
	for range 200 {
		b := 20000 + 50*rand.IntN(800)
		free := true
		for p := b; p < b+50 && free; p += 10 {
			free = !docsPorts[p]
		}
		for p := b; p < b+50 && free; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			_ = l.Close()
		}
		if free {
			for p := b; p < b+50; p += 10 {
				docsPorts[p] = true
			}
			return b
		}
	}
	r.t.Fatal("no 50 free ports in a row on 127.0.0.1")
	return 0
}

func (r *portRewriter) rewrite(s string) string {
	s = basePort.ReplaceAllStringFunc(s, func(string) string {
		return "BASE_PORT=" + strconv.Itoa(r.clusterBase())
	})
	s = computedPort.ReplaceAllStringFunc(s, func(m string) string {
		g := computedPort.FindStringSubmatch(m)
		decade, _ := strconv.Atoi(g[2])
		expr := g[3]
		if g[4] != "" {
			expr = g[4]
		}
		return g[1] + "$((" + strconv.Itoa(r.base(decade)) + "+" + expr + "))"
	})
	return literalPort.ReplaceAllStringFunc(s, func(m string) string {
		g := literalPort.FindStringSubmatch(m)
		port, _ := strconv.Atoi(g[2])
		return g[1] + strconv.Itoa(r.base(port/10)+port%10)
	})
}

func TestDocsPortRewrite(t *testing.T) {
	r := &portRewriter{t: t, decades: map[int]int{}}
	got := r.rewrite("curl https://127.0.0.1:9009/ready -server.grpc-listen-port=919$i -memberlist.bind-port=794$((5+i)) -memberlist.join=127.0.0.1:7946\nhttp_listen_port: 9001 -days 3650\n")
	b900, b919, b794 := r.decades[900], r.decades[919], r.decades[794]
	want := fmt.Sprintf("curl https://127.0.0.1:%d/ready -server.grpc-listen-port=$((%d+i)) -memberlist.bind-port=$((%d+5+i)) -memberlist.join=127.0.0.1:%d\nhttp_listen_port: %d -days 3650\n",
		b900+9, b919, b794, b794+6, b900+1)
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	got = r.rewrite("BASE_PORT=19100 scripts/cluster.sh")
	var base int
	if _, err := fmt.Sscanf(got, "BASE_PORT=%d scripts/cluster.sh", &base); err != nil || base < 20000 || base%50 != 0 {
		t.Fatalf("got %q, want BASE_PORT= the first of 50 free ports", got)
	}
}

// TestDocs runs every checked doc's runnable blocks.
func TestDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers from the docs")
	}
	for _, tool := range []string{"bash", "curl", "make", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; .ci/run installs it", tool)
		}
	}
	bin := testkit.CortexBinary(t)
	for _, name := range docsChecked {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runDoc(t, bin, name)
		})
	}
}

func runDoc(t *testing.T, bin, name string) {
	data, err := os.ReadFile(filepath.Join("..", "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseDocBlocks(name, string(data))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(blocks, func(b docBlock) bool { return b.runnable }) {
		t.Skipf("%s has no runnable block (TestDocsBlocksMarked checks its marks)", name)
	}
	r := &portRewriter{t: t, decades: map[int]int{}}
	dir := t.TempDir()
	copyFile(t, bin, filepath.Join(dir, "cortex"), 0o755)
	copyFile(t, bin, filepath.Join(dir, ".bin", "cortex"), 0o755)
	copyFile(t, filepath.Join("..", "Makefile"), filepath.Join(dir, "Makefile"), 0o644)
	copyFile(t, filepath.Join("..", "scripts", "cluster.sh"), filepath.Join(dir, "scripts", "cluster.sh"), 0o755)
	examples, err := filepath.Glob(filepath.Join("..", "docs", "examples", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples {
		b, err := os.ReadFile(ex)
		if err != nil {
			t.Fatal(err)
		}
		writeDocFile(t, filepath.Join(dir, "docs", "examples", filepath.Base(ex)), []byte(r.rewrite(string(b))), 0o644)
	}
	// One script per run of blocks up to the next stop-first block.
	var scripts []*strings.Builder
	for _, b := range blocks {
		if !b.runnable {
			continue
		}
		if len(scripts) == 0 || b.stopFirst {
			scripts = append(scripts, &strings.Builder{})
		}
		fmt.Fprintf(scripts[len(scripts)-1], "echo '### %s:%d'\n%s", name, b.line, r.rewrite(b.text))
	}
	timeout := docsScriptTimeout
	if d, ok := docsTimeouts[name]; ok {
		timeout = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i, script := range scripts {
		runDocScript(ctx, t, dir, name, i, script.String(), timeout)
	}
}

// runDocScript runs one script of a doc's blocks and stops what it left
// running.
func runDocScript(ctx context.Context, t *testing.T, dir, name string, i int, script string, timeout time.Duration) {
	file := fmt.Sprintf(".doc-%d.sh", i)
	writeDocFile(t, filepath.Join(dir, file), []byte(script), 0o644)

	logFile := filepath.Join(dir, fmt.Sprintf(".doc-%d.log", i))
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", file)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Join(dir, ".bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		// The binary is already built: the Makefile's build step
		// ($(GO) build ...) does nothing.
		"GO=true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	runErr := cmd.Run()
	if !stopGroup(t, cmd.Process.Pid) {
		log, _ := os.ReadFile(logFile)
		t.Logf("%s's output:\n%s", name, lastLines(string(log), 80))
	}
	if runErr != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("%s's runnable blocks failed (%v; timeout %s for the doc):\n--- script\n%s--- output\n%s", name, runErr, timeout, script, log)
	}
}

// stopGroup stops what the script left running in the background: SIGTERM,
// as Ctrl-C would, then SIGKILL if the group is not gone in time. It
// reports whether the group stopped on SIGTERM.
func stopGroup(t *testing.T, pgid int) bool {
	t.Helper()
	if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return true
	}
	deadline := time.Now().Add(testkit.StopTimeout)
	for time.Now().Before(deadline) {
		if len(groupAlive(pgid)) == 0 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	left := groupAlive(pgid)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	t.Errorf("processes of the doc's script still ran %s after SIGTERM; killed: %s", testkit.StopTimeout, strings.Join(left, "; "))
	return false
}

// lastLines is the end of a log, at most n lines.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeDocFile(t, to, b, mode)
}

func writeDocFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// groupAlive returns the processes of the group still running, as their
// /proc stat lines. An exited process waiting to be reaped (a zombie) does
// not count.
func groupAlive(pgid int) []string {
	var alive []string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		if g, err := strconv.Atoi(fields[2]); err == nil && g == pgid {
			desc := strings.TrimSpace(string(b[:i+1])) + " " + fields[0]
			if cmdline, err := os.ReadFile(filepath.Join(filepath.Dir(f), "cmdline")); err == nil {
				desc += ": " + strings.Join(strings.Fields(strings.ReplaceAll(string(cmdline), "\x00", " ")), " ")
			}
			alive = append(alive, desc)
		}
	}
	return alive
}
