package testkit

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MinIOEnv names the environment variable holding the path of the MinIO
// server binary (scripts/minio.sh builds it and prints the path). Tests
// that need MinIO are skipped when it is unset.
const MinIOEnv = "CORTEX_TEST_MINIO"

// MinIO is a MinIO server on 127.0.0.1 serving TLS with a certificate of
// its own private CA, with one bucket, stopped when the test ends.
type MinIO struct {
	// Endpoint is host:port, the form -blocks-storage.s3.endpoint takes.
	Endpoint             string
	AccessKey, SecretKey string
	// Bucket exists when StartMinIO returns.
	Bucket string
	// PKI is the CA that issued the server's certificate; its CAPath is
	// what clients pass as -<prefix>.s3.http.tls-ca-path.
	PKI *PKI
	// DataDir holds the objects; it survives Stop and Restart.
	DataDir string

	t           testing.TB
	bin         string
	certsDir    string
	consoleAddr string
	out         *Buffer
	cmd         *exec.Cmd
	done        chan struct{}
}

// MinIOBinary returns the MinIO binary named by $CORTEX_TEST_MINIO, or
// skips the test saying how to get one.
func MinIOBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(MinIOEnv)
	if bin == "" {
		t.Skipf("$%s is not set: no MinIO server to test against; build one with `export %s=$(scripts/minio.sh)`", MinIOEnv, MinIOEnv)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("$%s=%q: %v (build it with scripts/minio.sh)", MinIOEnv, bin, err)
	}
	return bin
}

// StartMinIO starts MinIO on 127.0.0.1 with TLS from a fresh private CA,
// waits until it serves, creates a bucket and stops the server when the
// test ends. It skips the test when $CORTEX_TEST_MINIO is unset.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	m := &MinIO{
		t:         t,
		bin:       MinIOBinary(t),
		AccessKey: "cortex-test",
		SecretKey: "cortex-test-secret",
		Bucket:    "cortex-blocks",
		PKI:       NewPKI(t, "minio test CA"),
		DataDir:   t.TempDir(),
		certsDir:  t.TempDir(),
		out:       &Buffer{},
	}
	// MinIO's --certs-dir layout: its own pair and, in CAs/, the CAs it
	// trusts (its own, for the calls it makes to itself).
	leaf := ServerLeaf(t, m.PKI.CA, "minio")
	WriteFile(t, filepath.Join(m.certsDir, "public.crt"), leaf.CertPEM, 0o644)
	WriteFile(t, filepath.Join(m.certsDir, "private.key"), leaf.KeyPEM, 0o600)
	if err := os.MkdirAll(filepath.Join(m.certsDir, "CAs"), 0o700); err != nil {
		t.Fatal(err)
	}
	WriteBundle(t, filepath.Join(m.certsDir, "CAs"), "ca.crt", m.PKI.CA)
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("output of minio:\n%s", m.out.String())
		}
	})

	// MinIO binds its own ports: pick free ones, and pick again when
	// another process takes one first.
	const attempts = 5
	for i := 1; ; i++ {
		m.Endpoint, m.consoleAddr = freeLoopbackAddr(t), freeLoopbackAddr(t)
		err := m.start()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || i == attempts {
			t.Fatalf("starting minio: %v\noutput:\n%s", err, m.out.String())
		}
		m.out.Reset()
	}
	m.makeBucket()
	return m
}

// freeLoopbackAddr returns 127.0.0.1:<port> with a port that was free a
// moment ago.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

var errPortTaken = errors.New("port already in use")

// start runs the server and waits until it serves S3 requests, or for it
// to exit.
func (m *MinIO) start() error {
	cmd := exec.Command(m.bin, "server", "--quiet",
		"--address", m.Endpoint, "--console-address", m.consoleAddr,
		"--certs-dir", m.certsDir, m.DataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.Stdout, cmd.Stderr = m.out, m.out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done

	client := m.HTTPClient()
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(StartTimeout)
	interval := time.Millisecond
	for {
		select {
		case <-done:
			if strings.Contains(m.out.String(), "already in use") {
				return errPortTaken
			}
			return fmt.Errorf("minio exited while starting: %v", cmd.ProcessState)
		default:
		}
		// /minio/health/live answers before the object layer is up; a
		// signed ListBuckets succeeds only once it is.
		req, err := http.NewRequest(http.MethodGet, "https://"+m.Endpoint+"/", nil)
		if err != nil {
			return err
		}
		signV4(req, m.AccessKey, m.SecretKey, time.Now())
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			m.Stop()
			return fmt.Errorf("minio not serving at %s within %s (last error: %v)", m.Endpoint, StartTimeout, err)
		}
		time.Sleep(interval)
		interval = min(2*interval, 50*time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after StopTimeout) and
// waits for it to exit. Its data and ports are kept for Restart.
func (m *MinIO) Stop() {
	if m.cmd == nil {
		return
	}
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(StopTimeout):
		_ = m.cmd.Process.Kill()
		<-m.done
		m.t.Errorf("minio did not stop within %s of SIGTERM", StopTimeout)
	}
}

// Restart starts the server again after Stop, on the same address with the
// same data (an outage that ends). It fails the test if the port was taken
// meanwhile.
func (m *MinIO) Restart() {
	m.t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		m.t.Fatalf("restarting minio on %s: %v\noutput:\n%s", m.Endpoint, err, m.out.String())
	}
}

// Output is what the server has printed.
func (m *MinIO) Output() string { return m.out.String() }

// HTTPClient returns a client trusting the server's CA.
func (m *MinIO) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(m.PKI.CA.Cert)
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
}

// makeBucket creates m.Bucket with a PUT signed with AWS signature v4.
func (m *MinIO) makeBucket() {
	m.t.Helper()
	client := m.HTTPClient()
	defer client.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPut, "https://"+m.Endpoint+"/"+m.Bucket, nil)
	if err != nil {
		m.t.Fatal(err)
	}
	signV4(req, m.AccessKey, m.SecretKey, time.Now())
	resp, err := client.Do(req)
	if err != nil {
		m.t.Fatalf("creating bucket %q: %v", m.Bucket, err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		m.t.Fatalf("creating bucket %q: %s: %s", m.Bucket, resp.Status, body)
	}
}

// signV4 signs a request with an empty body for S3 in us-east-1 (MinIO's
// default region).
func signV4(req *http.Request, accessKey, secretKey string, now time.Time) {
	const region, service = "us-east-1", "s3"
	now = now.UTC()
	amzDate, day := now.Format("20060102T150405Z"), now.Format("20060102")
	emptyHash := hex.EncodeToString(sha256Sum(nil))
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", emptyHash)
	signed := "host;x-amz-content-sha256;x-amz-date"
	canonical := strings.Join([]string{
		req.Method, req.URL.EscapedPath(), req.URL.RawQuery,
		"host:" + req.URL.Host, "x-amz-content-sha256:" + emptyHash, "x-amz-date:" + amzDate, "",
		signed, emptyHash,
	}, "\n")
	scope := day + "/" + region + "/" + service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sha256Sum([]byte(canonical)))
	key := []byte("AWS4" + secretKey)
	for _, part := range []string{day, region, service, "aws4_request"} {
		key = hmacSum(key, part)
	}
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+accessKey+"/"+scope+", SignedHeaders="+signed+", Signature="+hex.EncodeToString(hmacSum(key, toSign)))
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func hmacSum(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}
