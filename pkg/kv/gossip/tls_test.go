package gossip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// probe connects to a gossip port as a raw TLS client, sends the first byte
// of a stream, and reads: a refused client certificate shows up as an error
// there (TLS 1.3 refuses it after the client's handshake has completed).
func probe(addr string, roots *x509.CertPool, cert *certgen.Pair) (*x509.Certificate, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{alpnProtocol}}
	if cert != nil {
		// Sent whatever CAs the server asks for, as our gossip client does.
		c := cert.TLSCertificate()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write([]byte{kindStream}); err != nil {
		return nil, err
	}
	// A healthy stream gets no reply until it sends a memberlist message:
	// a short read deadline tells "accepted" (timeout) from "refused".
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return nil, err
		}
	}
	return conn.ConnectionState().PeerCertificates[0], nil
}

func pool(cas ...*certgen.Pair) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

func TestGossipPortRefusesClientsWithoutTrustedCertificate(t *testing.T) {
	ca := testkit.NewPKI(t, "gossip-ca")
	cert, key := ca.Server(t, "a").Files()
	a := startNode(t, "a", nodeOptions{tls: mutualTLS(ca.CAPath, cert, key)})

	good := ca.Server(t, "probe").Pair
	if _, err := probe(a.addr(), pool(ca.CA), good); err != nil {
		t.Fatalf("a client with a certificate from the gossip CA was refused: %v", err)
	}

	for range 2 { // twice: the refusal is logged once
		_, err := probe(a.addr(), pool(ca.CA), nil)
		if err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Fatalf("a client without a certificate: got %v, want a \"certificate required\" refusal", err)
		}
	}

	foreign := testkit.NewPKI(t, "foreign-ca")
	intruder := foreign.Server(t, "intruder").Pair
	_, err := probe(a.addr(), pool(ca.CA), intruder)
	if err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Fatalf("a client with a foreign CA's certificate: got %v, want an \"unknown certificate authority\" refusal", err)
	}

	// The server counts and logs a refusal just after sending its alert.
	testkit.EventuallyNil(t, waitTimeout, "both refusals counted and logged with their cause", func() error {
		failures := testkit.MetricValues(t, a.reg, "cortex_tls_handshake_failures_total")
		for _, reason := range []string{"no_client_certificate", "unknown_authority"} {
			if failures["reason="+reason+",server=memberlist"] < 1 {
				return errors.New("cortex_tls_handshake_failures_total{server=memberlist,reason=" + reason + "} not counted")
			}
		}
		if !strings.Contains(a.logs.String(), "which no CA in -memberlist.tls-ca-path="+ca.CAPath+" signed") {
			return errors.New("the foreign certificate's refusal is not logged with its cause")
		}
		return nil
	})
	if n := strings.Count(a.logs.String(), "presented no certificate; this server requires one (-memberlist.tls-ca-path is set)"); n != 1 {
		t.Errorf("the refusal of the client without a certificate was logged %d times naming -memberlist.tls-ca-path, want once:\n%s", n, a.logs.String())
	}
	if got := a.kv.Members(); len(got) != 1 {
		t.Errorf("a's members = %v, want itself only", got)
	}
}

