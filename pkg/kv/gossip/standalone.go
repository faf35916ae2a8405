package gossip

import (
	"errors"
	"log"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// TransportConfig is a gossip transport for a memberlist other than the KV's
// (Alertmanager's gossip cluster): the same wire, TLS and bounds, with its
// own listener, settings and metrics.
type TransportConfig struct {
	// ListenAddr is the ip:port to bind (port 0 picks one); ListenFlag and
	// AdvertiseFlag name its flags in messages.
	ListenAddr    string
	ListenFlag    string
	AdvertiseFlag string

	DialTimeout       time.Duration // dialling a peer for packets
	WriteTimeout      time.Duration // writing one packet
	PacketReadTimeout time.Duration // reading a packet once its first byte arrived; 0 none
	// MaxPacketSize bounds an inbound packet; 0 or more than 16 MiB means 16 MiB.
	MaxPacketSize int64
	// MaxConcurrentConnections bounds inbound connections, those in their
	// TLS handshake included; 0 none.
	MaxConcurrentConnections int
	// LimitsName names the two bounds above in messages ("the alertmanager
	// cluster's fixed bound").
	LimitsName string

	// Client dials the peers and Server runs the listener's handshakes
	// (bounded by its handshake timeout); both nil for plaintext.
	Client *tlsconfig.Client
	Server *tlsconfig.Server

	// MetricsPrefix names the transport's counters, e.g.
	// "alertmanager_cluster_tcp_transport_".
	MetricsPrefix string
}

// NewTransport binds cfg.ListenAddr and starts accepting. The memberlist
// given it as its Transport shuts it down.
func NewTransport(cfg TransportConfig, logger *slog.Logger, reg prometheus.Registerer) (memberlist.NodeAwareTransport, error) {
	host, portText, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return nil, errors.New(cfg.ListenFlag + "=" + cfg.ListenAddr + ": want ip:port")
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, errors.New(cfg.ListenFlag + "=" + cfg.ListenAddr + ": want ip:port")
	}
	names := settingNames{
		bindAddr:  cfg.ListenFlag,
		advertise: cfg.AdvertiseFlag,
		maxConns:  cfg.LimitsName,
		maxPacket: cfg.LimitsName,
	}
	maxPacket := cfg.MaxPacketSize
	if maxPacket <= 0 || maxPacket > maxFrameSize {
		maxPacket = maxFrameSize
	}
	return newTransport(transportConfig{
		names:        names,
		bindAddrs:    []string{host},
		bindPort:     port,
		dialTimeout:  positive(cfg.DialTimeout, 2*time.Second),
		writeTimeout: positive(cfg.WriteTimeout, 5*time.Second),
		readTimeout:  cfg.PacketReadTimeout,
		maxPacket:    maxPacket,
		maxConns:     cfg.MaxConcurrentConnections,
		client:       cfg.Client,
		server:       cfg.Server,
	}, logger, newTransportMetrics(reg, cfg.MetricsPrefix, cfg.LimitsName))
}

// MemberlistLogger turns the memberlist library's "[LEVEL] memberlist: ..."
// lines into records of logger at the matching level, for a memberlist
// running on NewTransport.
func MemberlistLogger(logger *slog.Logger) *log.Logger { return memberlistLogger(logger) }
