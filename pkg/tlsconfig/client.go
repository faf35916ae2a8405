package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// ClientConfig is the TLS configuration of one client link, registered under
// the link's own prefix (-ingester.client., -querier.frontend-client., ...).
// YAML names follow Cortex's (tls_cert_path, ...), inlined in the link's block.
type ClientConfig struct {
	Enabled            bool   `yaml:"tls_enabled"`
	CertPath           string `yaml:"tls_cert_path"`
	KeyPath            string `yaml:"tls_key_path"`
	CAPath             string `yaml:"tls_ca_path"`
	ServerName         string `yaml:"tls_server_name"`
	InsecureSkipVerify bool   `yaml:"tls_insecure_skip_verify"`
	MinVersion         string `yaml:"tls_min_version"`
	CipherSuites       string `yaml:"tls_cipher_suites"`
	CommonNameFallback bool   `yaml:"tls_common_name_fallback"`
}

// RegisterFlagsWithPrefix registers -<prefix>.tls-enabled and its siblings.
func (c *ClientConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, prefix+".tls-enabled", false, "Use TLS on this link. Implied by any of the -"+prefix+".tls-*-path flags; alone it verifies the server against the system's CAs.")
	f.StringVar(&c.CertPath, prefix+".tls-cert-path", "", "Path to the client certificate presented to the server (mutual TLS).")
	f.StringVar(&c.KeyPath, prefix+".tls-key-path", "", "Path to the private key of the client certificate.")
	f.StringVar(&c.CAPath, prefix+".tls-ca-path", "", "Path to the CA bundle the server's certificate must chain to. Empty means the system's CAs.")
	f.StringVar(&c.ServerName, prefix+".tls-server-name", "", "Name to verify the server's certificate against, instead of the host dialled.")
	f.BoolVar(&c.InsecureSkipVerify, prefix+".tls-insecure-skip-verify", false, "Skip verifying the server's certificate. Insecure: for debugging only.")
	f.StringVar(&c.MinVersion, prefix+".tls-min-version", "VersionTLS12", "Lowest TLS version this client accepts: VersionTLS12 or VersionTLS13 (VersionTLS10 and VersionTLS11 are accepted with a warning: insecure).")
	f.StringVar(&c.CipherSuites, prefix+".tls-cipher-suites", "", "Comma-separated TLS 1.2 cipher suites this client offers (Go names). Empty means ECDHE with AES-GCM or ChaCha20-Poly1305 only.")
	f.BoolVar(&c.CommonNameFallback, prefix+".tls-common-name-fallback", true, "Accept a server certificate that has no subjectAltName extension at all when its Common Name matches the host dialled (a loopback address matches \"localhost\"), as OpenSSL and curl do. Lets the guide's openssl certificates work; the chain is still verified.")
}

// TLSOn reports whether this link uses TLS: any path, a server name or
// skip-verify imply it, so the guide's flags never silently dial plaintext.
func (c *ClientConfig) TLSOn() bool {
	return c.Enabled || c.CertPath != "" || c.KeyPath != "" || c.CAPath != "" || c.ServerName != "" || c.InsecureSkipVerify
}

// Client is the live TLS setup of one client link.
type Client struct {
	prefix  string
	cfg     ClientConfig
	keyPair *KeyPair
	caPool  *CAPool
	min     uint16
	ciphers []uint16
	logger  *slog.Logger
	cache   tls.ClientSessionCache
	// maxVersion caps the TLS version offered; 0 means crypto/tls's default.
	// Not a flag: tests use it to exercise the TLS 1.2 handshake paths.
	maxVersion uint16

	ok, failed prometheus.Counter
	warned     sync.Map // server name + serial -> struct{}, for the Common Name fallback warning
}

