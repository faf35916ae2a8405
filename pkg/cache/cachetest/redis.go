package cachetest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// RedisOptions configure a test Redis.
type RedisOptions struct {
	// PKI issues the server's certificate and is the only CA whose client
	// certificates Redis accepts (tls-auth-clients yes). Nil: a new one.
	PKI *testkit.PKI
	// Username and Password, when set, are the only ACL user (the default
	// user is off); Password alone is the default user's (requirepass).
	Username, Password string
	// Cluster makes it a Redis Cluster of this one node, holding every
	// slot, its cluster bus over TLS too.
	Cluster bool
}

// Redis is a redis-server on 127.0.0.1 serving mutual TLS only, with a
// certificate valid for "localhost".
type Redis struct {
	// Addr is localhost:port: dialled by name, so the name is what the
	// server certificate is checked against.
	Addr string
	// CAPath is the CA of the server's certificate; ClientCertPath and
	// ClientKeyPath a client certificate Redis accepts.
	CAPath                        string
	ClientCertPath, ClientKeyPath string
	PKI                           *testkit.PKI

	opts   RedisOptions
	cmd    *exec.Cmd
	exited chan struct{}
	output *bytes.Buffer
	once   sync.Once
}

// StartRedisTLS starts redis-server (Debian's is built with TLS) in a
// temporary directory of its own, and stops it when the test ends. Where
// redis-server is not installed the test is skipped, or fails under CI
// (CI=true), whose .ci/run installs it.
func StartRedisTLS(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not installed: .ci/run must install it (apt-get install redis-server)")
		}
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	if opts.PKI == nil {
		opts.PKI = testkit.NewPKI(t, "redis-test-ca")
	}
	server := opts.PKI.Issue(t, "redis-server", certgen.Options{CommonName: "redis", DNSNames: []string{"localhost"}, IPs: testkit.LoopbackIPs()})
	var auth []string
	switch {
	case opts.Username != "":
		auth = []string{"user default off", fmt.Sprintf("user %s on >%s ~* &* +@all", opts.Username, opts.Password)}
	case opts.Password != "":
		auth = []string{"requirepass " + opts.Password}
	}
	if !opts.Cluster {
		return startRedis(t, bin, opts, server, auth)
	}
	r := startRedis(t, bin, opts, server, append(auth, "cluster-enabled yes", "tls-cluster yes", "cluster-config-file nodes.conf"))
	if got := r.Command(t, "CLUSTER ADDSLOTSRANGE 0 16383"); got != "OK" {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %q", got)
	}
	testkit.Eventually(t, 10*time.Second, "the one-node cluster's cluster_state:ok", func() bool {
		return strings.Contains(r.Command(t, "CLUSTER INFO"), "cluster_state:ok")
	})
	return r
}

// StartRedisSentinelTLS starts a Sentinel (redis-server --sentinel)
// serving mutual TLS with master's certificates, monitoring master as
// "mymaster" over TLS, and stops it when the test ends. Its Addr is the
// Sentinel's.
func StartRedisSentinelTLS(t testing.TB, master *Redis) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err) // master started, so it is installed
	}
	_, port, _ := net.SplitHostPort(master.Addr)
	server := master.PKI.Issue(t, "redis-sentinel", certgen.Options{CommonName: "sentinel", DNSNames: []string{"localhost"}, IPs: testkit.LoopbackIPs()})
	conf := []string{
		// The Sentinel dials the master over TLS with its own certificate.
		"tls-replication yes",
		"sentinel monitor mymaster 127.0.0.1 " + port + " 1",
	}
	return startRedis(t, bin, master.opts, server, conf, "--sentinel")
}

