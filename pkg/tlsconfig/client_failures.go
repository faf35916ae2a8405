package tlsconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ClientError is a failed TLS connection worded for the operator.
type ClientError struct {
	Message string
	Err     error
}

func (e *ClientError) Error() string { return e.Message }
func (e *ClientError) Unwrap() error { return e.Err }

// explain words a handshake or post-handshake alert in terms of the flags
// that fix it. Under TLS 1.3 the server refuses a client certificate after
// the client's handshake has finished, so reads explain alerts too.
func (c *Client) explain(addr string, err error) error {
	var sce *ServerCertError
	if errors.As(err, &sce) {
		return &ClientError{Err: err, Message: fmt.Sprintf("-%s: TLS connection to %s refused: %s", c.prefix, addr, sce.Message)}
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return &ClientError{Err: err, Message: fmt.Sprintf("-%s: server at %s does not speak TLS (it answered in plaintext); enable TLS on that server (-server.*-tls-cert-path) or drop the -%s.tls-* flags", c.prefix, addr, c.prefix)}
	}
	msg := err.Error()
	cert := "no client certificate (-" + c.prefix + ".tls-cert-path is empty)"
	if c.keyPair != nil {
		cert = fmt.Sprintf("the client certificate -%s.tls-cert-path=%s", c.prefix, c.cfg.CertPath)
	}
	switch {
	case strings.Contains(msg, "certificate required"), c.keyPair == nil && strings.Contains(msg, "remote error: tls: handshake failure"):
		return &ClientError{Err: err, Message: fmt.Sprintf("-%s: server at %s requires a client certificate; set -%s.tls-cert-path and -%s.tls-key-path", c.prefix, addr, c.prefix, c.prefix)}
	case strings.Contains(msg, "remote error: tls: unknown certificate authority"):
		return &ClientError{Err: err, Message: fmt.Sprintf("-%s: server at %s does not trust %s: its -server.*-tls-ca-path must hold the CA that signed it", c.prefix, addr, cert)}
	case strings.Contains(msg, "remote error: tls: expired certificate"):
		return &ClientError{Err: err, Message: fmt.Sprintf("-%s: server at %s refused %s as expired or not yet valid; issue a new one", c.prefix, addr, cert)}
	case strings.Contains(msg, "remote error: tls: bad certificate"):
		return &ClientError{Err: err, Message: fmt.Sprintf("-%s: server at %s refused %s: its names may be missing from the server's -server.*-tls-allowed-client-names, or the certificate lacks the clientAuth extended key usage", c.prefix, addr, cert)}
	case strings.Contains(msg, "remote error"):
		return &ClientError{Err: err, Message: fmt.Sprintf("-%s: server at %s ended the TLS handshake: %s", c.prefix, addr, msg)}
	}
	return err
}

// explainedConn rewords TLS alerts that arrive after the handshake.
type explainedConn struct {
	*tls.Conn
	c    *Client
	addr string
}

func (e *explainedConn) Read(b []byte) (int, error) {
	n, err := e.Conn.Read(b)
	if err != nil && strings.Contains(err.Error(), "remote error") {
		err = e.c.explain(e.addr, err)
	}
	return n, err
}

// Write explains a write that failed because the server refused the
// client's certificate after a TLS 1.3 handshake and closed the
// connection: the reason is the alert it sent, still waiting to be read.
func (e *explainedConn) Write(b []byte) (int, error) {
	n, err := e.Conn.Write(b)
	if err == nil || strings.Contains(err.Error(), "remote error") {
		if err != nil {
			err = e.c.explain(e.addr, err)
		}
		return n, err
	}
	_ = e.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, rerr := e.Conn.Read(make([]byte, 1)); rerr != nil && strings.Contains(rerr.Error(), "remote error") {
		return n, e.c.explain(e.addr, rerr)
	}
	return n, err
}
