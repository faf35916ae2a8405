package bucket

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// s3Flags are the flags of a client of m's bucket at endpoint (m's own
// unless a proxy sits in front), with caPath as -s3.http.tls-ca-path.
func s3Flags(m *testkit.MinIO, endpoint, caPath string) []string {
	return []string{
		"-blocks-storage.backend=s3",
		"-blocks-storage.s3.endpoint=" + endpoint,
		"-blocks-storage.s3.bucket-name=" + m.Bucket,
		"-blocks-storage.s3.access-key-id=" + m.AccessKey,
		"-blocks-storage.s3.secret-access-key=" + m.SecretKey,
		"-blocks-storage.s3.http.tls-ca-path=" + caPath,
	}
}

// newS3 builds a client from args with minio-go's retries cut to one
// attempt, so refused connections fail at once.
func newS3(t *testing.T, loader *tlsconfig.Loader, reg prometheus.Registerer, args ...string) objstore.InstrumentedBucket {
	t.Helper()
	cfg := mustParse(t, args...)
	cfg.S3.maxRetries = 1
	var logs testkit.Buffer
	b, err := NewClient(context.Background(), cfg, "ingester", loader, logs.Logger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func upload(b objstore.Bucket, name, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.Upload(ctx, name, strings.NewReader(body))
}

func TestS3MinIOTLS(t *testing.T) {
	m := testkit.StartMinIO(t)
	reg := prometheus.NewPedanticRegistry()
	loader := tlsconfig.NewLoader(slogDiscard(), reg)
	b := newS3(t, loader, reg, s3Flags(m, m.Endpoint, m.PKI.CAPath)...)
	roundTrip(t, b)

	if n := testkit.MetricSum(t, reg, "thanos_objstore_bucket_operations_total", "component", "ingester", "operation", "upload"); n != 4 {
		t.Errorf("thanos_objstore_bucket_operations_total{component=ingester,operation=upload} = %v, want 4", n)
	}
	if n := testkit.MetricSum(t, reg, "cortex_tls_client_handshakes_total", "client", "blocks-storage.s3.http", "result", "success"); n < 1 {
		t.Errorf("no TLS handshake counted by pkg/tlsconfig (%v): the S3 link does not go through it", n)
	}
}

func TestS3ForeignCA(t *testing.T) {
	m := testkit.StartMinIO(t)
	foreign := testkit.NewPKI(t, "some other CA")
	b := newS3(t, tlsconfig.NewLoader(slogDiscard(), nil), nil, s3Flags(m, m.Endpoint, foreign.CAPath)...)
	err := upload(b, "t/x", "x")
	if err == nil || !strings.Contains(err.Error(), "-blocks-storage.s3.http.tls-ca-path="+foreign.CAPath) {
		t.Fatalf("upload with a foreign CA: %v; want an error naming -blocks-storage.s3.http.tls-ca-path", err)
	}
	t.Logf("refused as expected: %v", err)
}

// TestS3CAReload starts with the wrong CA in the -tls-ca-path file and
// fixes the file: the next connection uses it, with no new client.
func TestS3CAReload(t *testing.T) {
	m := testkit.StartMinIO(t)
	foreign := testkit.NewPKI(t, "some other CA")
	caPath := testkit.WriteBundle(t, t.TempDir(), "ca.crt", foreign.CA)
	loader := tlsconfig.NewLoader(slogDiscard(), nil)
	b := newS3(t, loader, nil, s3Flags(m, m.Endpoint, caPath)...)
	if err := upload(b, "t/x", "x"); err == nil || !strings.Contains(err.Error(), "-blocks-storage.s3.http.tls-ca-path") {
		t.Fatalf("upload with a foreign CA: %v", err)
	}
	testkit.WriteBundle(t, filepath.Dir(caPath), "ca.crt", m.PKI.CA)
	loader.Reload()
	if err := upload(b, "t/x", "x"); err != nil {
		t.Fatalf("upload after the CA file was fixed and reloaded: %v", err)
	}
}

// TestS3ClientCertificate puts a TLS proxy that requires client
// certificates in front of MinIO: MinIO itself can only request client
// certificates (for its STS certificate login), never require them on the
// S3 API.
func TestS3ClientCertificate(t *testing.T) {
	m := testkit.StartMinIO(t)
	pki := testkit.NewPKI(t, "proxy CA")
	proxyAddr := mtlsProxy(t, pki, m)
	client := pki.Client(t, "ingester")

	without := newS3(t, tlsconfig.NewLoader(slogDiscard(), nil), nil, s3Flags(m, proxyAddr, pki.CAPath)...)
	if err := upload(without, "t/x", "x"); err == nil || !strings.Contains(err.Error(), "-blocks-storage.s3.http.tls-cert-path") {
		t.Fatalf("upload without a client certificate: %v; want an error naming -blocks-storage.s3.http.tls-cert-path", err)
	} else {
		t.Logf("refused as expected: %v", err)
	}

	with := newS3(t, tlsconfig.NewLoader(slogDiscard(), nil), nil, append(s3Flags(m, proxyAddr, pki.CAPath),
		"-blocks-storage.s3.http.tls-cert-path="+client.CertPath, "-blocks-storage.s3.http.tls-key-path="+client.KeyPath)...)
	roundTrip(t, with)
}

// mtlsProxy serves TLS with a leaf of pki, requires a client certificate
// of pki, and forwards to m keeping the Host header the request was signed
// with.
func mtlsProxy(t *testing.T, pki *testkit.PKI, m *testkit.MinIO) string {
	t.Helper()
	leaf := pki.Server(t, "proxy")
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA.Cert)
	minioURL := &url.URL{Scheme: "https", Host: m.Endpoint}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(minioURL)
			r.Out.Host = r.In.Host
		},
		Transport: m.HTTPClient().Transport,
	}
	l := tls.NewListener(testkit.Listen(t), &tls.Config{
		Certificates: []tls.Certificate{leaf.TLSCertificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	})
	// The handshake refused on purpose is logged by the server; drop it.
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() { _ = srv.Serve(l); close(done) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return l.Addr().String()
}

// TestS3Outage stops MinIO and starts it again on the same port and data:
// the client fails while it is down and works again after, with no new
// client.
func TestS3Outage(t *testing.T) {
	m := testkit.StartMinIO(t)
	b := newS3(t, tlsconfig.NewLoader(slogDiscard(), nil), nil, s3Flags(m, m.Endpoint, m.PKI.CAPath)...)
	if err := upload(b, "t/before", "kept"); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	if err := upload(b, "t/during", "x"); err == nil {
		t.Fatal("upload succeeded with MinIO stopped")
	}
	m.Restart()
	testkit.EventuallyNil(t, 30*time.Second, "the client to reach the restarted MinIO", func() error {
		r, err := b.Get(context.Background(), "t/before")
		if err != nil {
			return err
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if err == nil && string(got) != "kept" {
			err = errors.New("object changed: " + string(got))
		}
		return err
	})
	if err := upload(b, "t/after", "x"); err != nil {
		t.Fatal(err)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
