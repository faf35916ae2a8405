package tlsconfig

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
)

// Client authentication modes, named as in the guide and crypto/tls.
var clientAuthModes = map[string]tls.ClientAuthType{
	"NoClientCert":               tls.NoClientCert,
	"RequestClientCert":          tls.RequestClientCert,
	"RequireAnyClientCert":       tls.RequireAnyClientCert,
	"VerifyClientCertIfGiven":    tls.VerifyClientCertIfGiven,
	"RequireAndVerifyClientCert": tls.RequireAndVerifyClientCert,
}

// ClientAuthNames lists the valid -server.*-tls-client-auth values.
const ClientAuthNames = "NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"

// ServerConfig is the TLS configuration of one server (HTTP or gRPC). Its
// YAML names follow Cortex's http_tls_config and grpc_tls_config blocks.
type ServerConfig struct {
	CertPath           string                 `yaml:"cert_file"`
	KeyPath            string                 `yaml:"key_file"`
	ClientAuth         string                 `yaml:"client_auth_type"`
	CAPath             string                 `yaml:"client_ca_file"`
	AllowedClientNames flagext.StringSliceCSV `yaml:"allowed_client_names"`
}

// RegisterFlagsWithPrefix registers -<prefix>-tls-cert-path and its siblings;
// prefix is "server.http" or "server.grpc".
func (c *ServerConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	kind := "HTTP"
	if strings.HasSuffix(prefix, "grpc") {
		kind = "gRPC"
	}
	f.StringVar(&c.CertPath, prefix+"-tls-cert-path", "", "Path to the TLS certificate of the "+kind+" server. Setting it turns TLS on.")
	f.StringVar(&c.KeyPath, prefix+"-tls-key-path", "", "Path to the TLS private key of the "+kind+" server.")
	f.StringVar(&c.ClientAuth, prefix+"-tls-client-auth", "", "Client certificate policy of the "+kind+" server: "+ClientAuthNames+". Empty means RequireAndVerifyClientCert when a CA path is given, NoClientCert otherwise.")
	f.StringVar(&c.CAPath, prefix+"-tls-ca-path", "", "Path to the CA bundle that client certificates of the "+kind+" server must chain to.")
	f.Var(&c.AllowedClientNames, prefix+"-tls-allowed-client-names", "Comma-separated client identities the "+kind+" server accepts, matched against the client certificate's DNS names (or its Common Name when it has none). Empty accepts any certificate the CA signed.")
}

// ServerOptions hold the settings shared by a process's servers.
type ServerOptions struct {
	MinVersion       string        `yaml:"tls_min_version"`
	CipherSuites     string        `yaml:"tls_cipher_suites"`
	HandshakeTimeout time.Duration `yaml:"tls_handshake_timeout"`
	// ClientNames lists the names of a client certificate that the
	// allowed client names are matched against; nil means PeerNames.
	ClientNames func(*x509.Certificate) []string `yaml:"-"`
}

// RegisterFlags registers -server.tls-min-version and its siblings.
func (o *ServerOptions) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&o.MinVersion, "server.tls-min-version", "VersionTLS12", "Lowest TLS version the servers accept: VersionTLS12 or VersionTLS13 (VersionTLS10 and VersionTLS11 are accepted with a warning: insecure).")
	f.StringVar(&o.CipherSuites, "server.tls-cipher-suites", "", "Comma-separated TLS 1.2 cipher suites the servers accept (Go names). Empty means ECDHE with AES-GCM or ChaCha20-Poly1305 only; suites Go deems insecure must be named to be used.")
	f.DurationVar(&o.HandshakeTimeout, "server.tls-handshake-timeout", 10*time.Second, "Time a client has to complete the TLS handshake.")
}

// Server is the live TLS setup of one server: current certificate and client
// CAs, peer checks, and handshake diagnostics.
type Server struct {
	name    string // "http" or "grpc", for metrics and messages
	prefix  string // "server.http"
	cfg     ServerConfig
	auth    tls.ClientAuthType
	keyPair *KeyPair
	caPool  *CAPool
	min     uint16
	ciphers []uint16
	timeout time.Duration
	names   func(*x509.Certificate) []string
	logger  *slog.Logger

	tickets    ticketKeys
	handshakes prometheus.Counter
	failures   *prometheus.CounterVec
	logOnce    *onceLogger
}

