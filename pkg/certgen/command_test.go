package certgen

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func runCerts(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Command(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func mustGenerate(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCerts(t, append([]string{"generate"}, args...)...)
	if code != 0 {
		t.Fatalf("generate %q: exit %d\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
	}
	return stdout
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func loadPair(t *testing.T, dir, name string) *Pair {
	t.Helper()
	p, err := LoadPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rootPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(dir, "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("root.crt holds no certificate")
	}
	return pool
}

func verifyLeaf(t *testing.T, roots *x509.CertPool, leaf *x509.Certificate, names ...string) {
	t.Helper()
	for _, name := range names {
		for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
				t.Errorf("leaf %q: Verify(%q, EKU %v): %v", leaf.Subject.CommonName, name, eku, err)
			}
		}
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", path, got, want)
	}
}

func TestGenerateDefaults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	start := time.Now()
	stdout := mustGenerate(t, "-out-dir", dir)

	want := []string{"client.crt", "client.key", "root.crt", "root.key", "server.crt", "server.key"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
	checkMode(t, dir, 0o700)
	for _, name := range want {
		path := filepath.Join(dir, name)
		if !strings.Contains(stdout, "wrote "+path+"\n") {
			t.Errorf("stdout does not report %s:\n%s", path, stdout)
		}
		if strings.HasSuffix(name, ".key") {
			checkMode(t, path, 0o600)
		} else {
			checkMode(t, path, 0o644)
		}
	}
	for _, flag := range []string{
		"-server.grpc-tls-cert-path=" + filepath.Join(dir, "server.crt"),
		"-server.grpc-tls-key-path=" + filepath.Join(dir, "server.key"),
		"-server.grpc-tls-ca-path=" + filepath.Join(dir, "root.crt"),
		"-ingester.client.tls-cert-path=" + filepath.Join(dir, "client.crt"),
		"-ingester.client.tls-key-path=" + filepath.Join(dir, "client.key"),
	} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("hint lacks %s:\n%s", flag, stdout)
		}
	}

	root := loadPair(t, dir, "root")
	if root.Cert.Subject.CommonName != "root" || !root.Cert.IsCA {
		t.Errorf("root: CN=%q IsCA=%v", root.Cert.Subject.CommonName, root.Cert.IsCA)
	}
	if _, ok := root.Key.(*ecdsa.PrivateKey); !ok {
		t.Errorf("root key %T, want ECDSA", root.Key)
	}
	if d := root.Cert.NotAfter.Sub(start); d < 87600*time.Hour-time.Minute || d > 87600*time.Hour+time.Minute {
		t.Errorf("root valid for %s from now, want 87600h", d)
	}
	roots := rootPool(t, dir)
	for name, cn := range map[string]string{"server": "localhost", "client": "client"} {
		leaf := loadPair(t, dir, name)
		c := leaf.Cert
		if c.Subject.CommonName != cn {
			t.Errorf("%s: CN %q, want %q", name, c.Subject.CommonName, cn)
		}
		if !slices.Equal(c.DNSNames, []string{name, "localhost"}) {
			t.Errorf("%s: DNS SANs %v", name, c.DNSNames)
		}
		if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("%s: IP SANs %v", name, c.IPAddresses)
		}
		if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
			t.Errorf("%s: EKU %v", name, c.ExtKeyUsage)
		}
		if c.IsCA || c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			t.Errorf("%s: IsCA=%v KeyUsage=%v", name, c.IsCA, c.KeyUsage)
		}
		if _, ok := leaf.Key.(*ecdsa.PrivateKey); !ok {
			t.Errorf("%s: key %T, want ECDSA", name, leaf.Key)
		}
		if d := c.NotAfter.Sub(start); d < 8760*time.Hour-time.Minute || d > 8760*time.Hour+time.Minute {
			t.Errorf("%s: valid for %s from now, want 8760h", name, d)
		}
		if !c.NotBefore.Before(start) {
			t.Errorf("%s: NotBefore %s not backdated", name, c.NotBefore)
		}
		verifyLeaf(t, roots, c, "localhost", "127.0.0.1", name)
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example"}); err == nil {
			t.Errorf("%s verified for a name it does not carry", name)
		}
	}
}

