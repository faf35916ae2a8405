package tlsconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Loader loads every certificate, key and CA bundle the process uses,
// validates them with errors that name the flag, reloads them when their files
// change, and exports their expiry times and reload counts as metrics.
// Servers and clients read the current material on each handshake, so a
// reload needs no restart and breaks no established connection.
type Loader struct {
	logger  *slog.Logger
	metrics *Metrics
	now     func() time.Time

	mu      sync.Mutex
	sources []source
	warned  map[string]time.Time // expiry warnings given, by flag and serial
}

type source interface {
	// reload re-reads the files if they changed.
	reload()
	// certificates returns what is in use now, for the expiry metric.
	certificates() (flag, path string, certs []*x509.Certificate)
}

// NewLoader returns a Loader; its metrics go to reg (nil for none).
func NewLoader(logger *slog.Logger, reg prometheus.Registerer) *Loader {
	l := &Loader{logger: logger, now: time.Now, warned: map[string]time.Time{}}
	l.metrics = newMetrics(reg)
	if reg != nil {
		reg.MustRegister(expiryCollector{l})
	}
	return l
}

// Metrics returns the TLS metrics shared by servers and clients.
func (l *Loader) Metrics() *Metrics { return l.metrics }

// Run reloads changed files every interval until ctx ends.
func (l *Loader) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Reload()
		}
	}
}

// Reload re-reads every file that changed since it was last read.
func (l *Loader) Reload() {
	l.mu.Lock()
	sources := append([]source(nil), l.sources...)
	l.mu.Unlock()
	for _, s := range sources {
		s.reload()
		flag, path, certs := s.certificates()
		for _, c := range certs {
			l.warnExpiry(flag, path, c)
		}
	}
}

func (l *Loader) add(s source) {
	l.mu.Lock()
	l.sources = append(l.sources, s)
	l.mu.Unlock()
}

// KeyPair is a certificate and key kept up to date with their files.
type KeyPair struct {
	l                 *Loader
	certFlag, keyFlag string
	certPath, keyPath string
	current           atomic.Pointer[tls.Certificate]

	mu                   sync.Mutex // serialises reloads
	lastCert, lastKey    []byte     // contents last tried, good or bad
	reloads, reloadFails prometheus.Counter
}

// KeyPair loads and validates a certificate and key. Errors name the flag and
// the path and say how to fix them; warnings (key permissions, near expiry)
// are logged.
func (l *Loader) KeyPair(certFlag, certPath, keyFlag, keyPath string) (*KeyPair, error) {
	switch {
	case certPath == "" && keyPath == "":
		return nil, fmt.Errorf("-%s and -%s are empty: give both", certFlag, keyFlag)
	case certPath == "":
		return nil, fmt.Errorf("-%s is set but -%s is empty: give the certificate that goes with the key", keyFlag, certFlag)
	case keyPath == "":
		return nil, fmt.Errorf("-%s is set but -%s is empty: give the private key that goes with the certificate", certFlag, keyFlag)
	}
	pair, err := loadKeyPair(certFlag, certPath, keyFlag, keyPath, l.now())
	if err != nil {
		return nil, err
	}
	kp := &KeyPair{
		l: l, certFlag: certFlag, keyFlag: keyFlag, certPath: certPath, keyPath: keyPath,
		reloads:     l.metrics.reloads.WithLabelValues(certFlag, certPath),
		reloadFails: l.metrics.reloadFailures.WithLabelValues(certFlag, certPath),
	}
	kp.lastCert, _ = os.ReadFile(certPath)
	kp.lastKey, _ = os.ReadFile(keyPath)
	kp.current.Store(pair)
	if p := keyPermissionProblem(keyFlag, keyPath); p != nil {
		l.logger.Warn(p.Error(), "flag", keyFlag, "path", keyPath)
	}
	l.warnExpiry(certFlag, certPath, pair.Leaf)
	l.add(kp)
	return kp, nil
}

// Certificate returns the certificate in use now.
func (kp *KeyPair) Certificate() *tls.Certificate { return kp.current.Load() }

func (kp *KeyPair) certificates() (string, string, []*x509.Certificate) {
	return kp.certFlag, kp.certPath, []*x509.Certificate{kp.current.Load().Leaf}
}

