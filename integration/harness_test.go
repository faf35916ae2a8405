// Package integration starts the real cortex binary with real certificates
// and talks to it over loopback.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cortex-integration")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "cortex")
	build := exec.Command("go", "build", "-o", binary, "../cmd/cortex")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cortex:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// handedOut holds every port freePort returned in this run: a port is
// free until the process it was chosen for binds it, and the kernel may
// offer it again meanwhile, for example to the next process of a cluster.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort returns a loopback port that was free a moment ago and that no
// other caller in this run has been given.
//
// Ports come from below Linux's ephemeral range (32768 and up), so the
// outgoing connections of processes already running (gRPC, gossip) cannot
// take one between its choice and its bind.
func freePort(t *testing.T) int {
	t.Helper()
	for attempt := 0; ; attempt++ {
		if attempt == 1000 {
			t.Fatal("no free loopback port found between 20000 and 32767")
		}
		port := 20000 + rand.IntN(12768)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		handedOut.Lock()
		seen := handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if !seen {
			return port
		}
	}
}

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is one running cortex.
type process struct {
	t        *testing.T
	cmd      *exec.Cmd
	out      *syncBuffer
	httpPort int
	grpcPort int
	done     chan struct{}
	exitErr  error
}

// start runs cortex on loopback with fresh ports plus the given flags. A
// port found free can be taken by another test process before cortex binds
// it; then cortex exits at once and start tries again with other ports.
func start(t *testing.T, flags ...string) *process {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p := launch(t, flags)
		if attempt == 3 || !p.lostPortRace() {
			return p
		}
		t.Logf("a port was taken before cortex could bind it; retrying with other ports")
	}
}

func launch(t *testing.T, flags []string) *process {
	t.Helper()
	p := &process{t: t, out: &syncBuffer{}, httpPort: freePort(t), grpcPort: freePort(t), done: make(chan struct{})}
	args := append([]string{
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=" + strconv.Itoa(p.httpPort),
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=" + strconv.Itoa(p.grpcPort),
		"-server.graceful-shutdown-timeout=5s",
	}, flags...)
	p.cmd = exec.Command(binary, args...)
	// Relative defaults (./tsdb/, ./configs/configs.db) land in a scratch
	// directory, not in the source tree.
	p.cmd.Dir = t.TempDir()
	// The tests pin the binary's own defaults, GOGC's included.
	p.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOGC=") })
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("cortex output:\n%s", p.out.String())
		}
	})
	return p
}

// lostPortRace waits until p listens or exits, and reports whether it
// exited because its HTTP or gRPC port was already taken.
func (p *process) lostPortRace() bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			out := p.out.String()
			return strings.Contains(out, "address already in use") &&
				(strings.Contains(out, ":"+strconv.Itoa(p.httpPort)+":") || strings.Contains(out, ":"+strconv.Itoa(p.grpcPort)+":"))
		default:
		}
		if strings.Contains(p.out.String(), "server listening") {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// runToExit runs cortex expecting it to exit by itself (a startup error).
func runToExit(t *testing.T, args ...string) (exitCode int, output string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("cortex %v did not exit within 30s; output:\n%s", args, out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// stop sends SIGTERM and waits for the process to exit.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("cortex did not stop within 20s of SIGTERM")
	}
}

func (p *process) httpAddr() string { return "127.0.0.1:" + strconv.Itoa(p.httpPort) }
func (p *process) grpcAddr() string { return "127.0.0.1:" + strconv.Itoa(p.grpcPort) }

// waitReady polls url with client until it answers 200, or fails the test.
func (p *process) waitReady(client *http.Client, url string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			p.t.Fatalf("cortex exited early (%v); output:\n%s", p.exitErr, p.out.String())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s not ready within 20s; last answer: %s", url, last)
}

// waitLog waits until the process output contains s.
func (p *process) waitLog(s string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(p.out.String(), s) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("output never contained %q:\n%s", s, p.out.String())
}

// tlsClient builds a client of the project's own TLS package, as a
// component would, from a prefix-style config.
func tlsClient(t *testing.T, cfg tlsconfig.ClientConfig) *tlsconfig.Client {
	t.Helper()
	cfg.CommonNameFallback = true
	if cfg.MinVersion == "" {
		cfg.MinVersion = "VersionTLS12"
	}
	c, err := tlsconfig.NewClient("test.client", cfg, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func httpClient(c *tlsconfig.Client) *http.Client {
	return &http.Client{Transport: c.HTTPTransport(), Timeout: 10 * time.Second}
}

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func itoa(i int) string { return strconv.Itoa(i) }

func loopbackIPs() []net.IP { return []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")} }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// readGuide returns the user's guide: the shared specification beside the
// checkout, or the copy in testdata when the checkout stands alone.
func readGuide(t *testing.T) []byte {
	t.Helper()
	for _, path := range []string{"../../shared/spec/tls-guide.txt", "testdata/tls-guide.txt"} {
		if b, err := os.ReadFile(path); err == nil {
			return b
		}
	}
	t.Fatal("the TLS guide is in neither ../../shared/spec nor testdata")
	return nil
}
