// Package gossip is a key-value store replicated by gossip, for the ingester
// ring, built on the memberlist library like dskit's kv/memberlist but with
// its own transport: TCP with mutual TLS whose certificates and CA bundles
// reload without a restart, and whose listener refuses peers without a valid
// client certificate. Rings get their client from pkg/kv.NewClient.
//
// It stores opaque mergeable values: it must not import the ring's users,
// and it never accepts a peer whose certificate it could not verify when
// -memberlist.tls-ca-path is set.
package gossip

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/dns"
	dskitml "github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/services"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
)

// KV is the gossip key-value store of one process.
type KV struct {
	cfg     Config
	logger  *slog.Logger
	metrics *kvMetrics
	tmetric *transportMetrics
	tlsCli  *tlsconfig.Client // nil when gossip is plaintext
	tlsSrv  *tlsconfig.Server
	dns     *dns.Provider
	service services.Service

	list       atomic.Pointer[memberlist.Memberlist]
	transport  atomic.Pointer[transport]
	localQ     *memberlist.TransmitLimitedQueue // changes made here, sent first
	forwardedQ *memberlist.TransmitLimitedQueue // changes learnt from peers
	ready      atomic.Bool                      // delegate callbacks may run

	store    store
	watchers watchers
	stopped  chan struct{} // closed when the service stops, ends watches
	stopOnce sync.Once
}

// New builds the gossip KV from Cortex's memberlist configuration (dskit's
// settings, so the -memberlist.* flags and YAML keep their meaning, and
// Cortex's transport bounds) and the gossip TLS.
func New(cfg Config, tlsCfg TLSConfig, loader *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (*KV, error) {
	if err := validate(cfg.KVConfig); err != nil {
		return nil, err
	}
	if err := cfg.validateCortexFlags(); err != nil {
		return nil, err
	}
	k := &KV{
		cfg:     cfg,
		logger:  logger.With("component", "gossip"),
		store:   newStore(),
		stopped: make(chan struct{}),
	}
	k.watchers.init()
	var err error
	if k.tlsCli, k.tlsSrv, err = newTLS(tlsCfg, loader); err != nil {
		return nil, err
	}
	warnUnusedFlags(cfg.KVConfig, k.logger)
	if k.tlsSrv != nil && k.tlsSrv.ClientAuth() != tls.RequireAndVerifyClientCert {
		k.logger.Warn("the gossip listener does not require verified client certificates: anyone who reaches the gossip port can change the ring. Set -memberlist.tls-ca-path to the CA that signs the members' certificates")
	}
	k.metrics = newKVMetrics(reg, k.memberCount, func() float64 { return float64(k.store.len()) })
	k.tmetric = newTransportMetrics(reg, "cortex_memberlist_tcp_transport_", memberlistNames.maxConns)
	k.dns = dns.NewProvider(dns.GolangResolverType, 0, kitlog.New(k.logger), nil)
	k.service = services.NewBasicService(k.starting, k.running, k.stopping).WithName("gossip-kv")
	return k, nil
}

// warnUnusedFlags reports -memberlist.* flags that tune dskit's own
// transport and KV internals, which this store does not have, when they are
// set to anything but their defaults.
func warnUnusedFlags(cfg dskitml.KVConfig, logger *slog.Logger) {
	var def dskitml.KVConfig
	def.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	for name, changed := range map[string]bool{
		"memberlist.max-concurrent-writes":        cfg.TCPTransport.MaxConcurrentWrites != def.TCPTransport.MaxConcurrentWrites,
		"memberlist.acquire-writer-timeout":       cfg.TCPTransport.AcquireWriterTimeout != def.TCPTransport.AcquireWriterTimeout,
		"memberlist.transport-debug":              cfg.TCPTransport.TransportDebug != def.TCPTransport.TransportDebug,
		"memberlist.notify-interval":              cfg.NotifyInterval != def.NotifyInterval,
		"memberlist.message-history-buffer-bytes": cfg.MessageHistoryBufferBytes != def.MessageHistoryBufferBytes,
	} {
		if changed {
			logger.Warn("-" + name + " has no effect: it tunes dskit's memberlist transport, which this gossip store replaces (each peer has one connection with its own send queue)")
		}
	}
	if cfg.ObsoleteEntriesTimeout != def.ObsoleteEntriesTimeout {
		logger.Warn("-memberlist.obsolete-entries-timeout has no effect: deleted keys are kept for -memberlist.tombstone-timeout, Cortex's name for it")
	}
}

func validate(cfg dskitml.KVConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("-memberlist.*: %w (were the memberlist flags registered?)", err)
	}
	switch {
	case cfg.GossipInterval <= 0:
		return fmt.Errorf("-memberlist.gossip-interval=%s must be positive", cfg.GossipInterval)
	case cfg.GossipNodes <= 0:
		return fmt.Errorf("-memberlist.gossip-nodes=%d must be positive", cfg.GossipNodes)
	case cfg.ZoneAwareRouting.Enabled:
		return errors.New("-memberlist.zone-aware-routing.enabled is not supported by the gossip KV with mutual TLS")
	case cfg.PropagationDelayTracker.Enabled:
		return errors.New("-memberlist.propagation-delay-tracker.enabled is not supported by the gossip KV with mutual TLS")
	}
	return nil
}