// NewClient validates cfg and loads its files; prefix is the flag prefix
// without dashes ("ingester.client"). It returns nil, nil when the link is
// plaintext; the methods of a nil *Client give plaintext transports.
func NewClient(prefix string, cfg ClientConfig, l *Loader) (*Client, error) {
	if !cfg.TLSOn() {
		return nil, nil
	}
	c := &Client{prefix: prefix, cfg: cfg, logger: l.logger.With("client", prefix), cache: tls.NewLRUClientSessionCache(64)}
	var err error
	var insecureVersion bool
	if c.min, insecureVersion, err = ParseMinVersion(prefix+".tls-min-version", cfg.MinVersion); err != nil {
		return nil, err
	}
	if insecureVersion {
		c.logger.Warn("-" + prefix + ".tls-min-version allows TLS versions older than 1.2, which are insecure")
	}
	var weak []string
	if c.ciphers, weak, err = ParseCipherSuites(prefix+".tls-cipher-suites", cfg.CipherSuites); err != nil {
		return nil, err
	}
	if len(weak) > 0 {
		c.logger.Warn("-"+prefix+".tls-cipher-suites names insecure cipher suites", "suites", strings.Join(weak, ","))
	}
	if cfg.CertPath != "" || cfg.KeyPath != "" {
		if c.keyPair, err = l.KeyPair(prefix+".tls-cert-path", cfg.CertPath, prefix+".tls-key-path", cfg.KeyPath); err != nil {
			return nil, err
		}
	}
	if cfg.CAPath != "" {
		if c.caPool, err = l.CAPool(prefix+".tls-ca-path", cfg.CAPath); err != nil {
			return nil, err
		}
	}
	if cfg.InsecureSkipVerify {
		c.logger.Warn("-" + prefix + ".tls-insecure-skip-verify is set: server certificates are not verified; anyone on the path can impersonate the server")
	}
	c.ok = l.metrics.clientHandshakes.WithLabelValues(prefix, "success")
	c.failed = l.metrics.clientHandshakes.WithLabelValues(prefix, "failure")
	return c, nil
}

// Config returns the tls.Config for one connection to serverName (the host
// dialled, unless -<prefix>.tls-server-name overrides it). Verification is
// done by VerifyConnection against the CA bundle in use at that moment, so a
// rotated bundle applies to the next connection without a restart.
func (c *Client) Config(serverName string, nextProtos []string) *tls.Config {
	if c.cfg.ServerName != "" {
		serverName = c.cfg.ServerName
	}
	return &tls.Config{
		ServerName: serverName,
		// Go's built-in check cannot use a reloadable CA bundle, nor fall
		// back to the Common Name; verifyServer does the full check instead.
		InsecureSkipVerify:   true,
		VerifyConnection:     c.verifyServer(serverName),
		GetClientCertificate: c.clientCertificate,
		MinVersion:           c.min,
		MaxVersion:           c.maxVersion,
		CipherSuites:         c.ciphers,
		NextProtos:           nextProtos,
		ClientSessionCache:   c.cache,
	}
}

func (c *Client) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c.keyPair == nil {
		return &tls.Certificate{}, nil
	}
	return c.keyPair.Certificate(), nil
}

// ServerCertError is a server certificate this client refused.
type ServerCertError struct {
	Message string
	Err     error
}

func (e *ServerCertError) Error() string { return e.Message }
func (e *ServerCertError) Unwrap() error { return e.Err }

func (c *Client) verifyServer(serverName string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if c.cfg.InsecureSkipVerify {
			return nil
		}
		if len(cs.PeerCertificates) == 0 {
			return &ServerCertError{Message: "server presented no certificate"}
		}
		leaf := cs.PeerCertificates[0]
		opts := x509.VerifyOptions{Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		trust := "the system's CAs (set -" + c.prefix + ".tls-ca-path to use a private CA)"
		if c.caPool != nil {
			opts.Roots = c.caPool.Pool()
			trust = fmt.Sprintf("-%s.tls-ca-path=%s", c.prefix, c.caPool.Path())
		}
		if _, err := leaf.Verify(opts); err != nil {
			var ua x509.UnknownAuthorityError
			if errors.As(err, &ua) {
				return &ServerCertError{Err: err, Message: fmt.Sprintf("server certificate (CN=%q, issued by %q) is not signed by a CA in %s",
					leaf.Subject.CommonName, leaf.Issuer.CommonName, trust)}
			}
			return &ServerCertError{Err: err, Message: fmt.Sprintf("server certificate (CN=%q) failed verification: %v", leaf.Subject.CommonName, err)}
		}
		err := leaf.VerifyHostname(serverName)
		if err == nil {
			return nil
		}
		if !hasSANExtension(leaf) {
			if c.cfg.CommonNameFallback && legacyNameMatch(leaf.Subject.CommonName, serverName) {
				c.warnFallback(serverName, leaf)
				return nil
			}
			hint := "reissue it with SANs (`cortex certs generate -dns ... -ip ...`)"
			if !c.cfg.CommonNameFallback {
				hint += ", or allow the legacy match with -" + c.prefix + ".tls-common-name-fallback=true"
			}
			return &ServerCertError{Err: err, Message: fmt.Sprintf("server certificate has no subjectAltName and its Common Name %q does not match %q; %s",
				leaf.Subject.CommonName, serverName, hint)}
		}
		return &ServerCertError{Err: err, Message: fmt.Sprintf("server certificate is valid for %s, not %q; dial one of those names or set -%s.tls-server-name",
			certNames(leaf), serverName, c.prefix)}
	}
}

