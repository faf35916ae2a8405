package testkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// run is what one test binary shares: a scratch directory, removed by
// Main, holding the cortex binary once built.
var run struct {
	once     sync.Once
	dir      string
	err      error
	build    sync.Once
	binary   string
	buildErr error
}

func runDir() (string, error) {
	run.once.Do(func() { run.dir, run.err = os.MkdirTemp("", "cortex-test") })
	return run.dir, run.err
}

// Main runs a package's tests, then removes what SharedDir and
// CortexBinary left for the whole run. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if run.dir != "" {
		_ = os.RemoveAll(run.dir)
	}
	os.Exit(code)
}

// SharedDir returns a directory named name that every test of this test
// binary shares, created on first use and removed by Main.
func SharedDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := runDir()
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// CortexBinary builds cmd/cortex once per test binary and returns its path.
func CortexBinary(t testing.TB) string {
	t.Helper()
	run.build.Do(func() {
		dir, err := runDir()
		if err != nil {
			run.buildErr = err
			return
		}
		bin := filepath.Join(dir, "cortex")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/cortex-tls/cortex/cmd/cortex").CombinedOutput()
		if err != nil {
			run.buildErr = fmt.Errorf("building cortex: %v\n%s", err, out)
			return
		}
		run.binary = bin
	})
	if run.buildErr != nil {
		t.Fatal(run.buildErr)
	}
	return run.binary
}

// Timeouts of the process helpers: generous, as the machine may be busy
// compiling, and only ever reached when something is broken.
const (
	StartTimeout = 30 * time.Second
	StopTimeout  = 20 * time.Second
)

// Cortex is one running cortex process.
type Cortex struct {
	t   testing.TB
	cmd *exec.Cmd
	out *Buffer

	// HTTPAddr and GRPCAddr are the addresses the process bound, read from
	// its "server listening" log line.
	HTTPAddr, GRPCAddr string

	done    chan struct{}
	exitErr error
}

// LoopbackFlags bind both servers on 127.0.0.1 and ports the kernel
// chooses, and bound the graceful shutdown.
func LoopbackFlags() []string {
	return []string{
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=0",
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=0",
		"-server.graceful-shutdown-timeout=5s",
	}
}

// StartCortex runs cortex with LoopbackFlags followed by flags, waits until
// it serves, and stops it when the test ends.
func StartCortex(t testing.TB, flags ...string) *Cortex {
	t.Helper()
	return StartCortexArgs(t, append(LoopbackFlags(), flags...)...)
}

var listening = regexp.MustCompile(`msg="server listening".* http=(\S+) grpc=(\S+)`)

// StartCortexArgs runs cortex with exactly args, which must bind loopback
// ports, waits until it serves, and stops it when the test ends. The
// working directory is a fresh temporary one, so relative default paths
// stay out of the source tree, and GOGC is unset, so the binary's own
// default applies.
func StartCortexArgs(t testing.TB, args ...string) *Cortex {
	t.Helper()
	c := &Cortex{t: t, out: &Buffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(CortexBinary(t), args...)
	c.cmd.Dir = t.TempDir()
	c.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOGC=") })
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.exitErr = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("output of cortex %s:\n%s", strings.Join(args, " "), c.out.String())
		}
	})
	m := c.waitMatch(StartTimeout, "the server listening", listening)
	c.HTTPAddr, c.GRPCAddr = m[1], m[2]
	return c
}

var gossipListening = regexp.MustCompile(`msg="gossip listening".* port=(\d+)`)

// GossipAddr waits for the process's gossip listener and returns its
// address on 127.0.0.1.
func (c *Cortex) GossipAddr() string {
	c.t.Helper()
	return "127.0.0.1:" + c.waitMatch(StartTimeout, "the gossip listener", gossipListening)[1]
}

// waitMatch waits until a line of output matches re and returns the
// submatches, failing the test if the process exits first.
func (c *Cortex) waitMatch(timeout time.Duration, what string, re *regexp.Regexp) []string {
	c.t.Helper()
	var m []string
	c.Eventually(timeout, what, func() bool {
		m = re.FindStringSubmatch(c.out.String())
		return m != nil
	})
	return m
}

// Eventually is testkit.Eventually that fails at once, with the process's
// output, if the process exits while the test waits.
func (c *Cortex) Eventually(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	c.EventuallyNil(timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// EventuallyNil is testkit.EventuallyNil that fails at once, with the
// process's output, if the process exits while the test waits.
func (c *Cortex) EventuallyNil(timeout time.Duration, what string, f func() error) {
	c.t.Helper()
	exited := fmt.Errorf("cortex exited: %w", errGiveUp)
	err := poll(timeout, func() error {
		select {
		case <-c.done:
			return exited
		default:
		}
		return f()
	})
	switch {
	case err == nil:
	case errors.Is(err, exited):
		c.t.Fatalf("cortex exited (%v) while the test waited for %s; output:\n%s", c.exitErr, what, c.out.String())
	case errors.Is(err, errNotYet):
		c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
	default:
		c.t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}

// WaitLog waits until the output contains s.
func (c *Cortex) WaitLog(s string) {
	c.t.Helper()
	c.Eventually(StartTimeout, fmt.Sprintf("output containing %q", s), func() bool { return strings.Contains(c.out.String(), s) })
}

// WaitReady polls url with client until it answers 200 OK.
func (c *Cortex) WaitReady(client *http.Client, url string) {
	c.t.Helper()
	c.EventuallyNil(StartTimeout, url+" answering 200", func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("last answer %d %s", resp.StatusCode, body)
		}
		return nil
	})
}

// Output returns everything the process wrote so far.
func (c *Cortex) Output() string { return c.out.String() }

// Done is closed when the process has exited.
func (c *Cortex) Done() <-chan struct{} { return c.done }

// ExitErr is how the process exited (nil for status 0); read it after Done.
func (c *Cortex) ExitErr() error { return c.exitErr }

// Stop sends SIGTERM and waits for the process to exit; if it has not
// within StopTimeout, it kills it and fails the test.
func (c *Cortex) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(StopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		c.t.Errorf("cortex did not stop within %s of SIGTERM", StopTimeout)
	}
}

// Kill sends SIGKILL, as a crash would, and waits for the process to exit.
func (c *Cortex) Kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Fatal(err)
	}
	<-c.done
}

// RunCortex runs cortex with args, expecting it to exit by itself (a
// startup error) within StartTimeout, and returns its status and output.
func RunCortex(t testing.TB, args ...string) (exitCode int, output string) {
	t.Helper()
	// Built before the clock starts: the first build may take longer
	// than StartTimeout on a busy machine.
	bin := CortexBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("cortex %v did not exit within %s; output:\n%s", args, StartTimeout, out)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}