func (kp *KeyPair) reload() {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	// Unreadable files read as nil, so a missing file is reported once, not on every pass.
	certPEM, _ := os.ReadFile(kp.certPath)
	keyPEM, _ := os.ReadFile(kp.keyPath)
	if bytes.Equal(certPEM, kp.lastCert) && bytes.Equal(keyPEM, kp.lastKey) {
		return
	}
	pair, err := loadKeyPair(kp.certFlag, kp.certPath, kp.keyFlag, kp.keyPath, kp.l.now())
	if err != nil {
		// A rotation that writes the certificate and the key one after the
		// other is briefly inconsistent: look again before calling it bad.
		time.Sleep(200 * time.Millisecond)
		certPEM, _ = os.ReadFile(kp.certPath)
		keyPEM, _ = os.ReadFile(kp.keyPath)
		pair, err = loadKeyPair(kp.certFlag, kp.certPath, kp.keyFlag, kp.keyPath, kp.l.now())
	}
	kp.lastCert, kp.lastKey = certPEM, keyPEM
	if err != nil {
		kp.reloadFails.Inc()
		old := kp.current.Load().Leaf
		kp.l.logger.Error("TLS reload failed, keeping the last good certificate", "err", err,
			"flag", kp.certFlag, "path", kp.certPath, "kept_expiry", old.NotAfter)
		return
	}
	kp.current.Store(pair)
	kp.reloads.Inc()
	kp.l.logger.Info("TLS certificate reloaded", "flag", kp.certFlag, "path", kp.certPath,
		"subject", pair.Leaf.Subject.String(), "expiry", pair.Leaf.NotAfter)
	kp.l.warnExpiry(kp.certFlag, kp.certPath, pair.Leaf)
}

// CAPool is a bundle of trusted CA certificates kept up to date with its file.
type CAPool struct {
	l                    *Loader
	flag, path           string
	current              atomic.Pointer[caSnapshot]
	mu                   sync.Mutex
	last                 []byte
	reloads, reloadFails prometheus.Counter
}

type caSnapshot struct {
	pool  *x509.CertPool
	certs []*x509.Certificate
}

// CAPool loads and validates a CA bundle.
func (l *Loader) CAPool(flag, path string) (*CAPool, error) {
	pool, certs, err := loadCAPool(flag, path, l.now())
	if err != nil {
		return nil, err
	}
	p := &CAPool{
		l: l, flag: flag, path: path,
		reloads:     l.metrics.reloads.WithLabelValues(flag, path),
		reloadFails: l.metrics.reloadFailures.WithLabelValues(flag, path),
	}
	p.last, _ = os.ReadFile(path)
	p.current.Store(&caSnapshot{pool: pool, certs: certs})
	for _, c := range certs {
		l.warnExpiry(flag, path, c)
	}
	l.add(p)
	return p, nil
}

// Pool returns the trusted certificates in use now.
func (p *CAPool) Pool() *x509.CertPool { return p.current.Load().pool }

// Flag returns the flag that named this bundle, for messages.
func (p *CAPool) Flag() string { return p.flag }

// Path returns the bundle's file.
func (p *CAPool) Path() string { return p.path }

func (p *CAPool) certificates() (string, string, []*x509.Certificate) {
	return p.flag, p.path, p.current.Load().certs
}

func (p *CAPool) reload() {
	p.mu.Lock()
	defer p.mu.Unlock()
	data, _ := os.ReadFile(p.path)
	if bytes.Equal(data, p.last) {
		return
	}
	p.last = data
	pool, certs, err := loadCAPool(p.flag, p.path, p.l.now())
	if err != nil {
		p.reloadFails.Inc()
		p.l.logger.Error("TLS reload failed, keeping the last good CA bundle", "err", err, "flag", p.flag, "path", p.path)
		return
	}
	p.current.Store(&caSnapshot{pool: pool, certs: certs})
	p.reloads.Inc()
	p.l.logger.Info("TLS CA bundle reloaded", "flag", p.flag, "path", p.path, "certificates", len(certs))
	for _, c := range certs {
		p.l.warnExpiry(p.flag, p.path, c)
	}
}
