package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// FileError is a problem with one TLS file, worded for the operator: which
// flag, which path, what is wrong and how to fix it.
type FileError struct {
	Flag    string // without the leading dash, e.g. "server.grpc-tls-cert-path"
	Path    string
	Problem string
	Fix     string
}

func (e *FileError) Error() string {
	msg := fmt.Sprintf("-%s=%s: %s", e.Flag, e.Path, e.Problem)
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// fileProblem builds a FileError.
func fileProblem(flag, path, problem, fix string) *FileError {
	return &FileError{Flag: flag, Path: path, Problem: problem, Fix: fix}
}

// readFile reads a TLS file and explains the usual reasons it cannot be read.
func readFile(flag, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		return nil, fileProblem(flag, path, "file does not exist",
			"check the path, or create certificates with `cortex certs generate`")
	case errors.Is(err, fs.ErrPermission):
		return nil, fileProblem(flag, path, "permission denied",
			"make the file readable by the user running cortex")
	default:
		return nil, fileProblem(flag, path, "cannot read: "+err.Error(), "")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fileProblem(flag, path, "file is empty", "write the PEM-encoded content into it")
	}
	return data, nil
}

// pemBlocks returns the types of the PEM blocks in data.
func pemBlocks(data []byte) (types []string, blocks []*pem.Block) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return types, blocks
		}
		types = append(types, b.Type)
		blocks = append(blocks, b)
	}
}

// notPEM explains a file that holds no PEM block at all.
func notPEM(flag, path string, data []byte, want string) error {
	if _, err := x509.ParseCertificate(data); err == nil {
		return fileProblem(flag, path, "certificate is DER-encoded, not PEM",
			fmt.Sprintf("convert it with `openssl x509 -inform der -in %s -out %s.pem`", path, path))
	}
	if _, err := x509.ParsePKCS8PrivateKey(data); err == nil {
		return fileProblem(flag, path, "key is DER-encoded, not PEM",
			fmt.Sprintf("convert it with `openssl pkey -inform der -in %s -out %s.pem`", path, path))
	}
	return fileProblem(flag, path, "not a PEM file (no -----BEGIN "+want+"----- block)",
		"give the PEM file, such as the ones `cortex certs generate` or the openssl script write")
}

// parseCertificates parses every CERTIFICATE block in a PEM file.
func parseCertificates(flag, path string, data []byte) ([]*x509.Certificate, error) {
	types, blocks := pemBlocks(data)
	if len(blocks) == 0 {
		return nil, notPEM(flag, path, data, "CERTIFICATE")
	}
	var certs []*x509.Certificate
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fileProblem(flag, path, "certificate cannot be parsed: "+err.Error(), "reissue it")
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		problem := fmt.Sprintf("holds no certificate, only %s", strings.Join(types, ", "))
		fix := "give the certificate file here"
		if hasKeyBlock(types) {
			fix = "this looks like a private key: did you swap the certificate and key paths?"
		}
		return nil, fileProblem(flag, path, problem, fix)
	}
	return certs, nil
}

func hasKeyBlock(types []string) bool {
	for _, t := range types {
		if strings.HasSuffix(t, "PRIVATE KEY") {
			return true
		}
	}
	return false
}

// checkValidity refuses a certificate outside its validity period.
func checkValidity(flag, path string, c *x509.Certificate, now time.Time) error {
	if now.After(c.NotAfter) {
		return fileProblem(flag, path,
			fmt.Sprintf("certificate %q expired on %s", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339)),
			"issue a new certificate (for example with `cortex certs generate`)")
	}
	if now.Before(c.NotBefore) {
		return fileProblem(flag, path,
			fmt.Sprintf("certificate %q is not valid until %s", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339)),
			"check this machine's clock, or reissue the certificate")
	}
	return nil
}

// loadKeyPair reads and validates a certificate and its private key.
func loadKeyPair(certFlag, certPath, keyFlag, keyPath string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := readFile(certFlag, certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile(keyFlag, keyPath)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertificates(certFlag, certPath, certPEM)
	if err != nil {
		return nil, err
	}
	keyTypes, keyBlocks := pemBlocks(keyPEM)
	if len(keyBlocks) == 0 {
		return nil, notPEM(keyFlag, keyPath, keyPEM, "PRIVATE KEY")
	}
	if !hasKeyBlock(keyTypes) {
		fix := "give the private key file here"
		if len(keyTypes) > 0 && keyTypes[0] == "CERTIFICATE" {
			fix = "this is a certificate: did you swap the certificate and key paths?"
		}
		return nil, fileProblem(keyFlag, keyPath, "holds no private key, only "+strings.Join(keyTypes, ", "), fix)
	}
	for _, b := range keyBlocks {
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED" {
			return nil, fileProblem(keyFlag, keyPath, "private key is encrypted with a passphrase",
				fmt.Sprintf("write an unencrypted copy readable only by cortex: `openssl pkey -in %s -out %s.plain && chmod 600 %s.plain`", keyPath, keyPath, keyPath))
		}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, fileProblem(keyFlag, keyPath,
				fmt.Sprintf("private key does not match the certificate in -%s=%s", certFlag, certPath),
				"give the key that was generated with this certificate, or reissue both together")
		}
		return nil, fileProblem(keyFlag, keyPath, "private key cannot be used: "+err.Error(), "")
	}
	if err := checkValidity(certFlag, certPath, certs[0], now); err != nil {
		return nil, err
	}
	pair.Leaf = certs[0]
	return &pair, nil
}

// loadCAPool reads a bundle of trusted CA certificates.
func loadCAPool(flag, path string, now time.Time) (*x509.CertPool, []*x509.Certificate, error) {
	data, err := readFile(flag, path)
	if err != nil {
		return nil, nil, err
	}
	certs, err := parseCertificates(flag, path, data)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	valid := 0
	for _, c := range certs {
		pool.AddCert(c)
		if checkValidity(flag, path, c, now) == nil {
			valid++
		}
	}
	if valid == 0 {
		return nil, nil, checkValidity(flag, path, certs[0], now)
	}
	return pool, certs, nil
}

// keyPermissionProblem warns when a private key is readable by others.
func keyPermissionProblem(flag, path string) *FileError {
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return fileProblem(flag, path,
		fmt.Sprintf("private key is readable by group or others (mode %04o)", info.Mode().Perm()),
		fmt.Sprintf("run `chmod 600 %s`", path))
}

// hasSANExtension reports whether the certificate carries a subjectAltName
// extension at all; only certificates without one may be matched by their
// legacy Common Name.
func hasSANExtension(c *x509.Certificate) bool {
	for _, ext := range c.Extensions {
		if ext.Id.Equal([]int{2, 5, 29, 17}) {
			return true
		}
	}
	return false
}
