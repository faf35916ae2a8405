package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// HandshakeError is a refused or failed server handshake.
type HandshakeError struct {
	Reason  string // the metric's reason label
	Message string // for the operator
	Err     error
}

func (e *HandshakeError) Error() string { return e.Message }
func (e *HandshakeError) Unwrap() error { return e.Err }

// failure is a classified handshake failure.
type failure struct {
	reason  string
	message string
	level   slog.Level
	answer  string // bytes written back in plaintext before closing, if any
}

func (s *Server) authFlag() string {
	if strings.HasSuffix(s.prefix, ".") {
		// A link with one flag set for both ends (gossip) has no client
		// auth flag: its CA path is what requires client certificates.
		return fmt.Sprintf("-%s is set", serverFlag(s.prefix, "ca-path"))
	}
	mode := s.cfg.ClientAuth
	if mode == "" {
		mode = "RequireAndVerifyClientCert (the default with a CA path)"
	}
	return fmt.Sprintf("-%s=%s", serverFlag(s.prefix, "client-auth"), mode)
}

// classify turns a handshake error into a metric reason and an explanation.
func (s *Server) classify(peer string, err error) failure {
	msg := err.Error()
	var rh tls.RecordHeaderError
	var cve *tls.CertificateVerificationError
	var na *notAllowedError
	switch {
	case errors.As(err, &rh):
		hdr := string(rh.RecordHeader[:])
		if looksLikeHTTP(hdr) {
			if hdr == "PRI *" {
				return failure{"plaintext", fmt.Sprintf("client at %s sent plaintext HTTP/2 (likely a gRPC client without TLS) to this TLS port; turn TLS on in that client (its -<prefix>.tls-* flags)", peer), slog.LevelWarn, ""}
			}
			return failure{"plaintext", fmt.Sprintf("client at %s sent a plaintext HTTP request to this TLS port; use https://", peer), slog.LevelWarn,
				"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"}
		}
		return failure{"not_tls", fmt.Sprintf("client at %s does not speak TLS (first bytes %q)", peer, rh.RecordHeader[:]), slog.LevelWarn, ""}
	case errors.As(err, &na):
		return failure{"name_not_allowed", fmt.Sprintf("client at %s presented a valid certificate for %q, which is not in -%s=%s", peer, na.names, serverFlag(s.prefix, "allowed-client-names"), s.cfg.AllowedClientNames.String()), slog.LevelWarn, ""}
	case strings.Contains(msg, "didn't provide a certificate"):
		return failure{"no_client_certificate", fmt.Sprintf("client at %s presented no certificate; this server requires one (%s)", peer, s.authFlag()), slog.LevelWarn, ""}
	case errors.As(err, &cve):
		return s.classifyCertificate(peer, cve)
	case strings.Contains(msg, "remote error"):
		return failure{"client_rejected_server_certificate", fmt.Sprintf("client at %s refused this server's certificate (%s); the client's CA (its -<prefix>.tls-ca-path) must hold the CA that signed -%s=%s, and the certificate must name the host the client dials", peer, msg, serverFlag(s.prefix, "cert-path"), s.cfg.CertPath), slog.LevelWarn, ""}
	case strings.Contains(msg, "bad record MAC"):
		// OpenSSL clients that refuse the server's certificate under TLS 1.3
		// abort in a way Go reads as a bad record rather than an alert.
		return failure{"client_aborted", fmt.Sprintf("client at %s aborted the handshake (%s); most often it refused this server's certificate: its CA (e.g. curl --cacert) must hold the CA that signed -%s=%s, and the certificate must name the host it dials", peer, msg, serverFlag(s.prefix, "cert-path"), s.cfg.CertPath), slog.LevelWarn, ""}
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "protocol version"):
		return failure{"protocol_version", fmt.Sprintf("client at %s offered only TLS versions below -server.tls-min-version=%s", peer, VersionName(s.min)), slog.LevelWarn, ""}
	case strings.Contains(msg, "no cipher suite"):
		return failure{"no_shared_cipher", fmt.Sprintf("client at %s shares no cipher suite with -server.tls-cipher-suites", peer), slog.LevelWarn, ""}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return failure{"timeout", fmt.Sprintf("client at %s did not finish the TLS handshake within %s", peer, s.timeout), slog.LevelDebug, ""}
	case isEOF(err):
		return failure{"closed", fmt.Sprintf("client at %s closed the connection during the TLS handshake", peer), slog.LevelDebug, ""}
	default:
		return failure{"other", fmt.Sprintf("TLS handshake with client at %s failed: %s", peer, msg), slog.LevelWarn, ""}
	}
}

func (s *Server) classifyCertificate(peer string, cve *tls.CertificateVerificationError) failure {
	who := ""
	if len(cve.UnverifiedCertificates) > 0 {
		who = fmt.Sprintf(" (CN=%q)", cve.UnverifiedCertificates[0].Subject.CommonName)
	}
	var ua x509.UnknownAuthorityError
	var inv x509.CertificateInvalidError
	switch {
	case errors.As(cve.Err, &ua):
		issuer := ""
		if len(cve.UnverifiedCertificates) > 0 {
			issuer = fmt.Sprintf(" issued by %q", cve.UnverifiedCertificates[0].Issuer.CommonName)
		}
		return failure{"unknown_authority", fmt.Sprintf("client at %s%s presented a certificate%s, which no CA in -%s=%s signed", peer, who, issuer, serverFlag(s.prefix, "ca-path"), s.cfg.CAPath), slog.LevelWarn, ""}
	case errors.As(cve.Err, &inv) && inv.Reason == x509.Expired:
		return failure{"expired_certificate", fmt.Sprintf("client at %s%s presented a certificate outside its validity period: %s", peer, who, cve.Err), slog.LevelWarn, ""}
	default:
		return failure{"bad_certificate", fmt.Sprintf("client at %s%s presented a certificate that failed verification: %s", peer, who, cve.Err), slog.LevelWarn, ""}
	}
}

func looksLikeHTTP(hdr string) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "DELET", "OPTIO", "PATCH", "CONNE", "PRI *"} {
		if hdr == m {
			return true
		}
	}
	return false
}
