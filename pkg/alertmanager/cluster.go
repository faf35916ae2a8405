package alertmanager

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/alertmanager/amcluster"
	"github.com/cortex-tls/cortex/pkg/kv/gossip"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// ClusterFlagPrefix is the prefix of the flags of Alertmanager's own
// gossip cluster, as in Cortex.
const ClusterFlagPrefix = "alertmanager.cluster."

// DefaultPeerTimeout is Cortex's -alertmanager.cluster.peer-timeout.
const DefaultPeerTimeout = 15 * time.Second

// ClusterConfig is Cortex's alertmanager.cluster block: Alertmanager's own
// gossip cluster, which replicates every tenant's silences and notification
// log between alertmanagers that do not shard
// (-alertmanager.sharding-enabled=false). Here it runs mutual TLS only,
// over the project's gossip transport (pkg/kv/gossip).
type ClusterConfig struct {
	ListenAddr       string                 `yaml:"listen_address"`
	AdvertiseAddr    string                 `yaml:"advertise_address"`
	Peers            flagext.StringSliceCSV `yaml:"peers"`
	PeerTimeout      time.Duration          `yaml:"peer_timeout"`
	GossipInterval   time.Duration          `yaml:"gossip_interval"`
	PushPullInterval time.Duration          `yaml:"push_pull_interval"`
	TLS              ClusterTLSConfig       `yaml:",inline"`
}

// ClusterTLSConfig is the mutual TLS of the gossip cluster: every member
// listens with its certificate and dials the others presenting it, and
// both sides verify the other against one CA bundle.
type ClusterTLSConfig struct {
	CertPath     string `yaml:"tls_cert_path"`
	KeyPath      string `yaml:"tls_key_path"`
	CAPath       string `yaml:"tls_ca_path"`
	ServerName   string `yaml:"tls_server_name"`
	MinVersion   string `yaml:"tls_min_version"`
	CipherSuites string `yaml:"tls_cipher_suites"`
	// AllowedClientNames narrows the members to certificates holding one
	// of these names, when the CA also signs other certificates.
	AllowedClientNames flagext.StringSliceCSV `yaml:"tls_allowed_client_names"`
}

