package gossip

import (
	"fmt"

	dskitml "github.com/grafana/dskit/kv/memberlist"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// TLSConfig is the TLS of the gossip links. Every member is both a server
// (its gossip port) and a client (it dials the others), so both halves are
// needed, usually filled from the same -memberlist.tls-* files.
type TLSConfig struct {
	Client tlsconfig.ClientConfig
	Server tlsconfig.ServerConfig
}

// flagPrefix names the gossip flags in messages and TLS metrics.
const flagPrefix = "memberlist"

// TLSConfigFromFlags maps dskit's -memberlist.tls-* flags onto both halves:
// the member dials with them and serves its gossip port with the same key
// pair. With -memberlist.tls-ca-path the port requires client certificates
// signed by that CA (RequireAndVerifyClientCert); without it, it asks none.
// The Common Name fallback is on, as for the project's other links, so the
// guide's certificates without subjectAltName work when dialled as
// 127.0.0.1 or as -memberlist.tls-server-name.
func TLSConfigFromFlags(t dskitml.TCPTransportConfig) TLSConfig {
	client := tlsconfig.ClientConfig{
		Enabled:            t.TLSEnabled,
		CertPath:           t.TLS.CertPath,
		KeyPath:            t.TLS.KeyPath,
		CAPath:             t.TLS.CAPath,
		ServerName:         t.TLS.ServerName,
		InsecureSkipVerify: t.TLS.InsecureSkipVerify,
		MinVersion:         t.TLS.MinVersion,
		CipherSuites:       t.TLS.CipherSuites,
		CommonNameFallback: true,
	}
	var server tlsconfig.ServerConfig
	if client.TLSOn() {
		// An empty client auth mode means RequireAndVerifyClientCert when a CA is given.
		server = tlsconfig.ServerConfig{CertPath: t.TLS.CertPath, KeyPath: t.TLS.KeyPath, CAPath: t.TLS.CAPath}
	}
	return TLSConfig{Client: client, Server: server}
}

// newTLS builds both halves, or neither: a member with only one would either
// dial plaintext to TLS peers or refuse every plaintext peer.
func newTLS(cfg TLSConfig, loader *tlsconfig.Loader) (*tlsconfig.Client, *tlsconfig.Server, error) {
	clientOn, serverOn := cfg.Client.TLSOn(), cfg.Server.CertPath != "" || cfg.Server.KeyPath != ""
	switch {
	case !clientOn && !serverOn:
		return nil, nil, nil
	case !serverOn:
		return nil, nil, fmt.Errorf("gossip TLS is on (-%s.tls-* flags) but the gossip listener has no certificate: set -%s.tls-cert-path and -%s.tls-key-path, every member serves as well as dials", flagPrefix, flagPrefix, flagPrefix)
	case !clientOn:
		return nil, nil, fmt.Errorf("the gossip listener has a certificate but gossip clients would dial in plaintext: set -%s.tls-enabled=true or -%s.tls-ca-path", flagPrefix, flagPrefix)
	}
	// The client is built first: its errors name the real -memberlist.tls-* flags.
	client, err := tlsconfig.NewClient(flagPrefix, cfg.Client, loader)
	if err != nil {
		return nil, nil, err
	}
	opts := tlsconfig.ServerOptions{MinVersion: cfg.Client.MinVersion, CipherSuites: cfg.Client.CipherSuites}
	server, err := tlsconfig.NewServer("memberlist", flagPrefix+".", cfg.Server, opts, loader)
	if err != nil {
		return nil, nil, fmt.Errorf("gossip listener: %w", err)
	}
	return client, server, nil
}
