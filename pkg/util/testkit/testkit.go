// Package testkit holds what this module's tests share: certificates made
// with pkg/certgen, loopback listeners on port 0, polling instead of fixed
// sleeps, a buffer safe for concurrent writes, and the real cortex binary
// started, read and stopped for integration tests.
//
// It exists for tests only: it calls t.Fatal, builds binaries and leaves
// processes to t.Cleanup. Never import it from non-test code.
package testkit

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// Listen returns a listener on 127.0.0.1 and a port the kernel chose, closed
// when the test ends. Hand the listener itself to the server under test:
// closing it and binding its port again would race with every other
// process on the machine.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// Eventually polls cond, first every millisecond and then backing off to
// every 50ms, until it holds; after timeout it fails the test naming what
// it waited for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyNil(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// EventuallyNil polls f until it returns nil; after timeout it fails the
// test naming what it waited for and quoting f's last error, which should
// say what is still missing.
func EventuallyNil(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	if err := poll(timeout, f); err != nil {
		if errors.Is(err, errNotYet) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
			return
		}
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}

type notYet struct{}

func (notYet) Error() string { return "not yet" }

var errNotYet error = notYet{}

// poll calls f until it returns nil, an error wrapping errGiveUp, or
// timeout passes, and returns f's last result.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		err := f()
		if err == nil || errors.Is(err, errGiveUp) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
		interval = min(2*interval, 50*time.Millisecond)
	}
}

// errGiveUp, wrapped in an error f returns, stops poll at once: what it
// waits for can no longer happen.
var errGiveUp = errors.New("gave up")

// Buffer collects output written by many goroutines, such as a logger's or
// a process's.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Reset forgets everything written so far.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

// Logger returns a debug-level logger writing slog's text format into b.
func (b *Buffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