// RegisterFlags registers the -alertmanager.cluster.* flags. The listen
// address defaults to empty (no cluster), not Cortex's 0.0.0.0:9094: a
// gossip port open on every interface is not a safe default.
func (c *ClusterConfig) RegisterFlags(f *flag.FlagSet) {
	p := ClusterFlagPrefix
	f.StringVar(&c.ListenAddr, p+"listen-address", "", "Listen address and port (ip:port; 0.0.0.0 for every interface) of Alertmanager's own gossip cluster, which replicates every tenant's silences and notification log between alertmanagers when -alertmanager.sharding-enabled is false. Empty: no cluster. Requires -"+p+"tls-cert-path, -"+p+"tls-key-path and -"+p+"tls-ca-path: the cluster runs mutual TLS only. Ignored with -alertmanager.sharding-enabled, as in Cortex.")
	f.StringVar(&c.AdvertiseAddr, p+"advertise-address", "", "Address (ip:port) the other members dial to reach this one. Empty: the listen address, or a private IP of this host when listening on 0.0.0.0. Their certificate check wants it among this member's certificate's IP SANs, unless they set -"+p+"tls-server-name.")
	f.Var(&c.Peers, p+"peers", "Comma-separated initial members of the cluster (host:port); a host name is resolved to all its addresses.")
	f.DurationVar(&c.PeerTimeout, p+"peer-timeout", DefaultPeerTimeout, "Time each alertmanager waits, per member (gossip cluster) or replica (-alertmanager.sharding-enabled) ahead of it, before sending a notification: the one ahead sends it and records it in the replicated notification log, and the others then send nothing. -alertmanager.peer-timeout is another name of this setting.")
	f.DurationVar(&c.GossipInterval, p+"gossip-interval", cluster.DefaultGossipInterval, "The interval between sending gossip messages. By lowering this value (more frequent) gossip messages are propagated across cluster more quickly at the expense of increased bandwidth usage.")
	f.DurationVar(&c.PushPullInterval, p+"push-pull-interval", cluster.DefaultPushPullInterval, "The interval between gossip state syncs. Setting this interval lower (more frequent) will increase convergence speeds across larger clusters at the expense of increased bandwidth usage.")
	f.StringVar(&c.TLS.CertPath, p+"tls-cert-path", "", "Path to this member's certificate, served to the members that dial it and presented to the members it dials. It must name the advertised IP (or the name in -"+p+"tls-server-name) as a subjectAltName, or as its Common Name when it has none, and allow both server and client authentication.")
	f.StringVar(&c.TLS.KeyPath, p+"tls-key-path", "", "Path to the private key of -"+p+"tls-cert-path.")
	f.StringVar(&c.TLS.CAPath, p+"tls-ca-path", "", "Path to the CA bundle every member's certificate must chain to, checked both ways (mutual TLS).")
	f.StringVar(&c.TLS.ServerName, p+"tls-server-name", "", "Name to verify the other members' certificates against, instead of the IP address dialled.")
	f.StringVar(&c.TLS.MinVersion, p+"tls-min-version", "VersionTLS12", "Lowest TLS version the cluster accepts: VersionTLS12 or VersionTLS13 (VersionTLS10 and VersionTLS11 are accepted with a warning: insecure).")
	f.StringVar(&c.TLS.CipherSuites, p+"tls-cipher-suites", "", "Comma-separated TLS 1.2 cipher suites the cluster's listener accepts (Go names). Empty means ECDHE with AES-GCM or ChaCha20-Poly1305 only.")
	f.Var(&c.TLS.AllowedClientNames, p+"tls-allowed-client-names", "Comma-separated names one of which a member's certificate must hold to be accepted by this member's listener: its subjectAltNames (DNS names, IP addresses, e-mail addresses or URIs), or its Common Name when it has none; a leading *. matches one label. Empty accepts any certificate -"+p+"tls-ca-path signed: set it when that CA also signs other components' certificates.")
}

// Enabled reports whether the gossip cluster runs: a listen address is
// set and the tenants are not sharded (Cortex's rule).
func (c *ClusterConfig) Enabled(shardingEnabled bool) bool {
	return c.ListenAddr != "" && !shardingEnabled
}

