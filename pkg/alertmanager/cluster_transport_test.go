package alertmanager

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cortex-tls/cortex/pkg/alertmanager/amcluster"
	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const clusterWait = 20 * time.Second

// testMember is one member of a gossip cluster started in the test.
type testMember struct {
	peer *amcluster.Peer
	reg  *prometheus.Registry
	logs *testkit.Buffer
}

func (m *testMember) addr() string { return m.peer.Self().Address() }

// metric returns the value of the counter or gauge name whose labels
// include labels, 0 when there is none.
func (m *testMember) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, mt := range f.GetMetric() {
			for k, v := range labels {
				if !hasLabel(mt, k, v) {
					continue metrics
				}
			}
			if c := mt.GetCounter(); c != nil {
				return c.GetValue()
			}
			return mt.GetGauge().GetValue()
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// clusterConfig is a member listening on loopback with the given files.
func clusterConfig(t *testing.T, cert, key, ca string, peers ...string) ClusterConfig {
	t.Helper()
	c := parseConfig(t).Cluster
	c.ListenAddr = "127.0.0.1:0"
	c.TLS.CertPath, c.TLS.KeyPath, c.TLS.CAPath = cert, key, ca
	c.Peers = peers
	c.PushPullInterval = time.Second
	return c
}

// startMember starts a member whose loader rereads its files every 50ms,
// as -tls.reload-interval does in the process.
func startMember(t *testing.T, cfg ClusterConfig, bounds clusterBounds) *testMember {
	t.Helper()
	m := &testMember{reg: prometheus.NewRegistry(), logs: &testkit.Buffer{}}
	logger := slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	loader := tlsconfig.NewLoader(logger, m.reg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go loader.Run(ctx, 50*time.Millisecond)
	peer, err := newClusterPeer(cfg, bounds, loader, logger, m.reg)
	if err != nil {
		t.Fatal(err)
	}
	m.peer = peer
	t.Cleanup(func() { _ = peer.Leave(time.Second) })
	return m
}

// join makes m join its -alertmanager.cluster.peers, retrying every 100ms.
func (m *testMember) join() { _ = m.peer.Join(100*time.Millisecond, time.Hour) }

func testBounds() clusterBounds {
	return clusterBounds{maxConnections: clusterMaxConnections, handshakeTimeout: clusterHandshakeTimeout}
}

// closedByServer reads conn until the server closes it; it fails the test
// when the server keeps it open for wait.
func closedByServer(t *testing.T, conn net.Conn, wait time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the cluster port kept the connection open for %s", wait)
	}
}

// stillOpen checks that the server has not closed conn.
func stillOpen(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := conn.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("the connection was closed (%v), want it still open", err)
	}
}

