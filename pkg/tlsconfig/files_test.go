package tlsconfig

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const (
	certFlag = "server.grpc-tls-cert-path"
	keyFlag  = "server.grpc-tls-key-path"
	caFlag   = "server.grpc-tls-ca-path"
)

func newGRPCServer(t *testing.T, env *testEnv, cfg ServerConfig, opts ServerOptions) (*Server, error) {
	t.Helper()
	return NewServer("grpc", "server.grpc", cfg, opts, env.loader)
}

func TestStartupFileErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, "ca")
	leaf := testkit.ServerLeaf(t, ca, "server")
	goodCert, goodKey := testkit.WritePair(t, dir, "good", leaf)
	_, otherKey := testkit.WritePair(t, dir, "other", testkit.ServerLeaf(t, ca, "server"))
	caPath := testkit.WriteBundle(t, dir, "ca.crt", ca)
	now := time.Now()
	expiredCert, expiredKey := testkit.WritePair(t, dir, "expired", testkit.Issue(t, ca, certgen.Options{CommonName: "old", DNSNames: []string{"localhost"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}))
	futureCert, futureKey := testkit.WritePair(t, dir, "future", testkit.Issue(t, ca, certgen.Options{CommonName: "future", DNSNames: []string{"localhost"}, NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)}))

	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		testkit.WriteFile(t, p, data, 0o600)
		return p
	}
	missing := filepath.Join(dir, "missing.crt")
	empty := file("empty.crt", []byte("\n  \n"))
	notPEMFile := file("notpem.crt", []byte("this is not a certificate\n"))
	derCert := file("cert.der", leaf.Cert.Raw)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	derKey := file("key.der", keyDER)
	// Operators still meet legacy "Proc-Type: 4,ENCRYPTED" keys; make one.
	legacyBlock, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", keyDER, []byte("secret"), x509.PEMCipherAES256) //nolint:staticcheck // deliberately legacy
	if err != nil {
		t.Fatal(err)
	}
	legacyEncrypted := file("legacy-encrypted.key", pem.EncodeToMemory(legacyBlock))

	type tc struct {
		name    string
		cfg     ServerConfig
		flag    string // flag the error must name
		path    string // path it must name
		problem string
		fix     string
	}
	server := func(cert, key string) ServerConfig { return ServerConfig{CertPath: cert, KeyPath: key} }
	cases := []tc{
		{"missing cert", server(missing, goodKey), certFlag, missing, "file does not exist", "check the path"},
		{"missing key", server(goodCert, filepath.Join(dir, "missing.key")), keyFlag, filepath.Join(dir, "missing.key"), "file does not exist", "cortex certs generate"},
		{"empty cert", server(empty, goodKey), certFlag, empty, "file is empty", "write the PEM-encoded content"},
		{"empty key", server(goodCert, empty), keyFlag, empty, "file is empty", "write the PEM-encoded content"},
		{"cert not PEM", server(notPEMFile, goodKey), certFlag, notPEMFile, "not a PEM file (no -----BEGIN CERTIFICATE----- block)", "give the PEM file"},
		{"key not PEM", server(goodCert, notPEMFile), keyFlag, notPEMFile, "not a PEM file (no -----BEGIN PRIVATE KEY----- block)", "give the PEM file"},
		{"DER cert", server(derCert, goodKey), certFlag, derCert, "certificate is DER-encoded, not PEM", "openssl x509 -inform der -in " + derCert},
		{"DER key", server(goodCert, derKey), keyFlag, derKey, "key is DER-encoded, not PEM", "openssl pkey -inform der -in " + derKey},
		{"cert and key swapped", server(goodKey, goodCert), certFlag, goodKey, "holds no certificate, only PRIVATE KEY", "did you swap the certificate and key paths?"},
		{"cert given as key", server(goodCert, goodCert), keyFlag, goodCert, "holds no private key, only CERTIFICATE", "did you swap the certificate and key paths?"},
		{"key does not match", server(goodCert, otherKey), keyFlag, otherKey, "private key does not match the certificate in -" + certFlag + "=" + goodCert, "give the key that was generated with this certificate"},
		{"legacy encrypted key", server(goodCert, legacyEncrypted), keyFlag, legacyEncrypted, "private key is encrypted with a passphrase", "openssl pkey -in " + legacyEncrypted + " -out " + legacyEncrypted + ".plain && chmod 600"},
		{"expired cert", server(expiredCert, expiredKey), certFlag, expiredCert, `certificate "old" expired on`, "issue a new certificate"},
		{"not yet valid cert", server(futureCert, futureKey), certFlag, futureCert, `certificate "future" is not valid until`, "check this machine's clock"},
		{"CA file holds a key", ServerConfig{CertPath: goodCert, KeyPath: goodKey, CAPath: goodKey}, caFlag, goodKey, "holds no certificate, only PRIVATE KEY", "did you swap"},
		{"CA file missing", ServerConfig{CertPath: goodCert, KeyPath: goodKey, CAPath: missing}, caFlag, missing, "file does not exist", "check the path"},
		{"CA file not PEM", ServerConfig{CertPath: goodCert, KeyPath: goodKey, CAPath: notPEMFile}, caFlag, notPEMFile, "not a PEM file", "give the PEM file"},
	}
	if _, err := exec.LookPath("openssl"); err == nil {
		p8 := filepath.Join(dir, "pkcs8-encrypted.key")
		cmd := exec.Command("openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", goodKey, "-out", p8, "-passout", "pass:secret")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl pkcs8: %v\n%s", err, out)
		}
		cases = append(cases, tc{"PKCS#8 encrypted key", server(goodCert, p8), keyFlag, p8, "private key is encrypted with a passphrase", "chmod 600 " + p8 + ".plain"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv(t)
			srv, err := newGRPCServer(t, env, c.cfg, ServerOptions{})
			if err == nil {
				t.Fatalf("NewServer succeeded (%v), want an error", srv)
			}
			mustContain(t, "error", err.Error(), "-"+c.flag+"="+c.path+": ", c.problem, c.fix)
			var fe *FileError
			if !errors.As(err, &fe) || fe.Flag != c.flag || fe.Path != c.path || fe.Fix == "" {
				t.Errorf("error is not a FileError for -%s=%s with a fix: %#v", c.flag, c.path, err)
			}
		})
	}

	t.Run("unreadable key", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, which can read a mode 000 file")
		}
		k := filepath.Join(dir, "unreadable.key")
		testkit.WriteFile(t, k, leaf.KeyPEM, 0o000)
		_, err := newGRPCServer(t, newTestEnv(t), server(goodCert, k), ServerOptions{})
		if err == nil {
			t.Fatal("NewServer succeeded with an unreadable key")
		}
		mustContain(t, "error", err.Error(), "-"+keyFlag+"="+k+": permission denied", "make the file readable by the user running cortex")
	})

	t.Run("client CA missing", func(t *testing.T) {
		_, err := NewClient("ingester.client", ClientConfig{CAPath: missing}, newTestEnv(t).loader)
		if err == nil {
			t.Fatal("NewClient succeeded with a missing CA file")
		}
		mustContain(t, "error", err.Error(), "-ingester.client.tls-ca-path="+missing+": file does not exist")
	})

	t.Run("valid files", func(t *testing.T) {
		srv, err := newGRPCServer(t, newTestEnv(t), ServerConfig{CertPath: goodCert, KeyPath: goodKey, CAPath: caPath}, ServerOptions{})
		if err != nil {
			t.Fatalf("NewServer with valid files: %v", err)
		}
		if srv.ClientAuth() != tls.RequireAndVerifyClientCert {
			t.Errorf("a CA path without a client auth mode gives %v, want RequireAndVerifyClientCert", srv.ClientAuth())
		}
	})
}

