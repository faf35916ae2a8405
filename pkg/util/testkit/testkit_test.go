package testkit

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fatalRecorder records Fatalf instead of ending the test, so the kit's
// failure messages can be checked.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestEventually(t *testing.T) {
	calls := 0
	Eventually(t, time.Second, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}

	rec := &fatalRecorder{TB: t}
	start := time.Now()
	Eventually(rec, 30*time.Millisecond, "the impossible", func() bool { return false })
	if took := time.Since(start); took < 30*time.Millisecond || took > time.Second {
		t.Errorf("gave up after %s, want about 30ms", took)
	}
	if rec.msg != "timed out after 30ms waiting for the impossible" {
		t.Errorf("failure message %q", rec.msg)
	}
	EventuallyNil(rec, 10*time.Millisecond, "a peer", func() error { return fmt.Errorf("2 of 3 members") })
	if rec.msg != "timed out after 10ms waiting for a peer: 2 of 3 members" {
		t.Errorf("failure message %q", rec.msg)
	}
}

func TestPollGivesUp(t *testing.T) {
	calls := 0
	stop := fmt.Errorf("the server exited: %w", errGiveUp)
	start := time.Now()
	err := poll(10*time.Second, func() error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 || time.Since(start) > time.Second {
		t.Fatalf("poll returned %v after %d calls and %s, want the giving-up error at once", err, calls, time.Since(start))
	}
}

func TestListen(t *testing.T) {
	l := Listen(t)
	addr := l.Addr().(*net.TCPAddr)
	if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) || addr.Port == 0 {
		t.Fatalf("listening on %s, want 127.0.0.1 and a chosen port", addr)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&b, "w%d\n", i)
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
	b.Reset()
	b.Logger().Debug("hello", "k", "v")
	if !strings.Contains(b.String(), `level=DEBUG msg=hello k=v`) {
		t.Fatalf("logger wrote %q", b.String())
	}
}

func TestPKI(t *testing.T) {
	p := NewPKI(t, "root")
	server := p.Server(t, "server")
	client := p.Client(t, "alice")
	roots := x509.NewCertPool()
	roots.AddCert(p.CA.Cert)
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := server.Cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("server leaf for %s: %v", host, err)
		}
	}
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client leaf: %v", err)
	}
	if client.Cert.Subject.CommonName != "alice" || server.Cert.Subject.CommonName != "server" {
		t.Errorf("common names %q and %q", client.Cert.Subject.CommonName, server.Cert.Subject.CommonName)
	}
	for path, want := range map[string]os.FileMode{p.CAPath: 0o644, server.CertPath: 0o644, server.KeyPath: 0o600, client.KeyPath: 0o600, p.Dir + "/root.key": 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}
