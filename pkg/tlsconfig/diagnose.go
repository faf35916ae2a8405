package tlsconfig

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// PeerNames returns the identities a certificate is matched by: its DNS
// names, or its Common Name when it has none.
func PeerNames(c *x509.Certificate) []string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames
	}
	if c.Subject.CommonName != "" {
		return []string{c.Subject.CommonName}
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE)
}

// onceLogger logs a handshake failure once per peer host and reason within a
// window, so a misconfigured client retrying in a loop does not flood the log.
type onceLogger struct {
	window time.Duration
	mu     sync.Mutex
	seen   map[string]time.Time
}

// maxTracked bounds the memory a scan from many addresses can take.
const maxTracked = 4096

func newOnceLogger(window time.Duration) *onceLogger {
	return &onceLogger{window: window, seen: map[string]time.Time{}}
}

func (o *onceLogger) log(logger *slog.Logger, f failure, peer net.Addr) {
	host := peer.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	key := host + "\x00" + f.reason
	now := time.Now()
	o.mu.Lock()
	last, ok := o.seen[key]
	if ok && now.Sub(last) < o.window {
		o.mu.Unlock()
		return
	}
	if len(o.seen) >= maxTracked {
		clear(o.seen)
	}
	o.seen[key] = now
	o.mu.Unlock()
	logger.Log(context.Background(), f.level, "TLS handshake refused: "+f.message, "peer", peer.String(), "reason", f.reason)
}
