package cortex

import (
	"crypto/tls"
	"strings"

	"github.com/grafana/dskit/kv/memberlist"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// memberlistTLSPrefix is the flag prefix of the gossip link's TLS flags.
const memberlistTLSPrefix = "memberlist"

// applyMemberlistTLS holds the gossip link to the rules of every other link:
// any -memberlist.tls-* path turns TLS on (dskit alone would gossip in
// plaintext unless -memberlist.tls-enabled is also set), the files are checked
// at startup with errors naming the flag, and the defaults are TLS 1.2 with
// ECDHE and AEAD suites only. dskit's transport then reads the files itself.
func applyMemberlistTLS(tr *memberlist.TCPTransportConfig, l *tlsconfig.Loader) error {
	cfg := tlsconfig.ClientConfig{
		Enabled:            tr.TLSEnabled,
		CertPath:           tr.TLS.CertPath,
		KeyPath:            tr.TLS.KeyPath,
		CAPath:             tr.TLS.CAPath,
		ServerName:         tr.TLS.ServerName,
		InsecureSkipVerify: tr.TLS.InsecureSkipVerify,
		MinVersion:         tr.TLS.MinVersion,
		CipherSuites:       tr.TLS.CipherSuites,
	}
	if !cfg.TLSOn() {
		return nil
	}
	if cfg.MinVersion == "" {
		cfg.MinVersion = "VersionTLS12"
	}
	if _, err := tlsconfig.NewClient(memberlistTLSPrefix, cfg, l); err != nil {
		return err
	}
	ids, _, err := tlsconfig.ParseCipherSuites(memberlistTLSPrefix+".tls-cipher-suites", cfg.CipherSuites)
	if err != nil {
		return err
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = tls.CipherSuiteName(id)
	}
	tr.TLSEnabled = true
	tr.TLS.MinVersion = cfg.MinVersion
	tr.TLS.CipherSuites = strings.Join(names, ",")
	return nil
}