// A client that connects and never starts its TLS handshake is closed by
// the member once the handshake timeout has passed, and counted.
func TestClusterClosesAConnectionThatNeverHandshakes(t *testing.T) {
	pki := testkit.NewPKI(t, "cluster root")
	member := pki.Server(t, "member")
	bounds := testBounds()
	bounds.handshakeTimeout = 300 * time.Millisecond
	m := startMember(t, clusterConfig(t, member.CertPath, member.KeyPath, pki.CAPath), bounds)

	conn, err := net.Dial("tcp", m.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closedByServer(t, conn, clusterWait)
	// Closed for the handshake timeout, not for another reason.
	timeouts := map[string]string{"server": "alertmanager-cluster", "reason": "timeout"}
	testkit.Eventually(t, clusterWait, "the handshake timeout counted", func() bool {
		return m.metric(t, "cortex_tls_handshake_failures_total", timeouts) == 1
	})
}

// Connections beyond the bound are closed at once, those still in their
// handshake included; a freed slot takes a member again.
func TestClusterRefusesConnectionsBeyondTheBound(t *testing.T) {
	pki := testkit.NewPKI(t, "cluster root")
	member := pki.Server(t, "member")
	bounds := testBounds()
	bounds.maxConnections = 3
	bounds.handshakeTimeout = time.Minute // held connections stay for the test
	a := startMember(t, clusterConfig(t, member.CertPath, member.KeyPath, pki.CAPath), bounds)

	// Dialled one after the other, the member accepts them in order: the
	// first three take the slots.
	var held []net.Conn
	for range bounds.maxConnections {
		conn, err := net.Dial("tcp", a.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		held = append(held, conn)
	}
	extra, err := net.Dial("tcp", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	closedByServer(t, extra, 5*time.Second) // far below the handshake timeout
	for _, conn := range held {
		stillOpen(t, conn)
	}
	if got := a.metric(t, "alertmanager_cluster_tcp_transport_rejected_connections_total", nil); got != 1 {
		t.Errorf("alertmanager_cluster_tcp_transport_rejected_connections_total = %v, want 1", got)
	}
	if logs := a.logs.String(); !strings.Contains(logs, "3 inbound connections are open, the alertmanager cluster's fixed bound") {
		t.Errorf("the refusal is not logged with the bound:\n%s", logs)
	}

	// Closed connections free their slots: a member can join.
	for _, conn := range held {
		_ = conn.Close()
	}
	b := startMember(t, clusterConfig(t, member.CertPath, member.KeyPath, pki.CAPath, a.addr()), testBounds())
	b.join()
	testkit.Eventually(t, clusterWait, "both members to see each other", func() bool {
		return a.peer.ClusterSize() == 2 && b.peer.ClusterSize() == 2
	})
}

// serverSerial dials addr presenting cert and returns the serial number
// of the certificate the member serves.
func serverSerial(addr string, cert tls.Certificate, roots *x509.CertPool) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// A renewed CA bundle and a renewed certificate apply without a restart:
// a member whose CA the other did not trust joins once that one's bundle
// file holds its CA, and a rewritten certificate file is served to the
// next connection.
func TestClusterReloadsCertificatesAndCABundles(t *testing.T) {
	pki := testkit.NewPKI(t, "cluster root")
	other := testkit.NewCA(t, "other root")
	member := pki.Server(t, "member")
	stranger := testkit.ServerLeaf(t, other, "stranger")
	strangerCert, strangerKey := testkit.WritePair(t, pki.Dir, "stranger", stranger)
	trusted := testkit.WriteBundle(t, pki.Dir, "trusted.crt", pki.CA)
	both := testkit.WriteBundle(t, pki.Dir, "both.crt", pki.CA, other)

	a := startMember(t, clusterConfig(t, member.CertPath, member.KeyPath, trusted), testBounds())
	b := startMember(t, clusterConfig(t, strangerCert, strangerKey, both, a.addr()), testBounds())
	b.join()
	testkit.Eventually(t, clusterWait, "the first member to refuse the other CA", func() bool {
		return a.metric(t, "cortex_tls_handshake_failures_total", map[string]string{"server": "alertmanager-cluster", "reason": "unknown_authority"}) > 0
	})
	if !strings.Contains(a.logs.String(), "which no CA in -alertmanager.cluster.tls-ca-path="+trusted+" signed") {
		t.Errorf("the refusal does not name the CA flag:\n%s", a.logs.String())
	}
	if n := a.peer.ClusterSize(); n != 1 {
		t.Fatalf("the first member sees %d members before trusting the other CA, want 1", n)
	}

	// The bundle file is renewed with both CAs: the rejoining member is
	// accepted without a restart.
	testkit.WriteBundle(t, pki.Dir, "trusted.crt", pki.CA, other)
	testkit.Eventually(t, clusterWait, "both members to see each other after the CA renewal", func() bool {
		return a.peer.ClusterSize() == 2 && b.peer.ClusterSize() == 2
	})

	// The certificate file is renewed: new connections get the new one.
	roots := x509.NewCertPool()
	roots.AddCert(pki.CA.Cert)
	client, err := tls.X509KeyPair(member.CertPEM, member.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	before, err := serverSerial(a.addr(), client, roots)
	if err != nil {
		t.Fatal(err)
	}
	renewed := pki.Issue(t, "member", certgen.Options{DNSNames: []string{"localhost"}, IPs: testkit.LoopbackIPs()})
	if want := renewed.Cert.SerialNumber.String(); want == before {
		t.Fatal("the renewed certificate has the old serial number")
	}
	testkit.EventuallyNil(t, clusterWait, "the renewed certificate served", func() error {
		got, err := serverSerial(a.addr(), client, roots)
		if err == nil && got != renewed.Cert.SerialNumber.String() {
			err = errors.New("serving serial " + got + ", want " + renewed.Cert.SerialNumber.String())
		}
		return err
	})
}

// Certificates without subjectAltName, as the guide's openssl commands
// make them, form a cluster on loopback through the Common Name fallback
// of the project's other links.
func TestClusterAcceptsCommonNameCertificates(t *testing.T) {
	pki := testkit.NewPKI(t, "cluster root")
	member := pki.Issue(t, "member", certgen.Options{CommonName: "localhost"})
	cfg := clusterConfig(t, member.CertPath, member.KeyPath, pki.CAPath)
	cfg.TLS.AllowedClientNames = []string{"localhost"}
	a := startMember(t, cfg, testBounds())
	cfg.Peers = []string{a.addr()}
	b := startMember(t, cfg, testBounds())
	b.join()
	testkit.Eventually(t, clusterWait, "both members to see each other", func() bool {
		return a.peer.ClusterSize() == 2 && b.peer.ClusterSize() == 2
	})
}

// -alertmanager.cluster.tls-allowed-client-names matches every kind of
// subjectAltName, and the Common Name only of a certificate without any.
func TestClusterMemberNames(t *testing.T) {
	u, err := url.Parse("spiffe://cluster/alertmanager")
	if err != nil {
		t.Fatal(err)
	}
	cn := pkix.Name{CommonName: "cn"}
	for _, c := range []struct {
		cert x509.Certificate
		want []string
	}{
		{x509.Certificate{Subject: cn, DNSNames: []string{"member"}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}, EmailAddresses: []string{"am@example.org"}, URIs: []*url.URL{u}},
			[]string{"member", "10.0.0.1", "am@example.org", "spiffe://cluster/alertmanager"}},
		{x509.Certificate{Subject: cn, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}, []string{"10.0.0.1"}},
		{x509.Certificate{Subject: cn}, []string{"cn"}},
		{x509.Certificate{}, nil},
	} {
		if got := memberNames(&c.cert); !slices.Equal(got, c.want) {
			t.Errorf("names %q, want %q", got, c.want)
		}
	}
}
