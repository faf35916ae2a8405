package alertmanager

import (
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func parseConfig(t *testing.T, args ...string) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestClusterFlagDefaults(t *testing.T) {
	c := parseConfig(t).Cluster
	if c.ListenAddr != "" || c.AdvertiseAddr != "" || len(c.Peers) != 0 || c.PeerTimeout != 15*time.Second ||
		c.GossipInterval != 200*time.Millisecond || c.PushPullInterval != time.Minute || c.TLS.MinVersion != "VersionTLS12" {
		t.Errorf("defaults: %+v", c)
	}
	if c.Enabled(false) {
		t.Error("the gossip cluster is on without a listen address")
	}
	if c.ListenAddr = "127.0.0.1:9094"; c.Enabled(true) {
		t.Error("the gossip cluster is on with sharding")
	}
}

func TestClusterValidation(t *testing.T) {
	const tlsFlags = "-alertmanager.cluster.tls-cert-path=a.crt -alertmanager.cluster.tls-key-path=a.key -alertmanager.cluster.tls-ca-path=ca.crt"
	for _, c := range []struct{ args, want string }{
		{"-alertmanager.cluster.listen-address=127.0.0.1:9094", "-alertmanager.cluster.listen-address is set: the gossip cluster runs mutual TLS only; also set -alertmanager.cluster.tls-cert-path, -alertmanager.cluster.tls-key-path, -alertmanager.cluster.tls-ca-path"},
		{"-alertmanager.cluster.listen-address=127.0.0.1:9094 -alertmanager.cluster.tls-cert-path=a.crt -alertmanager.cluster.tls-key-path=a.key", "also set -alertmanager.cluster.tls-ca-path"},
		{"-alertmanager.cluster.peers=10.0.0.1:9094", "-alertmanager.cluster.peers is set but -alertmanager.cluster.listen-address is empty, so the gossip cluster is off"},
		{"-alertmanager.cluster.tls-ca-path=ca.crt", "-alertmanager.cluster.tls-ca-path is set but -alertmanager.cluster.listen-address is empty"},
		{"-alertmanager.cluster.tls-allowed-client-names=member", "-alertmanager.cluster.tls-allowed-client-names is set but -alertmanager.cluster.listen-address is empty"},
		{"-alertmanager.cluster.listen-address=localhost:9094 " + tlsFlags, `-alertmanager.cluster.listen-address="localhost:9094": want ip:port`},
		{"-alertmanager.cluster.listen-address=0.0.0.0:9094 -alertmanager.cluster.advertise-address=am-0:9094 " + tlsFlags, `-alertmanager.cluster.advertise-address="am-0:9094": want ip:port`},
		{"-alertmanager.cluster.listen-address=127.0.0.1:9094 -alertmanager.cluster.peers=10.0.0.1 " + tlsFlags, `-alertmanager.cluster.peers: "10.0.0.1": want host:port`},
		{"-alertmanager.cluster.listen-address=127.0.0.1:9094 -alertmanager.cluster.gossip-interval=0s " + tlsFlags, "-alertmanager.cluster.gossip-interval must be positive"},
		{"-alertmanager.cluster.listen-address=127.0.0.1:9094 -alertmanager.cluster.push-pull-interval=0s " + tlsFlags, "-alertmanager.cluster.push-pull-interval must be positive"},
		{"-alertmanager.cluster.peer-timeout=-1s", "-alertmanager.cluster.peer-timeout must not be negative"},
		{"-alertmanager.cluster.peer-timeout=2s -alertmanager.peer-timeout=3s", "-alertmanager.cluster.peer-timeout=2s and -alertmanager.peer-timeout=3s are two names of one setting, given different values: set only one"},
	} {
		cfg := parseConfig(t, strings.Fields(c.args)...)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.args, err, c.want)
		}
	}
	for _, args := range []string{
		"-alertmanager.cluster.listen-address=127.0.0.1:9094 " + tlsFlags,
		"-alertmanager.cluster.listen-address=0.0.0.0:9094 -alertmanager.cluster.advertise-address=10.0.0.2:9094 -alertmanager.cluster.peers=am-0.am:9094,10.0.0.1:9094 " + tlsFlags,
		// As in Cortex, sharding ignores the cluster's settings.
		"-alertmanager.sharding-enabled=true -alertmanager.sharding-ring.store=inmemory -alertmanager.cluster.listen-address=127.0.0.1:9094",
	} {
		cfg := parseConfig(t, strings.Fields(args)...)
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", args, err)
		}
	}
}

// Both names of the peer timeout set it; -alertmanager.cluster.peer-timeout
// is Cortex's.
func TestPeerTimeoutNames(t *testing.T) {
	for _, c := range []struct {
		args string
		want time.Duration
	}{
		{"", 15 * time.Second},
		{"-alertmanager.cluster.peer-timeout=2s", 2 * time.Second},
		{"-alertmanager.peer-timeout=3s", 3 * time.Second},
		{"-alertmanager.peer-timeout=0s", 0},
		{"-alertmanager.cluster.peer-timeout=4s -alertmanager.peer-timeout=4s", 4 * time.Second},
	} {
		cfg := parseConfig(t, strings.Fields(c.args)...)
		got, err := cfg.PeerTimeout()
		if err != nil || got != c.want {
			t.Errorf("%q: peer timeout %s (%v), want %s", c.args, got, err, c.want)
		}
	}
}

// A member's certificate the others could not accept fails NewClusterPeer
// with the flag at fault, before anything listens.
func TestClusterPeerRefusesBadCertificates(t *testing.T) {
	pki := testkit.NewPKI(t, "cluster root")
	member := pki.Server(t, "member")
	noSAN := pki.Issue(t, "no-san", certgen.Options{CommonName: "member"})
	foreign := testkit.NewPKI(t, "foreign root").Server(t, "foreign")
	base := func(cert, key string) ClusterConfig {
		c := parseConfig(t).Cluster
		c.ListenAddr = "127.0.0.1:0"
		c.TLS.CertPath, c.TLS.KeyPath, c.TLS.CAPath = cert, key, pki.CAPath
		return c
	}
	missing := filepath.Join(t.TempDir(), "missing.crt")
	for _, c := range []struct {
		name string
		cfg  ClusterConfig
		want string
	}{
		{"missing certificate", base(missing, member.KeyPath), "-alertmanager.cluster.tls-cert-path=" + missing},
		{"key of another certificate", base(member.CertPath, noSAN.KeyPath), "-alertmanager.cluster.tls-key-path=" + noSAN.KeyPath + ": private key does not match the certificate"},
		{"missing CA", func() ClusterConfig { c := base(member.CertPath, member.KeyPath); c.TLS.CAPath = missing; return c }(), "-alertmanager.cluster.tls-ca-path=" + missing},
		{"another CA", base(foreign.CertPath, foreign.KeyPath), "-alertmanager.cluster.tls-cert-path=" + foreign.CertPath + `: certificate "foreign" does not chain to -alertmanager.cluster.tls-ca-path=` + pki.CAPath},
		{"bad minimum version", func() ClusterConfig {
			c := base(member.CertPath, member.KeyPath)
			c.TLS.MinVersion = "TLS1.2"
			return c
		}(), `-alertmanager.cluster.tls-min-version="TLS1.2" is not a TLS version`},
	} {
		peer, err := NewClusterPeer(c.cfg, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err == nil {
			_ = peer.Leave(0)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}
