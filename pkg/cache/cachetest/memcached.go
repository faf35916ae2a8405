// Package cachetest starts a real memcached for tests.
package cachetest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// Memcached is a memcached process on 127.0.0.1, serving TLS with a
// certificate valid for "localhost".
type Memcached struct {
	// Addr is localhost:port: dialled by name, so the name is what the
	// server certificate is checked against.
	Addr   string
	CAPath string

	cmd    *exec.Cmd
	exited chan struct{}
	stderr *bytes.Buffer
	once   sync.Once
}

// StartMemcachedTLS starts Debian's memcached built with --enable-ssl, and
// stops it when the test ends. The test is skipped where memcached is not
// installed.
func StartMemcachedTLS(t testing.TB) *Memcached {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Skip("memcached not installed (apt-get install memcached)")
	}
	pki := testkit.NewPKI(t, "root")
	certPath, keyPath := pki.Issue(t, "memcached", certgen.Options{CommonName: "memcached", DNSNames: []string{"localhost"}}).Files()
	// memcached can neither take a listener nor tell a port it chose: the
	// port is one that was free a moment ago, and another is tried if
	// something took it meanwhile.
	for range 5 {
		lis := testkit.Listen(t)
		port := lis.Addr().(*net.TCPAddr).Port
		_ = lis.Close()
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-Z",
			"-o", "ssl_chain_cert=" + certPath + ",ssl_key=" + keyPath}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "root")
		}
		m := &Memcached{Addr: net.JoinHostPort("localhost", strconv.Itoa(port)), CAPath: pki.CAPath, exited: make(chan struct{}), stderr: &bytes.Buffer{}}
		m.cmd = exec.Command(bin, args...)
		m.cmd.Stderr = m.stderr
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			_ = m.cmd.Wait()
			close(m.exited)
		}()
		t.Cleanup(func() {
			m.Stop()
			if t.Failed() {
				t.Logf("memcached's stderr:\n%s", m.stderr.String())
			}
		})
		err := m.waitListening(10 * time.Second)
		if err == nil {
			return m
		}
		t.Logf("memcached on port %d: %v; trying another port", port, err)
		m.Stop()
	}
	t.Fatal("memcached did not start")
	return nil
}

var errExited = errors.New("memcached exited")

func (m *Memcached) waitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	_, port, _ := net.SplitHostPort(m.Addr)
	for {
		select {
		case <-m.exited:
			return errExited
		default:
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-m.exited:
			return errExited
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Stop kills memcached and waits for it to exit; later calls do nothing.
func (m *Memcached) Stop() {
	m.once.Do(func() {
		_ = m.cmd.Process.Kill()
		<-m.exited
	})
}