// Validate checks the cluster's settings without I/O. Settings that only
// take effect with a listen address are refused without one, since
// Cortex's default address would have started the cluster.
func (c *ClusterConfig) Validate(shardingEnabled bool) error {
	p := ClusterFlagPrefix
	if c.PeerTimeout < 0 {
		return fmt.Errorf("-%speer-timeout must not be negative, got %s", p, c.PeerTimeout)
	}
	if shardingEnabled {
		return nil // the cluster is not used: Cortex ignores its settings
	}
	if c.ListenAddr == "" {
		for _, s := range []struct{ name, value string }{{"advertise-address", c.AdvertiseAddr}, {"peers", c.Peers.String()}, {"tls-cert-path", c.TLS.CertPath}, {"tls-key-path", c.TLS.KeyPath}, {"tls-ca-path", c.TLS.CAPath}, {"tls-allowed-client-names", c.TLS.AllowedClientNames.String()}} {
			if s.value != "" {
				return fmt.Errorf("-%s%s is set but -%slisten-address is empty, so the gossip cluster is off: set the listen address (it defaults to empty here, not to Cortex's 0.0.0.0:9094)", p, s.name, p)
			}
		}
		return nil
	}
	// The gossip transport binds and advertises IP addresses, not
	// host names.
	if host, port, err := net.SplitHostPort(c.ListenAddr); err != nil || port == "" || net.ParseIP(host) == nil {
		return fmt.Errorf("-%slisten-address=%q: want ip:port (0.0.0.0 for every interface)", p, c.ListenAddr)
	}
	if c.AdvertiseAddr != "" {
		if host, port, err := net.SplitHostPort(c.AdvertiseAddr); err != nil || port == "" || net.ParseIP(host) == nil {
			return fmt.Errorf("-%sadvertise-address=%q: want ip:port", p, c.AdvertiseAddr)
		}
	}
	for _, peer := range c.Peers {
		if _, _, err := net.SplitHostPort(peer); err != nil {
			return fmt.Errorf("-%speers: %q: want host:port", p, peer)
		}
	}
	if c.GossipInterval <= 0 {
		return fmt.Errorf("-%sgossip-interval must be positive, got %s", p, c.GossipInterval)
	}
	if c.PushPullInterval <= 0 {
		return fmt.Errorf("-%spush-pull-interval must be positive, got %s", p, c.PushPullInterval)
	}
	var missing []string
	for _, s := range []struct{ name, value string }{{"tls-cert-path", c.TLS.CertPath}, {"tls-key-path", c.TLS.KeyPath}, {"tls-ca-path", c.TLS.CAPath}} {
		if s.value == "" {
			missing = append(missing, "-"+p+s.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("-%slisten-address is set: the gossip cluster runs mutual TLS only; also set %s", p, strings.Join(missing, ", "))
	}
	return nil
}

// Fixed bounds of the cluster's transport, which the members' own traffic
// stays far below: a handful of members each hold a packet connection and
// short streams (push-pull, join, messages over 700 bytes).
const (
	// clusterMaxConnections bounds the inbound connections, those still in
	// their TLS handshake included; more are closed at once.
	clusterMaxConnections = 100
	// clusterMaxPacketSize bounds one inbound packet: the members send at
	// most 1,400 bytes (Alertmanager's gossip packet size).
	clusterMaxPacketSize = 64 << 10
	// clusterPacketReadTimeout bounds the time a begun packet takes to arrive.
	clusterPacketReadTimeout = 5 * time.Second
	// clusterHandshakeTimeout bounds a connection's TLS handshake.
	clusterHandshakeTimeout = 10 * time.Second
)

// clusterBounds are the transport's bounds that tests lower.
type clusterBounds struct {
	maxConnections   int
	handshakeTimeout time.Duration
}

// clusterTLS checks the cluster's certificate, key and CA bundle, with
// errors naming the flag at fault, and returns the members' TLS: a client
// that presents this member's certificate and verifies the others' (with
// the Common Name fallback of the project's other links), and a server
// that requires and verifies theirs. Both read the files through loader,
// so renewed certificates and CA bundles apply without a restart.
func (c *ClusterConfig) clusterTLS(loader *tlsconfig.Loader, handshakeTimeout time.Duration) (*tlsconfig.Client, *tlsconfig.Server, error) {
	p := ClusterFlagPrefix
	// Parsed here first, so that errors name the cluster's flags.
	if _, _, err := tlsconfig.ParseMinVersion(p+"tls-min-version", c.TLS.MinVersion); err != nil {
		return nil, nil, err
	}
	if _, _, err := tlsconfig.ParseCipherSuites(p+"tls-cipher-suites", c.TLS.CipherSuites); err != nil {
		return nil, nil, err
	}
	client, err := tlsconfig.NewClient(strings.TrimSuffix(p, "."), tlsconfig.ClientConfig{
		CertPath:           c.TLS.CertPath,
		KeyPath:            c.TLS.KeyPath,
		CAPath:             c.TLS.CAPath,
		ServerName:         c.TLS.ServerName,
		MinVersion:         c.TLS.MinVersion,
		CipherSuites:       c.TLS.CipherSuites,
		CommonNameFallback: true,
	}, loader)
	if err != nil {
		return nil, nil, err
	}
	// The files are loaded: check that the others can accept this
	// member's certificate.
	kp, err := loader.KeyPair(p+"tls-cert-path", c.TLS.CertPath, p+"tls-key-path", c.TLS.KeyPath)
	if err != nil {
		return nil, nil, err
	}
	ca, err := loader.CAPool(p+"tls-ca-path", c.TLS.CAPath)
	if err != nil {
		return nil, nil, err
	}
	if err := checkMemberCertificate(c.TLS, kp.Certificate().Certificate, ca.Pool()); err != nil {
		return nil, nil, err
	}
	server, err := tlsconfig.NewServer("alertmanager-cluster", p, tlsconfig.ServerConfig{
		CertPath:           c.TLS.CertPath,
		KeyPath:            c.TLS.KeyPath,
		CAPath:             c.TLS.CAPath,
		AllowedClientNames: c.TLS.AllowedClientNames,
	}, tlsconfig.ServerOptions{
		MinVersion:       c.TLS.MinVersion,
		CipherSuites:     c.TLS.CipherSuites,
		HandshakeTimeout: handshakeTimeout,
		ClientNames:      memberNames,
	}, loader)
	if err != nil {
		return nil, nil, err
	}
	return client, server, nil
}

// memberNames are the names -alertmanager.cluster.tls-allowed-client-names
// is matched against: every subjectAltName (DNS names, IP addresses, e-mail
// addresses, URIs), or the Common Name of a certificate that has none.
func memberNames(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, c.EmailAddresses...)
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	return names
}

// checkMemberCertificate refuses a certificate the other members cannot
// accept: every member serves and presents it, and verifies the others
// against the same kind of bundle. One without subjectAltName is accepted,
// as on the project's other links: the members fall back to its Common Name.
func checkMemberCertificate(cfg ClusterTLSConfig, chain [][]byte, roots *x509.CertPool) error {
	certFlag := "-" + ClusterFlagPrefix + "tls-cert-path"
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("%s=%s: %w", certFlag, cfg.CertPath, err)
	}
	intermediates := x509.NewCertPool()
	for _, der := range chain[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			intermediates.AddCert(c)
		}
	}
	for _, usage := range []struct {
		eku  x509.ExtKeyUsage
		name string
	}{{x509.ExtKeyUsageServerAuth, "server"}, {x509.ExtKeyUsageClientAuth, "client"}} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{usage.eku}})
		var unknown x509.UnknownAuthorityError
		switch {
		case err == nil:
		case errors.As(err, &unknown):
			return fmt.Errorf("%s=%s: certificate %q does not chain to -%stls-ca-path=%s, which every member verifies the others against: %w", certFlag, cfg.CertPath, leaf.Subject.CommonName, ClusterFlagPrefix, cfg.CAPath, err)
		default:
			return fmt.Errorf("%s=%s: certificate %q cannot be used for %s authentication, and every member is both server and client of the others: %w", certFlag, cfg.CertPath, leaf.Subject.CommonName, usage.name, err)
		}
	}
	return nil
}