func TestStartupWarnings(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, "ca")

	t.Run("key readable by others", func(t *testing.T) {
		cert, key := testkit.WritePair(t, dir, "open", testkit.ServerLeaf(t, ca, "server"))
		if err := os.Chmod(key, 0o644); err != nil {
			t.Fatal(err)
		}
		env := newTestEnv(t)
		if _, err := newGRPCServer(t, env, ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{}); err != nil {
			t.Fatal(err)
		}
		mustContain(t, "log", env.logs.String(), "level=WARN", "-"+keyFlag+"="+key, "readable by group or others (mode 0644)", "chmod 600 "+key)
	})

	t.Run("key private", func(t *testing.T) {
		cert, key := testkit.WritePair(t, dir, "private", testkit.ServerLeaf(t, ca, "server"))
		env := newTestEnv(t)
		if _, err := newGRPCServer(t, env, ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{}); err != nil {
			t.Fatal(err)
		}
		if logs := env.logs.String(); strings.Contains(logs, "level=WARN") {
			t.Errorf("unexpected warning for a mode 0600 key and a fresh certificate:\n%s", logs)
		}
	})

	t.Run("certificate expiring soon", func(t *testing.T) {
		soon := testkit.Issue(t, ca, certgen.Options{CommonName: "soon", DNSNames: []string{"localhost"}, NotAfter: time.Now().Add(10 * 24 * time.Hour)})
		cert, key := testkit.WritePair(t, dir, "soon", soon)
		env := newTestEnv(t)
		if _, err := newGRPCServer(t, env, ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{}); err != nil {
			t.Fatalf("a certificate valid for 10 more days must load: %v", err)
		}
		logs := env.logs.String()
		mustContain(t, "log", logs, "level=WARN", "-"+certFlag+"="+cert, `certificate \"soon\" expires in`, soon.Cert.NotAfter.UTC().Format(time.RFC3339))
		if !regexp.MustCompile(`expires in (9|10) days`).MatchString(logs) {
			t.Errorf("log does not say the certificate expires in 10 days:\n%s", logs)
		}
	})
}