// serverFlag names a server TLS flag: -server.http-tls-cert-path for the
// prefix "server.http", -memberlist.tls-cert-path for "memberlist." (a
// link whose server and client share one flag set).
func serverFlag(prefix, name string) string {
	if strings.HasSuffix(prefix, ".") {
		return prefix + "tls-" + name
	}
	return prefix + "-tls-" + name
}

// NewServer validates cfg and loads its files; prefix names its flags (see
// serverFlag). It returns nil, nil when the server is configured for
// plaintext.
func NewServer(name, prefix string, cfg ServerConfig, opts ServerOptions, l *Loader) (*Server, error) {
	if cfg.CertPath == "" && cfg.KeyPath == "" {
		for flagName, v := range map[string]string{"client-auth": cfg.ClientAuth, "ca-path": cfg.CAPath, "allowed-client-names": cfg.AllowedClientNames.String()} {
			if v != "" {
				return nil, fmt.Errorf("-%s is set but TLS is off on this server: also set -%s and -%s", serverFlag(prefix, flagName), serverFlag(prefix, "cert-path"), serverFlag(prefix, "key-path"))
			}
		}
		return nil, nil
	}
	s := &Server{name: name, prefix: prefix, cfg: cfg, timeout: opts.HandshakeTimeout, names: opts.ClientNames, logger: l.logger.With("server", name)}
	if s.names == nil {
		s.names = PeerNames
	}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	var err error
	if s.auth, err = parseClientAuth(prefix, cfg); err != nil {
		return nil, err
	}
	var insecure bool
	if s.min, insecure, err = ParseMinVersion("server.tls-min-version", opts.MinVersion); err != nil {
		return nil, err
	}
	if insecure {
		s.logger.Warn("-server.tls-min-version allows TLS versions older than 1.2, which are insecure", "value", opts.MinVersion)
	}
	var weak []string
	if s.ciphers, weak, err = ParseCipherSuites("server.tls-cipher-suites", opts.CipherSuites); err != nil {
		return nil, err
	}
	if len(weak) > 0 {
		s.logger.Warn("-server.tls-cipher-suites names insecure cipher suites", "suites", strings.Join(weak, ","))
	}
	if s.keyPair, err = l.KeyPair(serverFlag(prefix, "cert-path"), cfg.CertPath, serverFlag(prefix, "key-path"), cfg.KeyPath); err != nil {
		return nil, err
	}
	if leaf := s.keyPair.Certificate().Leaf; !hasSANExtension(leaf) {
		s.logger.Warn(fmt.Sprintf("-%s=%s has no subjectAltName; clients of this project accept it through the legacy Common Name fallback (CN=%q, loopback addresses match \"localhost\"), other TLS clients will refuse it. Reissue it with SANs: `cortex certs generate -dns <names> -ip <addresses>`",
			serverFlag(prefix, "cert-path"), cfg.CertPath, leaf.Subject.CommonName), "flag", serverFlag(prefix, "cert-path"), "path", cfg.CertPath)
	}
	if cfg.CAPath != "" {
		if s.caPool, err = l.CAPool(serverFlag(prefix, "ca-path"), cfg.CAPath); err != nil {
			return nil, err
		}
	}
	s.handshakes = l.metrics.serverHandshakes.WithLabelValues(name)
	s.failures = l.metrics.handshakeFailures
	s.logOnce = newOnceLogger(10 * time.Minute)
	return s, nil
}

func parseClientAuth(prefix string, cfg ServerConfig) (tls.ClientAuthType, error) {
	flagName := serverFlag(prefix, "client-auth")
	mode := cfg.ClientAuth
	if mode == "" {
		// A CA given without a mode means the operator wants client
		// certificates checked: do that rather than silently ignore the CA.
		mode = "NoClientCert"
		if cfg.CAPath != "" {
			mode = "RequireAndVerifyClientCert"
		}
	}
	auth, ok := clientAuthModes[mode]
	if !ok {
		return 0, fmt.Errorf("-%s=%q is not a client auth mode; valid values: %s", flagName, cfg.ClientAuth, ClientAuthNames)
	}
	verifies := auth == tls.VerifyClientCertIfGiven || auth == tls.RequireAndVerifyClientCert
	if verifies && cfg.CAPath == "" {
		return 0, fmt.Errorf("-%s=%s verifies client certificates but -%s is empty: give the CA bundle that signed the clients' certificates", flagName, mode, serverFlag(prefix, "ca-path"))
	}
	if !verifies && cfg.CAPath != "" {
		return 0, fmt.Errorf("-%s is set but -%s=%s never verifies client certificates: use RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or drop the CA path", serverFlag(prefix, "ca-path"), flagName, mode)
	}
	if !verifies && len(cfg.AllowedClientNames) > 0 {
		return 0, fmt.Errorf("-%s needs verified client certificates, but -%s=%s does not verify them: use RequireAndVerifyClientCert", serverFlag(prefix, "allowed-client-names"), flagName, mode)
	}
	return auth, nil
}