// startRedis runs redis-server on a free port with mutual TLS, conf's
// further lines and args.
func startRedis(t testing.TB, bin string, opts RedisOptions, server *testkit.Leaf, extra []string, args ...string) *Redis {
	t.Helper()
	client := opts.PKI.Client(t, "redis-client")
	dir := t.TempDir()
	// redis-server can neither take a listener nor tell a port it chose:
	// the port is one that was free a moment ago, and another is tried if
	// something took it meanwhile.
	for range 5 {
		lis := testkit.Listen(t)
		port := lis.Addr().(*net.TCPAddr).Port
		_ = lis.Close()
		conf := []string{
			"bind 127.0.0.1",
			"port 0",
			"tls-port " + strconv.Itoa(port),
			"tls-cert-file " + server.CertPath,
			"tls-key-file " + server.KeyPath,
			"tls-ca-cert-file " + opts.PKI.CAPath,
			"tls-auth-clients yes",
			"dir " + dir,
			`save ""`,
			"appendonly no",
			"daemonize no",
			`logfile ""`,
		}
		conf = append(conf, extra...)
		confPath := filepath.Join(dir, "redis.conf")
		testkit.WriteFile(t, confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o600)
		r := &Redis{
			Addr:           net.JoinHostPort("localhost", strconv.Itoa(port)),
			CAPath:         opts.PKI.CAPath,
			ClientCertPath: client.CertPath,
			ClientKeyPath:  client.KeyPath,
			PKI:            opts.PKI,
			opts:           opts,
			exited:         make(chan struct{}),
			output:         &bytes.Buffer{},
		}
		r.cmd = exec.Command(bin, append([]string{confPath}, args...)...)
		r.cmd.Dir = dir
		r.cmd.Stdout = &syncWriter{w: r.output}
		r.cmd.Stderr = r.cmd.Stdout
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			_ = r.cmd.Wait()
			close(r.exited)
		}()
		t.Cleanup(func() {
			r.Stop()
			if t.Failed() {
				t.Logf("redis-server %v output:\n%s", args, r.Output())
			}
		})
		err := r.waitPing(10 * time.Second)
		if err == nil {
			return r
		}
		t.Logf("redis-server on port %d: %v; trying another port", port, err)
		r.Stop()
	}
	t.Fatal("redis-server did not start")
	return nil
}

// syncWriter lets the process write while a test reads the output.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// Output is what redis-server logged so far.
func (r *Redis) Output() string {
	sw := r.cmd.Stdout.(*syncWriter)
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.w.String()
}

var errRedisExited = errors.New("redis-server exited")

// waitPing polls until Redis answers PING over TLS with the client
// certificate (NOAUTH counts as an answer: the server is up).
func (r *Redis) waitPing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-r.exited:
			return errRedisExited
		default:
		}
		err := r.ping()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-r.exited:
			return errRedisExited
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *Redis) ping() error {
	line, err := r.command("PING")
	if err != nil {
		return err
	}
	if line == "PONG" || strings.HasPrefix(line, "NOAUTH") {
		return nil
	}
	return fmt.Errorf("PING answered %q", line)
}

// Command runs an inline command (words separated by spaces) on a
// connection of its own, authenticated as the options say, and returns the
// answer: a simple or bulk string, or an error's text.
func (r *Redis) Command(t testing.TB, cmd string) string {
	t.Helper()
	if r.opts.Password != "" {
		cmd = "AUTH " + strings.TrimSpace(r.opts.Username+" "+r.opts.Password) + "\r\n" + cmd
	}
	out, err := r.command(cmd)
	if err != nil {
		t.Fatalf("redis %q: %v", cmd, err)
	}
	return out
}

// command sends cmd's lines and returns the answer to the last.
func (r *Redis) command(cmd string) (string, error) {
	cert, err := tls.LoadX509KeyPair(r.ClientCertPath, r.ClientKeyPath)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AddCert(r.PKI.CA.Cert)
	_, port, _ := net.SplitHostPort(r.Addr)
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: &tls.Config{
		ServerName: "localhost", RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
	}}
	conn, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	lines := strings.Split(cmd, "\r\n")
	if _, err := conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	var out string
	for range lines {
		if out, err = readReply(br); err != nil {
			return "", err
		}
	}
	return out, nil
}

// readReply reads one RESP2 simple string, error, integer or bulk string.
func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', '-', ':':
		return line[1:], nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// Info returns field of INFO, as an integer.
func (r *Redis) Info(t testing.TB, field string) int {
	t.Helper()
	for line := range strings.SplitSeq(r.Command(t, "INFO"), "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("INFO %s: %q", field, v)
			}
			return n
		}
	}
	t.Fatalf("INFO has no %s", field)
	return 0
}

// Stop kills redis-server and waits for it to exit; later calls do nothing.
func (r *Redis) Stop() {
	r.once.Do(func() {
		_ = r.cmd.Process.Kill()
		<-r.exited
	})
}