func TestMemberWithForeignCertificateCannotJoin(t *testing.T) {
	ca := testkit.NewPKI(t, "gossip-ca")
	cert, key := ca.Server(t, "a").Files()
	a := startNode(t, "a", nodeOptions{tls: mutualTLS(ca.CAPath, cert, key)})

	foreign := testkit.NewPKI(t, "foreign-ca")
	fcert, fkey := foreign.Server(t, "intruder").Files()

	// Trusting both CAs lets the intruder accept a's certificate, so the
	// refusal it meets is a's refusing its client certificate.
	bothCAs := filepath.Join(t.TempDir(), "both.crt")
	testkit.WriteFile(t, bothCAs, append(append([]byte(nil), ca.CA.CertPEM...), foreign.CA.CertPEM...), 0o644)

	for _, tc := range []struct {
		name   string
		caPath string
		want   string
	}{
		{"trusts only its own CA", foreign.CAPath, "is not signed by a CA in -memberlist.tls-ca-path=" + foreign.CAPath},
		{"trusts the gossip CA too", bothCAs, "does not trust the client certificate -memberlist.tls-cert-path=" + fcert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newNode(t, "intruder", nodeOptions{tls: mutualTLS(tc.caPath, fcert, fkey), join: []string{a.addr()}, abortIfJoinFails: true,
				configure: func(cfg *dskitConfig) { cfg.MaxJoinRetries = 2 }})
			err := x.start(t)
			if err == nil {
				t.Fatalf("the member with a foreign certificate joined; a sees %v", a.kv.Members())
			}
			if x.kv.Service().State() != services.Failed {
				t.Errorf("service state %s, want Failed", x.kv.Service().State())
			}
			msg := err.Error()
			if cause := x.kv.Service().FailureCase(); cause != nil {
				msg = cause.Error()
			}
			for _, want := range []string{"-memberlist.abort-if-join-fails", tc.want} {
				if !strings.Contains(msg, want) {
					t.Errorf("start error does not name the cause %q:\n%s", want, msg)
				}
			}
			if got := a.kv.Members(); len(got) != 1 {
				t.Errorf("a's members = %v, want itself only", got)
			}
		})
	}
}

func TestCertificateRotation(t *testing.T) {
	ca := testkit.NewPKI(t, "gossip-ca")
	oldA := ca.Server(t, "a")
	certA, keyA := oldA.Files()
	certB, keyB := ca.Server(t, "b").Files()
	a := startNode(t, "a", nodeOptions{tls: mutualTLS(ca.CAPath, certA, keyA)})
	b := startNode(t, "b", nodeOptions{tls: mutualTLS(ca.CAPath, certB, keyB), join: []string{a.addr()}})
	waitMembers(t, 2, a, b)

	prober := ca.Server(t, "probe").Pair
	seen, err := probe(a.addr(), pool(ca.CA), prober)
	if err != nil {
		t.Fatal(err)
	}
	if !seen.Equal(oldA.Cert) {
		t.Fatal("a does not present its certificate before rotation")
	}

	// Rotate both members' files in place, as cert-manager would, and reload.
	newA := ca.Server(t, "a").Pair
	ca.Server(t, "b")
	a.loader.Reload()
	b.loader.Reload()

	seen, err = probe(a.addr(), pool(ca.CA), prober)
	if err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if !seen.Equal(newA.Cert) {
		t.Fatalf("after rotation a presents serial %s, want the new certificate's %s", seen.SerialNumber, newA.Cert.SerialNumber)
	}
	reloads := testkit.MetricValues(t, a.reg, "cortex_tls_reloads_total")
	if reloads["flag=memberlist.tls-cert-path,path="+certA] < 1 {
		t.Errorf("a's client certificate was not reloaded: %v", reloads)
	}

	// Gossip goes on, and a member that joins now handshakes with the new certificates.
	b.cas(t, addIngester("after-rotation"))
	waitIngesters(t, []string{"after-rotation"}, a, b)
	certC, keyC := ca.Server(t, "c").Files()
	c := startNode(t, "c", nodeOptions{tls: mutualTLS(ca.CAPath, certC, keyC), join: []string{b.addr()}})
	waitMembers(t, 3, a, b, c)
	c.cas(t, addIngester("from-c"))
	waitIngesters(t, []string{"after-rotation", "from-c"}, a, b, c)
}

