package gossip

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// peer is the outgoing packet connection to one address and its queue.
type peer struct {
	t     *transport
	addr  string
	queue chan []byte
}

// run writes queued packets, dialling on demand, until the connection has
// been idle for peerIdleTimeout or the transport shuts down.
func (p *peer) run() {
	defer p.t.wg.Done()
	var conn *packetConn
	defer func() {
		if conn != nil {
			conn.close()
		}
	}()
	idle := time.NewTimer(peerIdleTimeout)
	defer idle.Stop()
	for {
		var gone <-chan struct{}
		if conn != nil {
			gone = conn.gone
		}
		select {
		case <-p.t.done:
			return
		case <-gone:
			conn.close()
			conn = nil
		case b := <-p.queue:
			conn = p.send(conn, b)
			idle.Reset(peerIdleTimeout)
		case <-idle.C:
			p.t.mu.Lock()
			if len(p.queue) == 0 {
				delete(p.t.peers, p.addr)
				p.t.mu.Unlock()
				return
			}
			p.t.mu.Unlock()
			idle.Reset(peerIdleTimeout)
		}
	}
}

// send writes one packet, dialling if needed. A reused connection may have
// died unnoticed, so a failed write on one is retried once on a fresh one.
func (p *peer) send(conn *packetConn, b []byte) *packetConn {
	for attempt := 0; attempt < 2; attempt++ {
		fresh := conn == nil
		if fresh {
			var err error
			if conn, err = p.open(); err != nil {
				p.t.metrics.packetErrors.Inc()
				p.t.refusal.log(p.t.logger, p.addr, err)
				return nil
			}
		}
		err := conn.write(b, p.t.cfg.writeTimeout)
		if err == nil {
			p.t.metrics.packetsOut.Inc()
			p.t.metrics.packetBytesOut.Add(float64(len(b)))
			return conn
		}
		conn.close()
		conn = nil
		if fresh {
			p.t.metrics.packetErrors.Inc()
			p.t.refusal.log(p.t.logger, p.addr, fmt.Errorf("gossip packet to %s: %w", p.addr, err))
			return nil
		}
	}
	return nil
}

func (p *peer) open() (*packetConn, error) {
	raw, err := p.t.dial(p.addr, p.t.cfg.dialTimeout)
	if err != nil {
		return nil, err
	}
	p.t.mu.Lock()
	from := p.t.advertise
	p.t.mu.Unlock()
	header := append([]byte{kindPackets}, appendString(nil, from)...)
	_ = raw.SetWriteDeadline(time.Now().Add(p.t.cfg.writeTimeout))
	if _, err := raw.Write(header); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("gossip packet connection to %s: %w", p.addr, err)
	}
	c := &packetConn{conn: raw, gone: make(chan struct{})}
	go c.watch(p.t, p.addr)
	return c, nil
}

// packetConn is an outgoing packet connection. The peer never writes on it,
// so a read returning means the peer closed it or refused us (under TLS 1.3
// a server refuses a client certificate after the client's handshake ended).
type packetConn struct {
	conn      net.Conn
	gone      chan struct{}
	closeOnce sync.Once
}

func (c *packetConn) watch(t *transport, addr string) {
	_, err := io.Copy(io.Discard, c.conn)
	if err != nil && !isClosed(err) {
		t.refusal.log(t.logger, addr, fmt.Errorf("gossip packet connection to %s: %w", addr, err))
	}
	close(c.gone)
}

func (c *packetConn) write(b []byte, timeout time.Duration) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	// One Write per packet: a TLS record each, rather than two.
	_, err := c.conn.Write(append(hdr[:], b...))
	return err
}

func (c *packetConn) close() { c.closeOnce.Do(func() { _ = c.conn.Close() }) }