// Service runs the gossip: starting binds the port, creates the memberlist
// and joins -memberlist.join; running rejoins and removes old tombstones;
// stopping leaves the cluster.
func (k *KV) Service() services.Service { return k.service }

// ListenPort returns the bound gossip port, once the service has started.
func (k *KV) ListenPort() int {
	if t := k.transport.Load(); t != nil {
		return t.port()
	}
	return 0
}

// Members returns the names of the members this node sees alive, itself included.
func (k *KV) Members() []string {
	list := k.list.Load()
	if list == nil {
		return nil
	}
	var names []string
	for _, n := range list.Members() {
		names = append(names, n.Name)
	}
	return names
}

// StatusHandler serves the members page: this node, its gossip port and
// the members it knows.
func (k *KV) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "node %s, gossip port %d\nmembers:\n", k.NodeName(), k.ListenPort())
		for _, m := range k.Members() {
			fmt.Fprintln(w, m)
		}
	})
}

// NodeName returns this member's name, once the service has started.
func (k *KV) NodeName() string {
	if list := k.list.Load(); list != nil {
		return list.LocalNode().Name
	}
	return ""
}

func (k *KV) memberCount() float64 {
	if list := k.list.Load(); list != nil {
		return float64(list.NumMembers())
	}
	return 0
}

func (k *KV) starting(ctx context.Context) error {
	tr, err := newTransport(transportConfig{
		bindAddrs:    k.cfg.TCPTransport.BindAddrs,
		bindPort:     k.cfg.TCPTransport.BindPort,
		dialTimeout:  positive(k.cfg.TCPTransport.PacketDialTimeout, 2*time.Second),
		writeTimeout: positive(k.cfg.TCPTransport.PacketWriteTimeout, 5*time.Second),
		readTimeout:  k.cfg.PacketReadTimeout,
		maxPacket:    k.cfg.packetLimit(),
		maxConns:     k.cfg.MaxConcurrentConnections,
		client:       k.tlsCli,
		server:       k.tlsSrv,
	}, k.logger, k.tmetric)
	if err != nil {
		return err
	}
	k.transport.Store(tr)
	list, err := memberlist.Create(k.memberlistConfig(tr))
	if err != nil {
		_ = tr.Shutdown()
		return fmt.Errorf("creating the gossip memberlist: %w", err)
	}
	k.list.Store(list)
	k.localQ = &memberlist.TransmitLimitedQueue{NumNodes: list.NumMembers, RetransmitMult: k.cfg.RetransmitMult}
	k.forwardedQ = &memberlist.TransmitLimitedQueue{NumNodes: list.NumMembers, RetransmitMult: k.cfg.RetransmitMult}
	k.ready.Store(true)
	k.logger.Info("gossip listening", "port", tr.port(), "node", list.LocalNode().Name,
		"advertise", list.LocalNode().Address(), "tls", k.tlsCli != nil, "cluster_label", k.cfg.ClusterLabel)

	if len(k.cfg.JoinMembers) == 0 {
		return nil
	}
	joined, err := k.joinWithRetries(ctx, k.cfg.JoinMembers, k.cfg.MaxJoinRetries)
	if err == nil {
		k.logger.Info("joined the gossip cluster", "reached", joined, "members", list.NumMembers())
		return nil
	}
	// The join runs while starting, before the services that read the
	// ring start: dskit's "fast join" and its join are one step here.
	if k.cfg.AbortIfJoinFails || k.cfg.AbortIfFastJoinFails {
		k.shutdown()
		return fmt.Errorf("joining the gossip cluster (-memberlist.join=%s) failed and -memberlist.abort-if-join-fails (or -memberlist.abort-if-fast-join-fails) is set: %w",
			strings.Join(k.cfg.JoinMembers, ","), err)
	}
	k.logger.Error("joining the gossip cluster failed; continuing alone, peers may still join this node", "join", strings.Join(k.cfg.JoinMembers, ","), "err", err)
	return nil
}

