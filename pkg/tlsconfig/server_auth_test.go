package tlsconfig

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// clientVariant is one kind of client presenting itself to a server.
type clientVariant string

const (
	noCert     clientVariant = "no-cert"
	validCert  clientVariant = "valid"
	foreignCA  clientVariant = "foreign-ca"
	expired    clientVariant = "expired"
	notAllowed clientVariant = "not-allowed"
)

// authPKI holds every certificate of the client-auth table.
type authPKI struct {
	dir                   string
	caPath                string
	serverCert, serverKey string
	clientCerts           map[clientVariant][2]string
	clientSerials         map[clientVariant]string
}

func newAuthPKI(t *testing.T) *authPKI {
	dir := t.TempDir()
	ca := testkit.NewCA(t, "cortex test CA")
	foreign := testkit.NewCA(t, "foreign CA")
	p := &authPKI{dir: dir, clientCerts: map[clientVariant][2]string{}, clientSerials: map[clientVariant]string{"no-cert": "none"}}
	p.caPath = testkit.WriteBundle(t, dir, "ca.crt", ca)
	p.serverCert, p.serverKey = testkit.WritePair(t, dir, "server", testkit.ServerLeaf(t, ca, "server"))
	now := time.Now()
	leaves := map[clientVariant]*certgen.Pair{
		validCert:  testkit.ClientLeaf(t, ca, "distributor"),
		foreignCA:  testkit.ClientLeaf(t, foreign, "distributor"),
		expired:    testkit.Issue(t, ca, certgen.Options{CommonName: "distributor", DNSNames: []string{"distributor"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}),
		notAllowed: testkit.ClientLeaf(t, ca, "querier"),
	}
	for v, leaf := range leaves {
		c, k := testkit.WritePair(t, dir, string(v), leaf)
		p.clientCerts[v] = [2]string{c, k}
		p.clientSerials[v] = serialOf(leaf.Cert)
	}
	return p
}

// clientConfig is the configuration of a client of the given variant. The
// client's own files load fine even when expired: the Loader refuses expired
// certificates, so the expired one is loaded with a clock set in its past.
func (p *authPKI) client(t *testing.T, v clientVariant) *Client {
	t.Helper()
	env := newTestEnv(t)
	cfg := ClientConfig{CAPath: p.caPath}
	if v != noCert {
		cfg.CertPath, cfg.KeyPath = p.clientCerts[v][0], p.clientCerts[v][1]
	}
	if v == expired {
		env.loader.now = func() time.Time { return time.Now().Add(-36 * time.Hour) }
	}
	c, err := NewClient("test.client", cfg, env.loader)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	env.loader.now = time.Now
	return c
}

var allModes = []string{"NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}

func verifies(mode string) bool {
	return mode == "VerifyClientCertIfGiven" || mode == "RequireAndVerifyClientCert"
}

// refusal is the server metric reason expected for a mode and a client, or
// "" when the client must be served.
func refusal(mode string, v clientVariant) string {
	if (mode == "RequireAnyClientCert" || mode == "RequireAndVerifyClientCert") && v == noCert {
		return "no_client_certificate"
	}
	if !verifies(mode) {
		return ""
	}
	switch v {
	case foreignCA:
		return "unknown_authority"
	case expired:
		return "expired_certificate"
	case notAllowed:
		return "name_not_allowed"
	}
	return ""
}

// clientMessage is what the client's error must say for each refusal reason.
var clientMessage = map[string]string{
	"no_client_certificate": "requires a client certificate",
	"unknown_authority":     "does not trust",
	"expired_certificate":   "expired",
	"name_not_allowed":      "allowed-client-names",
}

func TestClientAuthModes(t *testing.T) {
	p := newAuthPKI(t)
	variants := []clientVariant{noCert, validCert, foreignCA, expired, notAllowed}
	versions := []struct {
		name string
		max  uint16
	}{{"TLS1.3", 0}, {"TLS1.2", tls.VersionTLS12}}
	for _, proto := range []string{"http", "grpc"} {
		for _, version := range versions {
			for _, mode := range allModes {
				for _, v := range variants {
					t.Run(fmt.Sprintf("%s/%s/%s/%s", proto, version.name, mode, v), func(t *testing.T) {
						t.Parallel()
						testClientAuth(t, p, proto, version.max, mode, v)
					})
				}
			}
		}
	}
}

func testClientAuth(t *testing.T, p *authPKI, proto string, maxVersion uint16, mode string, v clientVariant) {
	env := newTestEnv(t)
	prefix := "server." + proto
	cfg := ServerConfig{CertPath: p.serverCert, KeyPath: p.serverKey, ClientAuth: mode}
	if verifies(mode) {
		cfg.CAPath = p.caPath
	}
	if v == notAllowed {
		cfg.AllowedClientNames = []string{"distributor"}
	}
	srv, err := NewServer(proto, prefix, cfg, ServerOptions{}, env.loader)
	if v == notAllowed && !verifies(mode) {
		if err == nil {
			t.Fatalf("NewServer accepted -%s-tls-allowed-client-names with %s, which never verifies certificates", prefix, mode)
		}
		mustContain(t, "NewServer error", err.Error(), "-"+prefix+"-tls-allowed-client-names", mode, "RequireAndVerifyClientCert")
		return
	}
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}

	client := p.client(t, v)
	client.maxVersion = maxVersion
	var addr, seen string
	if proto == "http" {
		addr = startHTTPServer(t, srv)
		seen, err = httpGet(client, addr)
	} else {
		addr = startGRPCServer(t, srv)
		seen, err = grpcCheck(client, addr)
	}

	want := refusal(mode, v)
	if want == "" {
		if err != nil {
			t.Fatalf("request refused, want served: %v", err)
		}
		wantSeen := p.clientSerials[v]
		if mode == "NoClientCert" {
			wantSeen = "none" // the server never asks for a certificate
		}
		if seen != wantSeen {
			t.Errorf("server saw client certificate %s, want %s", seen, wantSeen)
		}
		if f := handshakeFailures(t, env.reg, proto); len(f) != 0 {
			t.Errorf("handshake failures = %v, want none", f)
		}
		return
	}

	if err == nil {
		t.Fatalf("request served (client certificate %s), want refused with reason %s", seen, want)
	}
	mustContain(t, "client error", err.Error(), clientMessage[want], "-test.client")
	if want == "no_client_certificate" {
		mustContain(t, "client error", err.Error(), "-test.client.tls-cert-path")
	}
	// The server counts the failure after it has sent the alert the client read.
	testkit.Eventually(t, waitTimeout, "the handshake failure metric", func() bool { return handshakeFailures(t, env.reg, proto)[want] >= 1 })
	f := handshakeFailures(t, env.reg, proto)
	if len(f) != 1 || (proto == "http" && f[want] != 1) {
		t.Errorf("handshake failures = %v, want only %s (once over HTTP)", f, want)
	}
	// The server explains the refusal in its log, naming the flag to change.
	logFlag := map[string]string{
		"no_client_certificate": "-" + prefix + "-tls-client-auth=" + mode,
		"unknown_authority":     "-" + prefix + "-tls-ca-path=" + p.caPath,
		"expired_certificate":   "validity period",
		"name_not_allowed":      "-" + prefix + "-tls-allowed-client-names=distributor",
	}[want]
	testkit.Eventually(t, waitTimeout, "the server's log line", func() bool { return containsAll(env.logs.String(), "TLS handshake refused", "reason="+want) })
	mustContain(t, "server log", env.logs.String(), logFlag)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
