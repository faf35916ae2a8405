package gossip

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// rawPacketConn opens a plaintext packet connection to n and sends the
// sender's address, as a peer's transport does.
func rawPacketConn(t *testing.T, n *node) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", n.addr(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	hello := appendString([]byte{kindPackets}, "127.0.0.1:1")
	if _, err := conn.Write(hello); err != nil {
		t.Fatal(err)
	}
	return conn
}

// closedByPeer waits until the server closes conn, failing after waitTimeout.
func closedByPeer(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the gossip port kept the connection open for %s", waitTimeout)
	}
}

func (n *node) inboundConnections() int {
	tr := n.kv.transport.Load()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.inbound)
}

func TestGossipPortRefusesConnectionsOverTheLimit(t *testing.T) {
	n := startNode(t, "a", nodeOptions{configure: func(cfg *Config) { cfg.MaxConcurrentConnections = 2 }})
	first := rawPacketConn(t, n)
	rawPacketConn(t, n)
	testkit.Eventually(t, waitTimeout, "two inbound connections", func() bool { return n.inboundConnections() == 2 })

	third := rawPacketConn(t, n)
	closedByPeer(t, third)
	if got := testutil.ToFloat64(n.kv.tmetric.connectionsRefused); got != 1 {
		t.Errorf("cortex_memberlist_tcp_transport_rejected_connections_total = %v, want 1", got)
	}
	if !strings.Contains(n.logs.String(), "-memberlist.max-concurrent-connections") {
		t.Errorf("the refusal is not logged naming the flag:\n%s", n.logs.String())
	}

	// A closed connection frees its slot.
	_ = first.Close()
	testkit.Eventually(t, waitTimeout, "the first connection's slot freed", func() bool { return n.inboundConnections() == 1 })
	rawPacketConn(t, n)
	testkit.Eventually(t, waitTimeout, "a new connection accepted", func() bool { return n.inboundConnections() == 2 })
	if got := testutil.ToFloat64(n.kv.tmetric.connectionsRefused); got != 1 {
		t.Errorf("rejected connections = %v after a slot was freed, want still 1", got)
	}
}

func TestGossipPortRefusesPacketsOverTheSizeLimit(t *testing.T) {
	n := startNode(t, "a", nodeOptions{configure: func(cfg *Config) { cfg.MaxPacketSize = 1024 }})
	conn := rawPacketConn(t, n)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 2048)
	if _, err := conn.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	closedByPeer(t, conn)
	if got := testutil.ToFloat64(n.kv.tmetric.packetErrors); got != 1 {
		t.Errorf("packet errors = %v, want 1", got)
	}
	if logs := n.logs.String(); !strings.Contains(logs, "packet of 2048 bytes exceeds the 1024 byte limit (-memberlist.max-packet-size)") {
		t.Errorf("the refusal is not logged with the limit:\n%s", logs)
	}
}

// A peer that starts a packet and stalls is cut off after
// -memberlist.packet-read-timeout, not after the connection's idle time.
func TestGossipPortCutsOffAStalledPacket(t *testing.T) {
	n := startNode(t, "a", nodeOptions{configure: func(cfg *Config) { cfg.PacketReadTimeout = 200 * time.Millisecond }})
	conn := rawPacketConn(t, n)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 100)
	if _, err := conn.Write(append(hdr[:], make([]byte, 10)...)); err != nil {
		t.Fatal(err)
	}
	closedByPeer(t, conn) // the idle allowance is 2 minutes, past waitTimeout
	if got := testutil.ToFloat64(n.kv.tmetric.packetErrors); got != 1 {
		t.Errorf("packet errors = %v, want 1", got)
	}
}

func TestDeletedKeysAreForgottenAfterTheTombstoneTimeout(t *testing.T) {
	n := startNode(t, "a", nodeOptions{configure: func(cfg *Config) { cfg.TombstoneTimeout = 100 * time.Millisecond }})
	n.cas(t, addIngester("x"))
	if err := n.client.Delete(context.Background(), ringKey); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, waitTimeout, "the deleted key swept", func() bool { return n.kv.store.len() == 0 })
}

func TestTransportBoundsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		configure func(*Config)
		want      string
	}{
		{func(c *Config) { c.MaxPacketSize = -1 }, "-memberlist.max-packet-size=-1 must not be negative"},
		{func(c *Config) { c.MaxConcurrentConnections = -1 }, "-memberlist.max-concurrent-connections=-1 must not be negative"},
		{func(c *Config) { c.PacketReadTimeout = -time.Second }, "-memberlist.packet-read-timeout=-1s must not be negative"},
		{func(c *Config) { c.TombstoneTimeout = -time.Second }, "-memberlist.tombstone-timeout=-1s must not be negative"},
	} {
		cfg := testConfig("a", nil)
		tc.configure(&cfg)
		if _, err := New(cfg, TLSConfig{}, newLoader(), discardLogger(), nil); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

// Under TLS, a connection counts against the limit from its accept: ones
// that never start their handshake hold their slots, and the next is
// closed at once rather than left to handshake.
func TestGossipPortCountsHandshakingConnections(t *testing.T) {
	pki := testkit.NewPKI(t, "gossip root")
	member := pki.Server(t, "member")
	n := startNode(t, "a", nodeOptions{
		tls:       mutualTLS(pki.CAPath, member.CertPath, member.KeyPath),
		configure: func(cfg *Config) { cfg.MaxConcurrentConnections = 2 },
	})
	var held []net.Conn
	for range 2 {
		conn, err := net.DialTimeout("tcp", n.addr(), waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		held = append(held, conn)
	}
	testkit.Eventually(t, waitTimeout, "two connections in their handshake", func() bool { return n.inboundConnections() == 2 })

	third, err := net.DialTimeout("tcp", n.addr(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = third.Close() })
	closedByPeer(t, third) // well before the 10s handshake timeout
	if got := testutil.ToFloat64(n.kv.tmetric.connectionsRefused); got != 1 {
		t.Errorf("cortex_memberlist_tcp_transport_rejected_connections_total = %v, want 1", got)
	}

	_ = held[0].Close()
	testkit.Eventually(t, waitTimeout, "the closed connection's slot freed", func() bool { return n.inboundConnections() == 1 })
}