// ClientAuth returns the client certificate policy in force.
func (s *Server) ClientAuth() tls.ClientAuthType { return s.auth }

// config returns the tls.Config for one handshake, built from the material in
// use at that moment so that reloaded files apply to the next connection.
func (s *Server) config(nextProtos []string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   s.min,
		CipherSuites: s.ciphers,
		Certificates: []tls.Certificate{*s.keyPair.Certificate()},
		ClientAuth:   s.auth,
		NextProtos:   nextProtos,
	}
	if s.caPool != nil {
		cfg.ClientCAs = s.caPool.Pool()
		// A resumed session would skip checking the client against the
		// current CA bundle; full handshakes keep CA rotation honest.
		cfg.SessionTicketsDisabled = true
	}
	if len(s.cfg.AllowedClientNames) > 0 {
		cfg.VerifyConnection = s.checkAllowedName
	}
	if !cfg.SessionTicketsDisabled {
		// Each handshake gets a fresh Config; shared keys let clients resume.
		cfg.SetSessionTicketKeys(s.tickets.keys(time.Now()))
	}
	return cfg
}

// ticketKeys are the server's session ticket keys, rotated daily: new
// tickets use the newest key, and the previous one still decrypts.
type ticketKeys struct {
	mu      sync.Mutex
	current [][32]byte
	created time.Time
}

func (t *ticketKeys) keys(now time.Time) [][32]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current == nil || now.Sub(t.created) > 24*time.Hour {
		var k [32]byte
		_, _ = rand.Read(k[:])
		t.current = append([][32]byte{k}, t.current...)
		if len(t.current) > 2 {
			t.current = t.current[:2]
		}
		t.created = now
	}
	return t.current
}

// Handshake runs the server side of a TLS handshake on a new connection,
// counting and explaining any failure.
func (s *Server) Handshake(raw net.Conn, nextProtos []string) (*tls.Conn, error) {
	rec := &recordingConn{Conn: raw, recording: true}
	conn := tls.Server(rec, s.config(nextProtos))
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		f := s.classify(raw.RemoteAddr().String(), err)
		s.failures.WithLabelValues(s.name, f.reason).Inc()
		var rh tls.RecordHeaderError
		switch {
		case f.answer != "":
			_ = raw.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = raw.Write([]byte(f.answer))
		case errors.As(err, &rh) && string(rh.RecordHeader[:]) == "PRI *" && !rec.truncated:
			refusePlaintextGRPC(raw, rec.rec, 2*time.Second)
		}
		s.logOnce.log(s.logger, f, raw.RemoteAddr())
		lingerClose(raw)
		return nil, &HandshakeError{Reason: f.reason, Message: f.message, Err: err}
	}
	rec.stop()
	s.handshakes.Inc()
	return conn, nil
}

// notAllowedError is a verified client whose names are not on the allow-list.
type notAllowedError struct{ names []string }

func (e *notAllowedError) Error() string {
	return fmt.Sprintf("client certificate names %q are not on the allowed list", e.names)
}

func (s *Server) checkAllowedName(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil // VerifyClientCertIfGiven and no certificate given
	}
	names := s.names(cs.PeerCertificates[0])
	for _, n := range names {
		for _, allowed := range s.cfg.AllowedClientNames {
			if matchName(allowed, n) {
				return nil
			}
		}
	}
	return &notAllowedError{names: names}
}

// matchName matches a name against an allow-list entry, which may start with
// "*." to match one leftmost label.
func matchName(pattern, name string) bool {
	pattern, name = strings.ToLower(pattern), strings.ToLower(name)
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		i := strings.IndexByte(name, '.')
		return i > 0 && name[i+1:] == rest
	}
	return pattern == name
}

// lingerClose closes a refused connection so the client can read why. Under
// TLS 1.3 the client has finished its handshake and may already be sending
// data when the server refuses its certificate; closing with that data unread
// makes the kernel send a reset that can destroy the alert in flight. So
// half-close, drain briefly, then close.
func lingerClose(raw net.Conn) {
	if tc, ok := raw.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = raw.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(raw, 1<<16))
	}
	_ = raw.Close()
}