func TestGenerateRSAAndValidity(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	mustGenerate(t, "-out-dir", dir, "-algorithm", "rsa", "-rsa-bits", "3072",
		"-validity", "48h", "-ca-validity", "96h", "-leaves", "distributor,ingester")

	if got, want := listDir(t, dir), []string{"distributor.crt", "distributor.key", "ingester.crt", "ingester.key", "root.crt", "root.key"}; !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
	roots := rootPool(t, dir)
	for name, validity := range map[string]time.Duration{"root": 96 * time.Hour, "distributor": 48 * time.Hour, "ingester": 48 * time.Hour} {
		p := loadPair(t, dir, name)
		k, ok := p.Key.(*rsa.PrivateKey)
		if !ok || k.N.BitLen() != 3072 {
			t.Errorf("%s: key %T, want 3072-bit RSA", name, p.Key)
		}
		if d := p.Cert.NotAfter.Sub(start); d < validity-time.Minute || d > validity+time.Minute {
			t.Errorf("%s: valid for %s from now, want %s", name, d, validity)
		}
		if name != "root" {
			if p.Cert.Subject.CommonName != name {
				t.Errorf("%s: CN %q", name, p.Cert.Subject.CommonName)
			}
			verifyLeaf(t, roots, p.Cert, "localhost", "127.0.0.1", name)
		}
	}
	// The distributor's certificate must not pass for the ingester.
	dist := loadPair(t, dir, "distributor")
	if _, err := dist.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "ingester"}); err == nil {
		t.Error("distributor certificate verified as ingester")
	}
}

func TestGenerateCustomSANs(t *testing.T) {
	dir := t.TempDir()
	mustGenerate(t, "-out-dir", dir, "-dns", "cortex.example, localhost,*.cortex.svc", "-ip", "10.0.0.7,::1", "-leaves", "querier")
	c := loadPair(t, dir, "querier").Cert
	if want := []string{"querier", "cortex.example", "localhost", "*.cortex.svc"}; !slices.Equal(c.DNSNames, want) {
		t.Errorf("DNS SANs %v, want %v", c.DNSNames, want)
	}
	if len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) || !c.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP SANs %v", c.IPAddresses)
	}
	verifyLeaf(t, rootPool(t, dir), c, "querier", "cortex.example", "ingester-0.cortex.svc", "10.0.0.7", "::1")
}

func TestGenerateBadFlagsWriteNothing(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-ip", "127.0.0.1,not-an-ip"}, []string{"-ip", `"not-an-ip"`}},
		{[]string{"-ip", "300.1.1.1"}, []string{"-ip", "300.1.1.1"}},
		{[]string{"-dns", "10.0.0.1"}, []string{"-dns", "-ip"}},
		{[]string{"-algorithm", "dsa"}, []string{"-algorithm", "dsa"}},
		{[]string{"-algorithm", "rsa", "-rsa-bits", "1024"}, []string{"-rsa-bits", "1024"}},
		{[]string{"-leaves", "server,Bad Name"}, []string{"-leaves", "Bad Name"}},
		{[]string{"-leaves", "../evil"}, []string{"-leaves", "../evil"}},
		{[]string{"-leaves", "root"}, []string{"-leaves", "root"}},
		{[]string{"-leaves", "a,b,a"}, []string{"-leaves", "twice"}},
		{[]string{"-leaves", ""}, []string{"-leaves"}},
		{[]string{"-validity", "0s"}, []string{"-validity"}},
		{[]string{"-validity", "10d"}, []string{"-validity"}},
		{[]string{"-validity", "100h", "-ca-validity", "10h"}, []string{"-validity", "-ca-validity"}},
		{[]string{"-nope"}, []string{"-nope"}},
		{[]string{"extra"}, []string{"extra"}},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		code, stdout, stderr := runCerts(t, append([]string{"generate", "-out-dir", dir}, tc.args...)...)
		if code == 0 {
			t.Errorf("%q: succeeded\n%s", tc.args, stdout)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%q: stderr lacks %q:\n%s", tc.args, w, stderr)
			}
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%q: out dir was created (%v): %v", tc.args, err, listDir(t, dir))
		}
	}
}

func TestGenerateRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	mustGenerate(t, "-out-dir", dir)
	before := snapshot(t, dir)

	// root.* exist, so the CA is reused; server.* are in the way.
	code, _, stderr := runCerts(t, "generate", "-out-dir", dir, "-leaves", "newcomer,server")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr)
	}
	for _, w := range []string{filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), "-force"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q: %s", w, stderr)
		}
	}
	if after := snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Errorf("files changed on failure: before %v, after %v", keys(before), keys(after))
	}

	// A stray key with no certificate is also protected.
	if err := os.WriteFile(filepath.Join(dir, "lonely.key"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCerts(t, "generate", "-out-dir", dir, "-leaves", "lonely")
	if code != 1 || !strings.Contains(stderr, filepath.Join(dir, "lonely.key")) || !strings.Contains(stderr, "-force") {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "lonely.crt")); !os.IsNotExist(err) {
		t.Errorf("lonely.crt written despite failure")
	}
}

func TestGenerateForceOverwrites(t *testing.T) {
	dir := t.TempDir()
	mustGenerate(t, "-out-dir", dir)
	before := snapshot(t, dir)
	// A key that was loosened by hand must come back to 0600.
	if err := os.Chmod(filepath.Join(dir, "server.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustGenerate(t, "-out-dir", dir, "-force")
	after := snapshot(t, dir)
	for name := range before {
		if bytes.Equal(before[name], after[name]) {
			t.Errorf("%s unchanged by -force", name)
		}
	}
	checkMode(t, filepath.Join(dir, "server.key"), 0o600)
	roots := rootPool(t, dir)
	verifyLeaf(t, roots, loadPair(t, dir, "server").Cert, "localhost")
}

func TestGenerateReusesCA(t *testing.T) {
	dir := t.TempDir()
	mustGenerate(t, "-out-dir", dir)
	before := snapshot(t, dir)

	stdout := mustGenerate(t, "-out-dir", dir, "-leaves", "ingester")
	if !strings.Contains(stdout, "using existing CA "+filepath.Join(dir, "root.crt")) {
		t.Errorf("stdout does not report CA reuse:\n%s", stdout)
	}
	if strings.Contains(stdout, "wrote "+filepath.Join(dir, "root")) {
		t.Errorf("CA rewritten:\n%s", stdout)
	}
	after := snapshot(t, dir)
	for name, data := range before {
		if !bytes.Equal(after[name], data) {
			t.Errorf("%s changed", name)
		}
	}
	// The old client and the new ingester trust each other through the unchanged root.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(before["root.crt"])
	verifyLeaf(t, roots, loadPair(t, dir, "ingester").Cert, "ingester", "localhost", "127.0.0.1")
	handshake(t, loadPair(t, dir, "ingester"), loadPair(t, dir, "client"), roots, "ingester")

	// Half a CA is an error that names the missing half; nothing is written.
	if err := os.Remove(filepath.Join(dir, "root.key")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCerts(t, "generate", "-out-dir", dir, "-leaves", "querier")
	if code != 1 || !strings.Contains(stderr, filepath.Join(dir, "root.crt")) || !strings.Contains(stderr, filepath.Join(dir, "root.key")) {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "querier.crt")); !os.IsNotExist(err) {
		t.Error("querier.crt written despite failure")
	}
}

// The guide's openssl script makes the CA; generate then adds SAN-carrying leaves to it.
func TestGenerateReusesOpensslCA(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"genrsa", "-out", "root.key"},
		{"req", "-x509", "-new", "-nodes", "-key", "root.key", "-subj", "/C=US/ST=KY/O=Org/CN=root", "-sha256", "-days", "100000", "-out", "root.crt"},
	} {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	stdout := mustGenerate(t, "-out-dir", dir)
	if !strings.Contains(stdout, "using existing CA") {
		t.Errorf("openssl CA not reused:\n%s", stdout)
	}
	roots := rootPool(t, dir)
	handshake(t, loadPair(t, dir, "server"), loadPair(t, dir, "client"), roots, "localhost")
}

func TestGeneratedCertsMutualTLS(t *testing.T) {
	dir := t.TempDir()
	mustGenerate(t, "-out-dir", dir, "-leaves", "server,client,distributor,ingester")
	roots := rootPool(t, dir)
	server, client := loadPair(t, dir, "server"), loadPair(t, dir, "client")
	for _, serverName := range []string{"localhost", "127.0.0.1", ""} {
		if got := handshake(t, server, client, roots, serverName); got != "client" {
			t.Errorf("server saw client CN %q", got)
		}
	}
	// Component to component, each checking the other's own name.
	if got := handshake(t, loadPair(t, dir, "ingester"), loadPair(t, dir, "distributor"), roots, "ingester"); got != "distributor" {
		t.Errorf("ingester saw client CN %q", got)
	}

	// A certificate from another CA is rejected by the server.
	other := t.TempDir()
	mustGenerate(t, "-out-dir", other)
	if err := tryHandshake(server, loadPair(t, other, "client"), roots, "localhost"); err == nil {
		t.Error("client certificate from a foreign CA accepted")
	}
}

// handshake runs mutual TLS over loopback and returns the client CN the server saw.
func handshake(t *testing.T, server, client *Pair, roots *x509.CertPool, serverName string) string {
	t.Helper()
	var peerCN string
	if err := tryHandshakeCN(server, client, roots, serverName, &peerCN); err != nil {
		t.Fatalf("handshake (server name %q): %v", serverName, err)
	}
	return peerCN
}

func tryHandshake(server, client *Pair, roots *x509.CertPool, serverName string) error {
	var cn string
	return tryHandshakeCN(server, client, roots, serverName, &cn)
}

func tryHandshakeCN(server, client *Pair, roots *x509.CertPool, serverName string, peerCN *string) error {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{server.TLSCertificate()},
		ClientCAs:    roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		return err
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			serverErr <- err
			return
		}
		*peerCN = tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		_, err = io.Copy(tc, io.LimitReader(tc, 4))
		serverErr <- err
	}()

	cfg := &tls.Config{
		Certificates: []tls.Certificate{client.TLSCertificate()},
		RootCAs:      roots,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err // TLS 1.3 reports a rejected client certificate here
	}
	if string(buf) != "ping" {
		return io.ErrUnexpectedEOF
	}
	return <-serverErr
}

func TestCommandUsage(t *testing.T) {
	code, stdout, _ := runCerts(t, "generate", "-h")
	if code != 0 {
		t.Errorf("generate -h: exit %d", code)
	}
	for _, f := range []string{"-out-dir", "-dns", "-ip", "-algorithm", "-rsa-bits", "-validity", "-ca-validity", "-leaves", "-force"} {
		if !strings.Contains(stdout, "  "+f) {
			t.Errorf("generate -h lacks %s:\n%s", f, stdout)
		}
	}
	if code, _, stderr := runCerts(t, "rotate"); code != 2 || !strings.Contains(stderr, `"rotate"`) || !strings.Contains(stderr, "generate") {
		t.Errorf("unknown subcommand: exit %d, stderr %s", code, stderr)
	}
	if code, _, stderr := runCerts(t); code != 2 || !strings.Contains(stderr, "Usage") {
		t.Errorf("no subcommand: exit %d, stderr %s", code, stderr)
	}
	if code, stdout, _ := runCerts(t, "-h"); code != 0 || !strings.Contains(stdout, "generate") {
		t.Errorf("-h: exit %d, stdout %s", code, stdout)
	}
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range listDir(t, dir) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = data
	}
	return files
}

func keys(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}