// legacyNameMatch is the Common Name fallback for certificates without SANs:
// the CN matches the host name, or the host is a loopback address and the CN
// is "localhost" (processes on one machine dial each other by IP).
func legacyNameMatch(cn, host string) bool {
	if cn == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback() && (strings.EqualFold(cn, "localhost") || cn == ip.String())
	}
	return matchName(cn, strings.TrimSuffix(host, "."))
}

func (c *Client) warnFallback(serverName string, leaf *x509.Certificate) {
	key := serverName + "\x00" + leaf.SerialNumber.String()
	if _, seen := c.warned.LoadOrStore(key, struct{}{}); seen {
		return
	}
	c.logger.Warn(fmt.Sprintf("server %q presented a certificate without subjectAltName (CN=%q); accepted through the legacy Common Name fallback. Reissue the server certificate with SANs (`cortex certs generate`), then set -%s.tls-common-name-fallback=false",
		serverName, leaf.Subject.CommonName, c.prefix))
}

func certNames(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}

// DialContext dials addr and completes a TLS handshake, explaining failures
// in terms of this link's flags.
func (c *Client) DialContext(ctx context.Context, network, addr string, nextProtos []string) (net.Conn, error) {
	raw, err := (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return c.handshake(ctx, raw, addr, nextProtos)
}

func (c *Client) handshake(ctx context.Context, raw net.Conn, addr string, nextProtos []string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	conn := tls.Client(raw, c.Config(host, nextProtos))
	if err := conn.HandshakeContext(ctx); err != nil {
		c.failed.Inc()
		_ = raw.Close()
		return nil, c.explain(addr, err)
	}
	c.ok.Inc()
	return &explainedConn{Conn: conn, c: c, addr: addr}, nil
}

// HTTPTransport returns a transport for this link that keeps connections
// alive and reuses them, so requests do not pay for a handshake each. A nil
// Client gives a plaintext transport.
func (c *Client) HTTPTransport() *http.Transport {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if c != nil {
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.DialContext(ctx, network, addr, []string{"http/1.1"})
		}
	}
	return t
}

// GRPCDialOption returns the transport credentials for this link; a nil
// Client dials plaintext.
func (c *Client) GRPCDialOption() grpc.DialOption {
	if c == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(clientCreds{c: c})
}

type clientCreds struct{ c *Client }

func (cc clientCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, err := cc.c.handshake(ctx, raw, authority, []string{"h2"})
	if err != nil {
		return nil, nil, err
	}
	return conn, tlsInfo(conn.(*explainedConn).Conn), nil
}

func (clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("tlsconfig: client credentials cannot accept")
}

func (clientCreds) Info() credentials.ProtocolInfo {
	// The same ProtocolInfo as grpc's own credentials.NewTLS, which still sets
	// the deprecated SecurityVersion.
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"} //nolint:staticcheck // matches credentials.NewTLS's Info()
}

func (cc clientCreds) Clone() credentials.TransportCredentials { return cc }

func (clientCreds) OverrideServerName(string) error { return nil }
