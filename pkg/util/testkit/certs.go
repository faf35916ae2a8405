package testkit

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
)

// LoopbackIPs are the addresses every server leaf is valid for.
func LoopbackIPs() []net.IP { return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} }

// NewCA returns a certificate authority named cn, valid from three days
// ago, so leaves backdated by tests still fall within it.
func NewCA(t testing.TB, cn string) *certgen.Pair {
	t.Helper()
	ca, err := certgen.NewCA(certgen.Options{CommonName: cn, NotBefore: time.Now().Add(-72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Issue returns a leaf of ca made from opts.
func Issue(t testing.TB, ca *certgen.Pair, opts certgen.Options) *certgen.Pair {
	t.Helper()
	p, err := ca.Issue(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ServerLeaf returns a leaf of ca named cn, valid for localhost, 127.0.0.1
// and ::1.
func ServerLeaf(t testing.TB, ca *certgen.Pair, cn string) *certgen.Pair {
	t.Helper()
	return Issue(t, ca, certgen.Options{CommonName: cn, DNSNames: []string{"localhost"}, IPs: LoopbackIPs()})
}

// ClientLeaf returns a leaf of ca named cn whose only subjectAltName is the
// DNS name cn: servers tell clients apart by it.
func ClientLeaf(t testing.TB, ca *certgen.Pair, cn string) *certgen.Pair {
	t.Helper()
	return Issue(t, ca, certgen.Options{CommonName: cn, DNSNames: []string{cn}})
}

// WriteFile replaces path atomically with data and mode, as a careful
// certificate rotation tool does: readers see the old file or the new one.
func WriteFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil { // WriteFile's mode is subject to the umask
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// WritePair writes p into dir as <name>.crt (0644) and <name>.key (0600).
func WritePair(t testing.TB, dir, name string, p *certgen.Pair) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	WriteFile(t, certPath, p.CertPEM, 0o644)
	WriteFile(t, keyPath, p.KeyPEM, 0o600)
	return certPath, keyPath
}

// WriteBundle writes the certificates of cas, one after another, into
// <dir>/<name> and returns its path.
func WriteBundle(t testing.TB, dir, name string, cas ...*certgen.Pair) string {
	t.Helper()
	var b []byte
	for _, ca := range cas {
		b = append(b, ca.CertPEM...)
	}
	path := filepath.Join(dir, name)
	WriteFile(t, path, b, 0o644)
	return path
}

// PKI is a certificate authority written into a directory of its own,
// with the leaves it issued beside it.
type PKI struct {
	Dir    string
	CA     *certgen.Pair
	CAPath string // <Dir>/root.crt; the key is <Dir>/root.key
}

// Leaf is an issued certificate and where it was written.
type Leaf struct {
	*certgen.Pair
	CertPath, KeyPath string
}

// Files returns where the certificate and the key were written.
func (l *Leaf) Files() (certPath, keyPath string) { return l.CertPath, l.KeyPath }

// NewPKI creates a CA named cn in a fresh temporary directory.
func NewPKI(t testing.TB, cn string) *PKI {
	t.Helper()
	p := &PKI{Dir: t.TempDir(), CA: NewCA(t, cn)}
	p.CAPath, _ = WritePair(t, p.Dir, "root", p.CA)
	return p
}

// Issue writes a leaf made from opts as <name>.crt and <name>.key,
// replacing any previous one; the common name defaults to name.
func (p *PKI) Issue(t testing.TB, name string, opts certgen.Options) *Leaf {
	t.Helper()
	if opts.CommonName == "" {
		opts.CommonName = name
	}
	l := &Leaf{Pair: Issue(t, p.CA, opts)}
	l.CertPath, l.KeyPath = WritePair(t, p.Dir, name, l.Pair)
	return l
}

// Server writes a ServerLeaf named name.
func (p *PKI) Server(t testing.TB, name string) *Leaf {
	t.Helper()
	return p.Issue(t, name, certgen.Options{DNSNames: []string{"localhost"}, IPs: LoopbackIPs()})
}

// Client writes a ClientLeaf named name.
func (p *PKI) Client(t testing.TB, name string) *Leaf {
	t.Helper()
	return p.Issue(t, name, certgen.Options{DNSNames: []string{name}})
}