func (k *KV) memberlistConfig(tr *transport) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Delegate = delegate{k}
	c.Transport = tr
	c.TCPTimeout = k.cfg.StreamTimeout
	c.RetransmitMult = k.cfg.RetransmitMult
	c.PushPullInterval = k.cfg.PushPullInterval
	c.GossipInterval = k.cfg.GossipInterval
	c.GossipNodes = k.cfg.GossipNodes
	c.GossipToTheDeadTime = k.cfg.GossipToTheDeadTime
	c.DeadNodeReclaimTime = k.cfg.DeadNodeReclaimTime
	c.EnableCompression = k.cfg.EnableCompression
	c.CompressionAlgorithm = memberlist.CompressionAlgorithm(k.cfg.CompressionAlgorithm)
	c.HandoffQueueDepth = k.cfg.ReceivedMessagesQueueSize
	c.AdvertiseAddr = k.cfg.AdvertiseAddr
	c.AdvertisePort = k.cfg.AdvertisePort
	c.Label = k.cfg.ClusterLabel
	c.SkipInboundLabelCheck = k.cfg.ClusterLabelVerificationDisabled
	if k.cfg.NodeName != "" {
		c.Name = k.cfg.NodeName
	}
	if k.cfg.RandomizeNodeName {
		c.Name += "-" + randomSuffix()
	}
	c.Logger = memberlistLogger(k.logger)
	// Packets travel over TCP: as large as the peers accept
	// (-memberlist.max-packet-size), so none is refused for its size.
	c.UDPBufferSize = int(k.cfg.packetLimit())
	// Probes as dskit sets them; TCP pings would duplicate our TCP packets.
	c.ProbeInterval = 5 * time.Second
	c.ProbeTimeout = 2 * time.Second
	c.DisableTcpPings = true
	return c
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func positive(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

// joinWithRetries joins members with -memberlist.min/max-join-backoff
// between attempts, at most retries times; joining one member is enough.
func (k *KV) joinWithRetries(ctx context.Context, members []string, retries int) (int, error) {
	boff := backoff.New(ctx, backoff.Config{MinBackoff: k.cfg.MinJoinBackoff, MaxBackoff: k.cfg.MaxJoinBackoff, MaxRetries: retries})
	var lastErr error
	for boff.Ongoing() {
		n, err := k.join(ctx, members)
		if err == nil {
			return n, nil
		}
		lastErr = err
		k.logger.Warn("joining the gossip cluster", "attempt", boff.NumRetries()+1, "max_attempts", retries, "err", err)
		boff.Wait()
	}
	if lastErr == nil {
		lastErr = boff.Err()
	}
	return 0, lastErr
}

func (k *KV) join(ctx context.Context, members []string) (int, error) {
	addrs, err := k.resolve(ctx, members)
	if len(addrs) == 0 {
		if err == nil {
			err = fmt.Errorf("-memberlist.join=%s resolved to no address", strings.Join(members, ","))
		}
		return 0, err
	}
	list := k.list.Load()
	n, joinErr := list.Join(addrs)
	if n > 0 {
		return n, nil
	}
	return 0, joinErr
}

// resolve expands dns+, dnssrv+ and dnssrvnoa+ members with dskit's DNS
// provider; other members are host:port and memberlist resolves them.
func (k *KV) resolve(ctx context.Context, members []string) ([]string, error) {
	var plain, lookup []string
	for _, m := range members {
		if strings.Contains(m, "+") {
			lookup = append(lookup, m)
		} else {
			plain = append(plain, m)
		}
	}
	if len(lookup) == 0 {
		return plain, nil
	}
	err := k.dns.Resolve(ctx, lookup)
	if err != nil {
		err = fmt.Errorf("resolving -memberlist.join members %s: %w", strings.Join(lookup, ","), err)
	}
	return append(plain, k.dns.Addresses()...), err
}

func (k *KV) running(ctx context.Context) error {
	var rejoin <-chan time.Time
	seeds := k.cfg.GetRejoinSeedNodes()
	if k.cfg.RejoinInterval > 0 && len(seeds) > 0 {
		t := time.NewTicker(k.cfg.RejoinInterval)
		defer t.Stop()
		rejoin = t.C
	}
	sweep := time.NewTicker(sweepInterval(k.cfg))
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-rejoin:
			if n, err := k.join(ctx, seeds); err != nil {
				k.logger.Warn("rejoining the gossip cluster failed", "err", err)
			} else {
				k.logger.Debug("rejoined the gossip cluster", "reached", n)
			}
		case <-sweep.C:
			k.sweep(time.Now())
		}
	}
}

// sweepInterval is how often tombstones and deleted keys are looked for:
// often enough that none outlives its timeout by much.
func sweepInterval(cfg Config) time.Duration {
	d := time.Minute
	for _, t := range []time.Duration{cfg.LeftIngestersTimeout, cfg.TombstoneTimeout} {
		if t > 0 && t/2 < d {
			d = t / 2
		}
	}
	return max(d, 10*time.Millisecond)
}

func (k *KV) stopping(error) error {
	list := k.list.Load()
	// Let locally made changes (such as an ingester marking itself LEFT)
	// reach the others before leaving.
	deadline := time.Now().Add(k.cfg.BroadcastTimeoutForLocalUpdatesOnShutdown)
	for k.localQ.NumQueued() > 0 && list.NumMembers() > 1 &&
		(k.cfg.BroadcastTimeoutForLocalUpdatesOnShutdown <= 0 || time.Now().Before(deadline)) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := list.Leave(k.cfg.LeaveTimeout); err != nil {
		k.logger.Warn("leaving the gossip cluster failed", "err", err)
	}
	k.shutdown()
	return nil
}

func (k *KV) shutdown() {
	k.ready.Store(false)
	if list := k.list.Load(); list != nil {
		if err := list.Shutdown(); err != nil {
			k.logger.Warn("shutting gossip down", "err", err)
		}
	}
	_ = k.transport.Load().Shutdown()
	k.stopOnce.Do(func() { close(k.stopped) })
}
