package cortex

import (
	"testing"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

func TestIngesterClientTLSFollowsServerInProcess(t *testing.T) {
	server := tlsconfig.ServerConfig{CertPath: "certs/server.crt", KeyPath: "certs/server.key", CAPath: "certs/root.crt", ClientAuth: "RequireAndVerifyClientCert"}
	own := tlsconfig.ClientConfig{CertPath: "certs/client.crt", KeyPath: "certs/client.key", CAPath: "certs/ca.crt"}
	for _, tc := range []struct {
		name      string
		target    []string
		server    tlsconfig.ServerConfig
		client    tlsconfig.ClientConfig
		want      tlsconfig.ClientConfig
		inherited bool
	}{
		{"all, server TLS with a CA, no client flags", []string{All}, server, tlsconfig.ClientConfig{},
			tlsconfig.ClientConfig{CertPath: "certs/server.crt", KeyPath: "certs/server.key", CAPath: "certs/root.crt"}, true},
		{"distributor and ingester in one process", []string{Distributor, Ingester}, server, tlsconfig.ClientConfig{},
			tlsconfig.ClientConfig{CertPath: "certs/server.crt", KeyPath: "certs/server.key", CAPath: "certs/root.crt"}, true},
		{"own client flags win", []string{All}, server, own, own, false},
		{"-ingester.client.tls-enabled alone wins", []string{All}, server, tlsconfig.ClientConfig{Enabled: true}, tlsconfig.ClientConfig{Enabled: true}, false},
		{"no ingester in the process", []string{Distributor}, server, tlsconfig.ClientConfig{}, tlsconfig.ClientConfig{}, false},
		{"server without a CA", []string{All}, tlsconfig.ServerConfig{CertPath: "certs/server.crt", KeyPath: "certs/server.key"}, tlsconfig.ClientConfig{}, tlsconfig.ClientConfig{}, false},
		{"plaintext server", []string{All}, tlsconfig.ServerConfig{}, tlsconfig.ClientConfig{}, tlsconfig.ClientConfig{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cortex{}
			c.Cfg.Target = tc.target
			c.Cfg.Server.GRPCTLS = tc.server
			c.Cfg.IngesterClient.TLS = tc.client
			got, inherited := c.ingesterClientTLS()
			if got != tc.want || inherited != tc.inherited {
				t.Fatalf("got %+v, %v; want %+v, %v", got, inherited, tc.want, tc.inherited)
			}
			if inherited && c.Cfg.IngesterClient.TLS != tc.client {
				t.Fatalf("the fallback changed the configuration: %+v", c.Cfg.IngesterClient.TLS)
			}
		})
	}
}