func TestServerConfigValidation(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, "ca")
	cert, key := testkit.WritePair(t, dir, "server", testkit.ServerLeaf(t, ca, "server"))
	caPath := testkit.WriteBundle(t, dir, "ca.crt", ca)

	cases := []struct {
		name string
		cfg  ServerConfig
		opts ServerOptions
		want []string
	}{
		{"unknown client auth", ServerConfig{CertPath: cert, KeyPath: key, ClientAuth: "RequireClientCert"}, ServerOptions{},
			[]string{`-server.grpc-tls-client-auth="RequireClientCert" is not a client auth mode`, "valid values: " + ClientAuthNames}},
		{"verify without CA", ServerConfig{CertPath: cert, KeyPath: key, ClientAuth: "RequireAndVerifyClientCert"}, ServerOptions{},
			[]string{"-server.grpc-tls-client-auth=RequireAndVerifyClientCert verifies client certificates but -server.grpc-tls-ca-path is empty"}},
		{"verify if given without CA", ServerConfig{CertPath: cert, KeyPath: key, ClientAuth: "VerifyClientCertIfGiven"}, ServerOptions{},
			[]string{"-server.grpc-tls-client-auth=VerifyClientCertIfGiven verifies client certificates but -server.grpc-tls-ca-path is empty"}},
		{"CA with NoClientCert", ServerConfig{CertPath: cert, KeyPath: key, ClientAuth: "NoClientCert", CAPath: caPath}, ServerOptions{},
			[]string{"-server.grpc-tls-ca-path is set but -server.grpc-tls-client-auth=NoClientCert never verifies client certificates", "use RequireAndVerifyClientCert"}},
		{"client auth without cert", ServerConfig{ClientAuth: "RequireAndVerifyClientCert"}, ServerOptions{},
			[]string{"-server.grpc-tls-client-auth is set but TLS is off on this server", "also set -server.grpc-tls-cert-path and -server.grpc-tls-key-path"}},
		{"CA without cert", ServerConfig{CAPath: caPath}, ServerOptions{},
			[]string{"-server.grpc-tls-ca-path is set but TLS is off on this server"}},
		{"allowed names without cert", ServerConfig{AllowedClientNames: []string{"distributor"}}, ServerOptions{},
			[]string{"-server.grpc-tls-allowed-client-names is set but TLS is off on this server"}},
		{"cert without key", ServerConfig{CertPath: cert}, ServerOptions{},
			[]string{"-server.grpc-tls-cert-path is set but -server.grpc-tls-key-path is empty"}},
		{"key without cert", ServerConfig{KeyPath: key}, ServerOptions{},
			[]string{"-server.grpc-tls-key-path is set but -server.grpc-tls-cert-path is empty"}},
		{"bad min version", ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{MinVersion: "TLS1.2"},
			[]string{`-server.tls-min-version="TLS1.2" is not a TLS version`, "valid values: VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13"}},
		{"unknown cipher", ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{CipherSuites: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,ECDHE-RSA-AES128-GCM-SHA256"},
			[]string{`-server.tls-cipher-suites: unknown cipher suite "ECDHE-RSA-AES128-GCM-SHA256"`, "valid names: ", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, err := newGRPCServer(t, newTestEnv(t), c.cfg, c.opts)
			if err == nil {
				t.Fatalf("NewServer succeeded (%v), want an error", srv)
			}
			mustContain(t, "error", err.Error(), c.want...)
		})
	}

	t.Run("plaintext", func(t *testing.T) {
		srv, err := newGRPCServer(t, newTestEnv(t), ServerConfig{}, ServerOptions{})
		if srv != nil || err != nil {
			t.Fatalf("empty config gives %v, %v; want nil, nil (plaintext)", srv, err)
		}
	})

	t.Run("client config", func(t *testing.T) {
		_, err := NewClient("querier.frontend-client", ClientConfig{CAPath: caPath, MinVersion: "1.3"}, newTestEnv(t).loader)
		if err == nil {
			t.Fatal("NewClient accepted -tls-min-version=1.3")
		}
		mustContain(t, "error", err.Error(), `-querier.frontend-client.tls-min-version="1.3" is not a TLS version`, "VersionTLS13")
		_, err = NewClient("querier.frontend-client", ClientConfig{CAPath: caPath, CipherSuites: "nope"}, newTestEnv(t).loader)
		if err == nil {
			t.Fatal("NewClient accepted an unknown cipher suite")
		}
		mustContain(t, "error", err.Error(), `-querier.frontend-client.tls-cipher-suites: unknown cipher suite "nope"`)
		_, err = NewClient("querier.frontend-client", ClientConfig{CertPath: cert}, newTestEnv(t).loader)
		if err == nil {
			t.Fatal("NewClient accepted a certificate without a key")
		}
		mustContain(t, "error", err.Error(), "-querier.frontend-client.tls-cert-path is set but -querier.frontend-client.tls-key-path is empty")
	})

	t.Run("insecure cipher named", func(t *testing.T) {
		env := newTestEnv(t)
		const weak = "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"
		srv, err := newGRPCServer(t, env, ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{CipherSuites: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, " + weak})
		if err != nil {
			t.Fatalf("a named insecure cipher suite must be accepted: %v", err)
		}
		if want := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA}; !slices.Equal(srv.ciphers, want) {
			t.Errorf("server cipher suites = %v, want %v", srv.ciphers, want)
		}
		mustContain(t, "log", env.logs.String(), "level=WARN", "-server.tls-cipher-suites names insecure cipher suites", "suites="+weak)
	})

	t.Run("old TLS version allowed with a warning", func(t *testing.T) {
		env := newTestEnv(t)
		srv, err := newGRPCServer(t, env, ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{MinVersion: "VersionTLS10"})
		if err != nil {
			t.Fatal(err)
		}
		if srv.min != tls.VersionTLS10 {
			t.Errorf("min version = %x, want TLS 1.0", srv.min)
		}
		mustContain(t, "log", env.logs.String(), "level=WARN", "older than 1.2, which are insecure")
	})
}

func TestDefaultCipherSuites(t *testing.T) {
	secure := map[uint16]string{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = s.Name
	}
	if len(DefaultCipherSuites) == 0 {
		t.Fatal("no default cipher suites")
	}
	for _, id := range DefaultCipherSuites {
		name, ok := secure[id]
		if !ok {
			t.Errorf("default suite %s is one Go deems insecure", tls.CipherSuiteName(id))
			continue
		}
		aead := strings.Contains(name, "_GCM_") || strings.Contains(name, "_CHACHA20_POLY1305_")
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !aead {
			t.Errorf("default suite %s is not ECDHE with an AEAD cipher", name)
		}
	}
	// An empty flag gives the defaults, on servers and clients alike.
	ids, weak, err := ParseCipherSuites("server.tls-cipher-suites", " ")
	if err != nil || weak != nil || !slices.Equal(ids, DefaultCipherSuites) {
		t.Errorf("ParseCipherSuites(\"\") = %v, %v, %v; want the defaults", ids, weak, err)
	}

	// A TLS 1.2 client offering only CBC suites finds no shared suite.
	dir := t.TempDir()
	ca := testkit.NewCA(t, "ca")
	cert, key := testkit.WritePair(t, dir, "server", testkit.ServerLeaf(t, ca, "server"))
	env := newTestEnv(t)
	srv, err := NewServer("http", "server.http", ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{}, env.loader)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(srv.ciphers, DefaultCipherSuites) {
		t.Errorf("server suites = %v, want the defaults", srv.ciphers)
	}
	addr := startHTTPServer(t, srv)
	raw, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(waitTimeout))
	conn := tls.Client(raw, &tls.Config{
		InsecureSkipVerify: true,
		MaxVersion:         tls.VersionTLS12,
		CipherSuites:       []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
	})
	if err := conn.Handshake(); err == nil {
		t.Fatal("handshake with CBC-only suites succeeded")
	}
	testkit.Eventually(t, waitTimeout, "the no_shared_cipher failure", func() bool { return handshakeFailures(t, env.reg, "http")["no_shared_cipher"] == 1 })
}

func TestMinVersionEnforced(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, "ca")
	cert, key := testkit.WritePair(t, dir, "server", testkit.ServerLeaf(t, ca, "server"))
	caPath := testkit.WriteBundle(t, dir, "ca.crt", ca)
	env := newTestEnv(t)
	srv, err := NewServer("http", "server.http", ServerConfig{CertPath: cert, KeyPath: key}, ServerOptions{MinVersion: "VersionTLS13"}, env.loader)
	if err != nil {
		t.Fatal(err)
	}
	addr := startHTTPServer(t, srv)
	client, err := NewClient("test.client", ClientConfig{CAPath: caPath}, newTestEnv(t).loader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := httpGet(client, addr); err != nil {
		t.Fatalf("TLS 1.3 client refused: %v", err)
	}
	client.maxVersion = tls.VersionTLS12
	if _, err := httpGet(client, addr); err == nil {
		t.Fatal("TLS 1.2 client served by a VersionTLS13 server")
	}
	testkit.Eventually(t, waitTimeout, "the protocol_version failure", func() bool { return handshakeFailures(t, env.reg, "http")["protocol_version"] == 1 })
}
