// Package certgen creates a private certificate authority and the leaf
// certificates Cortex components present to each other. Unlike the guide's
// openssl script it always writes subjectAltNames, so Go clients verify host
// names and IP addresses without any legacy Common Name fallback.
//
// It must not import other packages of this module, never prints or logs
// private keys, and never replaces an existing CA unless told to (-force).
package certgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// Algorithm names accepted by Options.Algorithm.
const (
	ECDSA = "ecdsa"
	RSA   = "rsa"
)

// Options describe one certificate to create.
type Options struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	// Algorithm is ECDSA (P-256, the default) or RSA.
	Algorithm string
	// RSABits is the RSA key size; 0 means 2048.
	RSABits   int
	NotBefore time.Time
	NotAfter  time.Time
}

// Pair is a certificate and its private key, parsed and PEM encoded.
type Pair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// TLSCertificate returns the pair in the form crypto/tls uses.
func (p *Pair) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key, Leaf: p.Cert}
}

// NewCA creates a self-signed certificate authority.
func NewCA(opts Options) (*Pair, error) {
	key, err := newKey(opts)
	if err != nil {
		return nil, err
	}
	tmpl, err := template(opts, key.Public())
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	return sign(tmpl, tmpl, key.Public(), key, key)
}

// Issue creates a leaf certificate signed by ca. Leaves are valid for both
// server and client authentication, because every Cortex component is both.
func (ca *Pair) Issue(opts Options) (*Pair, error) {
	key, err := newKey(opts)
	if err != nil {
		return nil, err
	}
	tmpl, err := template(opts, key.Public())
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if _, isRSA := key.(*rsa.PrivateKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.BasicConstraintsValid = true
	return sign(tmpl, ca.Cert, key.Public(), key, ca.Key)
}

// LoadPair reads a PEM certificate and key written by this package or by openssl.
func LoadPair(certPath, keyPath string) (*Pair, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certPath, keyPath, err)
	}
	signer, ok := kp.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", keyPath, kp.PrivateKey)
	}
	return &Pair{Cert: kp.Leaf, Key: signer, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

func newKey(opts Options) (crypto.Signer, error) {
	switch opts.Algorithm {
	case "", ECDSA:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA:
		bits := opts.RSABits
		if bits == 0 {
			bits = 2048
		}
		if bits < 2048 {
			return nil, fmt.Errorf("RSA keys shorter than 2048 bits are not safe (asked for %d)", bits)
		}
		return rsa.GenerateKey(rand.Reader, bits)
	default:
		return nil, fmt.Errorf("unknown key algorithm %q: use %q or %q", opts.Algorithm, ECDSA, RSA)
	}
}

func template(opts Options, pub crypto.PublicKey) (*x509.Certificate, error) {
	if opts.CommonName == "" {
		return nil, errors.New("a certificate needs a common name")
	}
	notBefore, notAfter := opts.NotBefore, opts.NotAfter
	if notBefore.IsZero() {
		// Backdate a little so peers with a slightly slow clock accept it.
		notBefore = time.Now().Add(-5 * time.Minute)
	}
	if notAfter.IsZero() {
		notAfter = notBefore.Add(365 * 24 * time.Hour)
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("certificate %q would expire (%s) before it is valid (%s)", opts.CommonName, notAfter, notBefore)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	ski := sha256.Sum256(pubDER)
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: opts.CommonName, Organization: []string{"Cortex"}},
		DNSNames:     opts.DNSNames,
		IPAddresses:  opts.IPs,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		SubjectKeyId: ski[:20],
	}, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key, parentKey crypto.Signer) (*Pair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}