func TestTLSConfigurationErrorsNameTheFlag(t *testing.T) {
	ca := testkit.NewPKI(t, "gossip-ca")
	cert, key := ca.Server(t, "a").Files()
	missing := filepath.Join(t.TempDir(), "missing.crt")
	for _, tc := range []struct {
		name string
		tls  TLSConfig
		want string
	}{
		{"listener certificate without client TLS", TLSConfig{Server: tlsconfig.ServerConfig{CertPath: cert, KeyPath: key}},
			"set -memberlist.tls-enabled=true or -memberlist.tls-ca-path"},
		{"client TLS without listener certificate", TLSConfig{Client: tlsconfig.ClientConfig{CAPath: ca.CAPath}},
			"set -memberlist.tls-cert-path and -memberlist.tls-key-path"},
		{"unreadable certificate", *mutualTLS(ca.CAPath, missing, key), "-memberlist.tls-cert-path"},
		{"bad minimum version", TLSConfig{
			Client: tlsconfig.ClientConfig{CertPath: cert, KeyPath: key, CAPath: ca.CAPath, MinVersion: "TLS1.2"},
			Server: tlsconfig.ServerConfig{CertPath: cert, KeyPath: key, CAPath: ca.CAPath},
		}, "-memberlist.tls-min-version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(testConfig("a", nil), tc.tls, newLoader(), discardLogger(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestFlagsMapping(t *testing.T) {
	got := *fromFlags("ca.crt", "m.crt", "m.key")
	if got.Server.CAPath != "ca.crt" || got.Server.CertPath != "m.crt" || got.Server.KeyPath != "m.key" || got.Server.ClientAuth != "" {
		t.Errorf("server half = %+v, want the member's key pair and CA, client auth left to its default (RequireAndVerifyClientCert with a CA)", got.Server)
	}
	if got.Client.CAPath != "ca.crt" || got.Client.CertPath != "m.crt" || !got.Client.TLSOn() || !got.Client.CommonNameFallback {
		t.Errorf("client half = %+v", got.Client)
	}
	if off := TLSConfigFromFlags(dskitConfig{}.TCPTransport); off.Client.TLSOn() || off.Server.CertPath != "" {
		t.Errorf("no -memberlist.tls-* flags gave %+v, want plaintext", off)
	}
}

func TestListenerWithoutClientVerificationWarns(t *testing.T) {
	ca := testkit.NewPKI(t, "gossip-ca")
	cert, key := ca.Server(t, "a").Files()
	n := newNode(t, "a", nodeOptions{tls: &TLSConfig{
		Client: tlsconfig.ClientConfig{CertPath: cert, KeyPath: key, CAPath: ca.CAPath},
		Server: tlsconfig.ServerConfig{CertPath: cert, KeyPath: key},
	}})
	if !strings.Contains(n.logs.String(), "does not require verified client certificates") {
		t.Errorf("no warning about the unauthenticated gossip port:\n%s", n.logs.String())
	}
}

func TestNewRejectsUnregisteredFlags(t *testing.T) {
	_, err := New(dskitConfig{}, TLSConfig{}, newLoader(), discardLogger(), nil)
	if err == nil || !strings.Contains(err.Error(), "-memberlist") {
		t.Fatalf("New with a zero config: got %v, want an error naming the memberlist flags", err)
	}
}

func TestStopWithoutStart(t *testing.T) {
	n := newNode(t, "a", nodeOptions{})
	s := n.kv.Service()
	s.StopAsync()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.AwaitTerminated(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFlagsOfDskitsTransport: flags that only tune dskit's transport are
// reported when set, and -memberlist.abort-if-fast-join-fails stops
// startup like -memberlist.abort-if-join-fails, since the join happens
// before the ring's users start.
func TestFlagsOfDskitsTransport(t *testing.T) {
	n := newNode(t, "a", nodeOptions{configure: func(cfg *Config) { cfg.TCPTransport.MaxConcurrentWrites = 7 }})
	if !strings.Contains(n.logs.String(), "-memberlist.max-concurrent-writes has no effect") {
		t.Errorf("no warning for -memberlist.max-concurrent-writes:\n%s", n.logs.String())
	}
	if strings.Contains(n.logs.String(), "-memberlist.notify-interval") {
		t.Errorf("warned about a flag left at its default:\n%s", n.logs.String())
	}

	unreachable := newNode(t, "b", nodeOptions{join: []string{"127.0.0.1:1"}, configure: func(cfg *Config) { cfg.AbortIfFastJoinFails = true }})
	if err := unreachable.start(t); err == nil || !strings.Contains(unreachable.kv.Service().FailureCase().Error(), "-memberlist.abort-if-fast-join-fails") {
		t.Fatalf("start with an unreachable join address: got %v (%v), want a failure naming -memberlist.abort-if-fast-join-fails", err, unreachable.kv.Service().FailureCase())
	}
}
