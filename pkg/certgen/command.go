package certgen

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// File names follow the guide's openssl script, so its flag examples apply as written.
const (
	caName       = "root"
	caCommonName = "root"
)

// Leaf names become file names and DNS SANs: keep them to safe, lower-case words.
var leafNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)

// Command runs `cortex certs <subcommand> [flags]`; args excludes "certs".
// It returns the process exit code: 0 on success, 1 when generation fails,
// 2 on a usage error.
func Command(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		commandUsage(stderr)
		return 2
	}
	switch args[0] {
	case "generate":
		return generate(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		commandUsage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "cortex certs: unknown subcommand %q\n", args[0])
		commandUsage(stderr)
		return 2
	}
}

func commandUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: cortex certs <subcommand> [flags]

Subcommands:
  generate   create a private CA (root.crt, root.key) and leaf certificates
             (<leaf>.crt, <leaf>.key) for TLS between Cortex components

Run 'cortex certs generate -h' for its flags.
`)
}

// generateConfig holds the raw flag values of `cortex certs generate`.
type generateConfig struct {
	outDir     string
	dns        string
	ips        string
	algorithm  string
	rsaBits    int
	validity   time.Duration
	caValidity time.Duration
	leaves     string
	force      bool
}

func (c *generateConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.outDir, "out-dir", ".", "Directory to write certificates and keys to; created with mode 0700 if missing.")
	fs.StringVar(&c.dns, "dns", "localhost", "Comma-separated DNS names added to every leaf certificate (each leaf also gets its own name).")
	fs.StringVar(&c.ips, "ip", "127.0.0.1", "Comma-separated IP addresses added to every leaf certificate.")
	fs.StringVar(&c.algorithm, "algorithm", ECDSA, "Key algorithm: ecdsa (P-256) or rsa.")
	fs.IntVar(&c.rsaBits, "rsa-bits", 2048, "RSA key size in bits, with -algorithm=rsa; at least 2048.")
	fs.DurationVar(&c.validity, "validity", 8760*time.Hour, "Validity of leaf certificates.")
	fs.DurationVar(&c.caValidity, "ca-validity", 87600*time.Hour, "Validity of a newly created CA certificate.")
	fs.StringVar(&c.leaves, "leaves", "server,client", "Comma-separated leaf names; each gets <name>.crt and <name>.key (e.g. server,client,distributor,ingester,querier).")
	fs.BoolVar(&c.force, "force", false, "Overwrite existing files, including the CA. Without it an existing root.crt and root.key are reused to sign the new leaves.")
}

// generatePlan is everything validated, before any file is touched.
type generatePlan struct {
	cfg      generateConfig
	dnsNames []string
	ips      []net.IP
	leaves   []string
}

func generate(args []string, stdout, stderr io.Writer) int {
	var cfg generateConfig
	fs := flag.NewFlagSet("cortex certs generate", flag.ContinueOnError)
	// Parse errors are reported below, so that -h goes to stdout and errors to stderr.
	fs.SetOutput(io.Discard)
	cfg.registerFlags(fs)
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: cortex certs generate [flags]\n\nCreates a private CA and leaf certificates valid for both server and client authentication.\n\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	usageErr := func(err error) int {
		fmt.Fprintf(stderr, "cortex certs generate: %v\n\n", err)
		usage(stderr)
		return 2
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		return usageErr(err)
	}
	if fs.NArg() > 0 {
		return usageErr(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	plan, err := cfg.plan()
	if err != nil {
		return usageErr(err)
	}
	if err := plan.run(stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "cortex certs generate: %v\n", err)
		return 1
	}
	return 0
}

// plan validates the flag values; it reads nothing from disk.
func (c generateConfig) plan() (*generatePlan, error) {
	p := &generatePlan{cfg: c}
	if c.outDir == "" {
		return nil, errors.New("-out-dir must not be empty")
	}
	for _, name := range splitList(c.dns) {
		if net.ParseIP(name) != nil {
			return nil, fmt.Errorf("-dns: %q is an IP address; pass it with -ip", name)
		}
		if strings.ContainsAny(name, " /\\:") {
			return nil, fmt.Errorf("-dns: %q is not a valid DNS name", name)
		}
		p.dnsNames = append(p.dnsNames, name)
	}
	for _, s := range splitList(c.ips) {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("-ip: %q is not an IP address", s)
		}
		p.ips = append(p.ips, ip)
	}
	switch c.algorithm {
	case ECDSA:
	case RSA:
		if c.rsaBits < 2048 {
			return nil, fmt.Errorf("-rsa-bits: %d is too small; use at least 2048", c.rsaBits)
		}
	default:
		return nil, fmt.Errorf("-algorithm: %q is not supported; use %s or %s", c.algorithm, ECDSA, RSA)
	}
	if c.validity <= 0 {
		return nil, fmt.Errorf("-validity: %s must be positive", c.validity)
	}
	if c.caValidity <= 0 {
		return nil, fmt.Errorf("-ca-validity: %s must be positive", c.caValidity)
	}
	p.leaves = splitList(c.leaves)
	if len(p.leaves) == 0 {
		return nil, errors.New("-leaves: name at least one leaf certificate")
	}
	for i, name := range p.leaves {
		switch {
		case !leafNameRE.MatchString(name):
			return nil, fmt.Errorf("-leaves: %q is not a valid name; use lower-case letters, digits, '-', '_' and '.'", name)
		case name == caName:
			return nil, fmt.Errorf("-leaves: %q is reserved for the CA files", name)
		case slices.Contains(p.leaves[:i], name):
			return nil, fmt.Errorf("-leaves: %q is listed twice", name)
		}
	}
	return p, nil
}

func (p *generatePlan) path(name string) string { return filepath.Join(p.cfg.outDir, name) }

// run checks existing files, creates every certificate in memory and only then
// writes, so a failure never leaves half a set behind.
func (p *generatePlan) run(stdout, stderr io.Writer) error {
	if fi, err := os.Stat(p.cfg.outDir); err == nil && !fi.IsDir() {
		return fmt.Errorf("-out-dir %s is not a directory", p.cfg.outDir)
	}
	caCrt, caKey := p.path(caName+".crt"), p.path(caName+".key")
	crtExists, err := exists(caCrt)
	if err != nil {
		return err
	}
	keyExists, err := exists(caKey)
	if err != nil {
		return err
	}
	reuseCA := crtExists && keyExists && !p.cfg.force
	if !p.cfg.force && crtExists != keyExists {
		present, missing := caCrt, caKey
		if keyExists {
			present, missing = caKey, caCrt
		}
		return fmt.Errorf("%s exists but %s does not; restore it, or pass -force to create a new CA", present, missing)
	}

	var toWrite []string
	if !reuseCA {
		toWrite = append(toWrite, caCrt, caKey)
	}
	for _, name := range p.leaves {
		toWrite = append(toWrite, p.path(name+".crt"), p.path(name+".key"))
	}
	if !p.cfg.force {
		var existing []string
		for _, path := range toWrite {
			ok, err := exists(path)
			if err != nil {
				return err
			}
			if ok {
				existing = append(existing, path)
			}
		}
		if len(existing) > 0 {
			return fmt.Errorf("refusing to overwrite existing %s; pass -force to overwrite", strings.Join(existing, ", "))
		}
	}

	now := time.Now()
	// Backdated like template's default, so peers with a slightly slow clock accept it.
	notBefore := now.Add(-5 * time.Minute)
	var ca *Pair
	if reuseCA {
		if ca, err = loadCA(caCrt, caKey, now); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "using existing CA %s\n", caCrt)
	} else {
		if p.cfg.validity > p.cfg.caValidity {
			return fmt.Errorf("-validity %s is longer than -ca-validity %s", p.cfg.validity, p.cfg.caValidity)
		}
		ca, err = NewCA(Options{
			CommonName: caCommonName,
			Algorithm:  p.cfg.algorithm,
			RSABits:    p.cfg.rsaBits,
			NotBefore:  notBefore,
			NotAfter:   now.Add(p.cfg.caValidity),
		})
		if err != nil {
			return fmt.Errorf("creating CA: %w", err)
		}
	}

	notAfter := now.Add(p.cfg.validity)
	if notAfter.After(ca.Cert.NotAfter) {
		// Some verifiers reject a leaf that outlives its issuer.
		notAfter = ca.Cert.NotAfter
		fmt.Fprintf(stderr, "note: leaf certificates expire with the CA on %s\n", notAfter.UTC().Format(time.RFC3339))
	}
	files := map[string][]byte{}
	if !reuseCA {
		files[caCrt], files[caKey] = ca.CertPEM, ca.KeyPEM
	}
	for _, name := range p.leaves {
		leaf, err := ca.Issue(p.leafOptions(name, notBefore, notAfter))
		if err != nil {
			return fmt.Errorf("issuing %s: %w", name, err)
		}
		files[p.path(name+".crt")], files[p.path(name+".key")] = leaf.CertPEM, leaf.KeyPEM
	}

	if err := os.MkdirAll(p.cfg.outDir, 0o700); err != nil {
		return err
	}
	for _, path := range toWrite {
		perm := os.FileMode(0o644)
		if strings.HasSuffix(path, ".key") {
			perm = 0o600
		}
		if err := writeFile(path, files[path], perm, p.cfg.force); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
	}
	p.printHint(stdout, caCrt)
	return nil
}

// leafOptions gives every leaf the shared SANs plus its own name, so a server
// can tell components apart by the name in their client certificate.
func (p *generatePlan) leafOptions(name string, notBefore, notAfter time.Time) Options {
	cn := name
	if name == "server" {
		cn = "localhost" // as in the guide's script
	}
	dns := []string{name}
	for _, d := range p.dnsNames {
		if !slices.Contains(dns, d) {
			dns = append(dns, d)
		}
	}
	return Options{
		CommonName: cn,
		DNSNames:   dns,
		IPs:        p.ips,
		Algorithm:  p.cfg.algorithm,
		RSABits:    p.cfg.rsaBits,
		NotBefore:  notBefore,
		NotAfter:   notAfter,
	}
}

// loadCA loads an existing CA, also one made by the guide's openssl script.
func loadCA(certPath, keyPath string, now time.Time) (*Pair, error) {
	ca, err := LoadPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("loading existing CA: %w", err)
	}
	if (ca.Cert.BasicConstraintsValid && !ca.Cert.IsCA) ||
		(ca.Cert.KeyUsage != 0 && ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, fmt.Errorf("%s is not a CA certificate; pass -force to create a new CA", certPath)
	}
	if now.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("existing CA %s expired on %s; pass -force to create a new CA (and reissue every leaf)", certPath, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return ca, nil
}

func (p *generatePlan) printHint(w io.Writer, caCrt string) {
	server, client := p.leaves[0], p.leaves[0]
	if slices.Contains(p.leaves, "server") {
		server = "server"
	}
	if slices.Contains(p.leaves, "client") {
		client = "client"
	}
	fmt.Fprintf(w, `
Server flags (every component; the same for -server.http-tls-*):
  -server.grpc-tls-cert-path=%[1]s -server.grpc-tls-key-path=%[2]s -server.grpc-tls-ca-path=%[3]s -server.grpc-tls-client-auth=RequireAndVerifyClientCert
Client flags (per link, e.g. -ingester.client., -querier.frontend-client., -alertmanager.configs.):
  -ingester.client.tls-cert-path=%[4]s -ingester.client.tls-key-path=%[5]s -ingester.client.tls-ca-path=%[3]s
`, p.path(server+".crt"), p.path(server+".key"), caCrt, p.path(client+".crt"), p.path(client+".key"))
}

// writeFile creates path with perm from the start, so a key is never readable
// by others, even briefly. Without force an existing file is an error.
func writeFile(path string, data []byte, perm os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, perm)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("refusing to overwrite existing %s; pass -force to overwrite", path)
		}
		return err
	}
	// OpenFile's mode only applies to new files and is masked by the umask;
	// set it before writing so an overwritten key never keeps wider permissions.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
