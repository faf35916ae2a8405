package gossip

import (
	"flag"
	"fmt"
	"time"

	dskitml "github.com/grafana/dskit/kv/memberlist"
)

// Config is Cortex's memberlist block: dskit's gossip settings, so the
// -memberlist.* flags and YAML keep their meaning, plus Cortex's bounds on
// what a peer may make the gossip port hold (connections, packet size, time
// to send a packet) and how long deleted keys are remembered. This
// project's transport, not dskit's, honours them.
type Config struct {
	dskitml.KVConfig `yaml:",inline"`

	TombstoneTimeout         time.Duration `yaml:"tombstone_timeout"`
	PacketReadTimeout        time.Duration `yaml:"packet_read_timeout"`
	MaxPacketSize            int64         `yaml:"max_packet_size"`
	MaxConcurrentConnections int           `yaml:"max_concurrent_connections"`
}

// maxFrameSize bounds one framed packet when -memberlist.max-packet-size is
// 0 (Cortex's "no limit"): a peer still cannot make a member allocate more.
const maxFrameSize = 16 << 20

// RegisterFlags registers dskit's -memberlist.* flags and Cortex's.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.KVConfig.RegisterFlags(f)
	c.registerCortexFlags(f)
}

func (c *Config) registerCortexFlags(f *flag.FlagSet) {
	f.DurationVar(&c.TombstoneTimeout, "memberlist.tombstone-timeout", 5*time.Minute, "How long to keep deleted keys (tombstones) in the KV store, so that a peer that missed the deletion does not bring the key back.")
	f.DurationVar(&c.PacketReadTimeout, "memberlist.packet-read-timeout", 5*time.Second, "Timeout for reading packet data from inbound connections: once a packet's first byte has arrived, the rest must follow within it. 0 = no limit.")
	f.Int64Var(&c.MaxPacketSize, "memberlist.max-packet-size", 1<<20, fmt.Sprintf("Maximum size in bytes of an inbound gossip packet; larger ones close the connection. 0 = the transport's own bound (%d bytes).", maxFrameSize))
	f.IntVar(&c.MaxConcurrentConnections, "memberlist.max-concurrent-connections", 100, "Maximum number of concurrent inbound TCP connections on the gossip port; further connections are closed at once. 0 = no limit.")
}

// packetLimit is the largest packet accepted from a peer.
func (c *Config) packetLimit() int64 {
	if c.MaxPacketSize <= 0 || c.MaxPacketSize > maxFrameSize {
		return maxFrameSize
	}
	return c.MaxPacketSize
}

func (c *Config) validateCortexFlags() error {
	switch {
	case c.TombstoneTimeout < 0:
		return fmt.Errorf("-memberlist.tombstone-timeout=%s must not be negative", c.TombstoneTimeout)
	case c.PacketReadTimeout < 0:
		return fmt.Errorf("-memberlist.packet-read-timeout=%s must not be negative", c.PacketReadTimeout)
	case c.MaxPacketSize < 0:
		return fmt.Errorf("-memberlist.max-packet-size=%d must not be negative", c.MaxPacketSize)
	case c.MaxConcurrentConnections < 0:
		return fmt.Errorf("-memberlist.max-concurrent-connections=%d must not be negative", c.MaxConcurrentConnections)
	}
	return nil
}