// NewClusterPeer checks cfg's TLS files and starts this alertmanager's
// member of the gossip cluster: its listener is open, and
// MultitenantAlertmanager joins the peers when it starts (WithCluster).
// It runs on the project's gossip transport, with mutual TLS whose files
// loader reloads, and fixed bounds on connections, handshakes and packets.
// Its metrics are Alertmanager's alertmanager_cluster_* and the transport's
// alertmanager_cluster_tcp_transport_*.
func NewClusterPeer(cfg ClusterConfig, loader *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (*amcluster.Peer, error) {
	return newClusterPeer(cfg, clusterBounds{maxConnections: clusterMaxConnections, handshakeTimeout: clusterHandshakeTimeout}, loader, logger, reg)
}

func newClusterPeer(cfg ClusterConfig, bounds clusterBounds, loader *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (*amcluster.Peer, error) {
	if err := cfg.Validate(false); err != nil {
		return nil, err
	}
	logger = logger.With("component", "alertmanager-cluster")
	client, server, err := cfg.clusterTLS(loader, bounds.handshakeTimeout)
	if err != nil {
		return nil, err
	}
	transport, err := gossip.NewTransport(gossip.TransportConfig{
		ListenAddr:               cfg.ListenAddr,
		ListenFlag:               "-" + ClusterFlagPrefix + "listen-address",
		AdvertiseFlag:            "-" + ClusterFlagPrefix + "advertise-address",
		DialTimeout:              cluster.DefaultTCPTimeout,
		WriteTimeout:             cluster.DefaultTCPTimeout,
		PacketReadTimeout:        clusterPacketReadTimeout,
		MaxPacketSize:            clusterMaxPacketSize,
		MaxConcurrentConnections: bounds.maxConnections,
		LimitsName:               "the alertmanager cluster's fixed bound",
		Client:                   client,
		Server:                   server,
		MetricsPrefix:            "alertmanager_cluster_tcp_transport_",
	}, logger, reg)
	if err != nil {
		return nil, err
	}
	peer, err := amcluster.Create(logger, reg, transport, cfg.AdvertiseAddr, cfg.Peers, true,
		cfg.PushPullInterval, cfg.GossipInterval, cluster.DefaultTCPTimeout, cluster.DefaultResolvePeersTimeout,
		cluster.DefaultProbeTimeout, cluster.DefaultProbeInterval, "", "")
	if err != nil {
		_ = transport.Shutdown()
		return nil, fmt.Errorf("alertmanager gossip cluster on -%slisten-address=%s: %w", ClusterFlagPrefix, cfg.ListenAddr, err)
	}
	self := peer.Self()
	logger.Info("alertmanager cluster listening", "addr", self.Address(), "name", peer.Name(), "tls", "mutual")
	return peer, nil
}

// WithCluster makes the tenants' silences and notification logs members'
// state of the gossip cluster peer: changes are gossiped to the other
// members, a member starting merges their full state, and notifications
// wait for the gossip to settle and, per member ahead, the peer timeout.
func WithCluster(peer *amcluster.Peer) Option {
	return func(am *MultitenantAlertmanager) { am.peer = peer }
}

// joinCluster joins the peers and settles the gossip in the background;
// notifications wait for it (Alertmanager's gossip settle stage).
func (am *MultitenantAlertmanager) joinCluster(ctx context.Context) {
	if err := am.peer.Join(cluster.DefaultReconnectInterval, cluster.DefaultReconnectTimeout); err != nil {
		am.logger.Warn("unable to join the alertmanager gossip cluster; retrying in the background", "err", err)
	}
	settleCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	am.stopSettle = cancel
	go am.peer.Settle(settleCtx, cluster.DefaultGossipInterval)
}

// leaveCluster tells the other members this one is leaving.
func (am *MultitenantAlertmanager) leaveCluster() error {
	if am.stopSettle != nil {
		am.stopSettle()
	}
	if err := am.peer.Leave(am.peerTimeout); err != nil {
		return fmt.Errorf("leaving the alertmanager gossip cluster: %w", err)
	}
	return nil
}

// gossip makes a new tenant's silences and notification log state of the
// gossip cluster, under Cortex's keys.
func (am *MultitenantAlertmanager) gossip(t *tenant) {
	t.silences.SetBroadcast(am.peer.AddState(silencesKeyPrefix+t.id, t.silences, t.reg).Broadcast)
	t.nflog.SetBroadcast(am.peer.AddState(nflogKeyPrefix+t.id, t.nflog, t.reg).Broadcast)
	t.settle = am.peer
	peer, timeout := am.peer, am.peerTimeout
	t.wait = func() time.Duration { return time.Duration(peer.Position()) * timeout }
}
