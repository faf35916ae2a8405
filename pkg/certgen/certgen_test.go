package certgen

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIssueExpiredLeaf(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(Options{CommonName: "test CA", NotBefore: now.Add(-72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(Options{
		CommonName: "expired",
		DNSNames:   []string{"localhost"},
		NotBefore:  now.Add(-48 * time.Hour),
		NotAfter:   now.Add(-24 * time.Hour),
	})
	if err != nil {
		t.Fatalf("issuing an already expired leaf: %v", err)
	}
	if !leaf.Cert.NotAfter.Before(now) {
		t.Fatalf("NotAfter = %s, want in the past", leaf.Cert.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	_, err = leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"})
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Fatalf("Verify error = %v, want expired", err)
	}
	// Valid at a time inside its window: only the dates are wrong.
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost", CurrentTime: now.Add(-36 * time.Hour)}); err != nil {
		t.Fatalf("Verify inside validity window: %v", err)
	}
}

func TestRSAKeySize(t *testing.T) {
	for _, bits := range []int{1024, 2047} {
		if _, err := NewCA(Options{CommonName: "ca", Algorithm: RSA, RSABits: bits}); err == nil || !strings.Contains(err.Error(), "2048") {
			t.Errorf("NewCA with %d-bit RSA: error = %v, want refusal mentioning 2048", bits, err)
		}
	}
	ca, err := NewCA(Options{CommonName: "ca", Algorithm: RSA})
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := ca.Key.(*rsa.PrivateKey); !ok || k.N.BitLen() != 2048 {
		t.Fatalf("default RSA key = %T, want 2048-bit *rsa.PrivateKey", ca.Key)
	}
	if _, err := ca.Issue(Options{CommonName: "leaf", Algorithm: RSA, RSABits: 1024}); err == nil {
		t.Fatal("Issue accepted a 1024-bit RSA key")
	}
	leaf, err := ca.Issue(Options{CommonName: "leaf", Algorithm: RSA})
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Error("RSA leaf lacks KeyEncipherment")
	}
}

func TestOptionsValidation(t *testing.T) {
	if _, err := NewCA(Options{}); err == nil {
		t.Error("NewCA without a common name succeeded")
	}
	if _, err := NewCA(Options{CommonName: "ca", Algorithm: "dsa"}); err == nil || !strings.Contains(err.Error(), "dsa") {
		t.Errorf("unknown algorithm: error = %v", err)
	}
	now := time.Now()
	if _, err := NewCA(Options{CommonName: "ca", NotBefore: now, NotAfter: now.Add(-time.Hour)}); err == nil {
		t.Error("NotAfter before NotBefore accepted")
	}
}

func TestIssueAndLoadPair(t *testing.T) {
	ca, err := NewCA(Options{CommonName: "ca"})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA: IsCA=%v KeyUsage=%v", ca.Cert.IsCA, ca.Cert.KeyUsage)
	}
	leaf, err := ca.Issue(Options{CommonName: "ingester", DNSNames: []string{"ingester"}, IPs: []net.IP{net.ParseIP("10.1.2.3")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := leaf.Key.(*ecdsa.PrivateKey); !ok {
		t.Fatalf("default key type = %T, want ECDSA", leaf.Key)
	}
	if leaf.Cert.IsCA {
		t.Fatal("leaf is a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, name := range []string{"ingester", "10.1.2.3"} {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("Verify(%s): %v", name, err)
		}
	}

	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "l.crt"), filepath.Join(dir, "l.key")
	if err := os.WriteFile(certPath, leaf.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, leaf.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(leaf.Cert) || !leaf.Key.Public().(*ecdsa.PublicKey).Equal(loaded.Key.Public()) {
		t.Fatal("LoadPair did not round-trip")
	}
	if _, err := LoadPair(certPath, filepath.Join(dir, "missing.key")); err == nil {
		t.Fatal("LoadPair with a missing key succeeded")
	}
}
