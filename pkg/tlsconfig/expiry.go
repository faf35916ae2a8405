package tlsconfig

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ExpiryWarning is how far ahead of expiry a certificate starts to be reported.
const ExpiryWarning = 30 * 24 * time.Hour

// warnExpiry logs a certificate that expired or expires soon, at most once a
// day per certificate, so a long-running process keeps reminding.
func (l *Loader) warnExpiry(flag, path string, c *x509.Certificate) {
	now := l.now()
	left := c.NotAfter.Sub(now)
	if left >= ExpiryWarning {
		return
	}
	key := flag + "\x00" + c.SerialNumber.String()
	l.mu.Lock()
	if last, ok := l.warned[key]; ok && now.Sub(last) < 24*time.Hour {
		l.mu.Unlock()
		return
	}
	l.warned[key] = now
	l.mu.Unlock()
	if left <= 0 {
		// Only a CA bundle gets here: it stays usable while one CA is valid.
		l.logger.Warn(fmt.Sprintf("-%s=%s: CA certificate %q expired on %s; remove it from the bundle",
			flag, path, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339)), "flag", flag, "path", path)
		return
	}
	if left > 0 && left < ExpiryWarning {
		l.logger.Warn(fmt.Sprintf("-%s=%s: certificate %q expires in %d days; issue a new one before %s",
			flag, path, c.Subject.CommonName, int(left.Hours()/24), c.NotAfter.UTC().Format(time.RFC3339)),
			"flag", flag, "path", path)
	}
}

// expiryCollector exports the expiry of the certificates in use, read at
// scrape time so that a dropped CA leaves no stale series behind.
type expiryCollector struct{ l *Loader }

var expiryDesc = prometheus.NewDesc("cortex_tls_certificate_expiry_timestamp_seconds",
	"Time at which a loaded TLS certificate expires, by the flag and file it came from.",
	[]string{"flag", "path", "subject", "serial"}, nil)

func (c expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	c.l.mu.Lock()
	sources := append([]source(nil), c.l.sources...)
	c.l.mu.Unlock()
	seen := map[string]bool{}
	for _, s := range sources {
		flag, path, certs := s.certificates()
		for _, cert := range certs {
			serial := cert.SerialNumber.Text(16)
			key := flag + "\x00" + path + "\x00" + cert.Subject.String() + "\x00" + serial
			if seen[key] {
				continue
			}
			seen[key] = true
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue,
				float64(cert.NotAfter.Unix()), flag, path, cert.Subject.String(), serial)
		}
	}
}
