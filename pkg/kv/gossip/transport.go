package gossip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// Every connection starts with one byte saying what follows.
const (
	kindPackets byte = 1 // a sequence of packets from one sender, see packetConn
	kindStream  byte = 2 // one memberlist stream (push/pull, join)
)

// alpnProtocol is offered and required on gossip TLS connections, so that an
// HTTP or gRPC client dialling the gossip port by mistake fails the handshake.
const alpnProtocol = "cortex-gossip"

const (
	// peerIdleTimeout closes an outgoing packet connection nobody used for
	// that long; the reader side waits twice as long before giving up.
	peerIdleTimeout = time.Minute
	// peerQueueSize is how many packets may wait for one peer before new
	// ones are dropped, as memberlist expects of a lossy packet transport.
	peerQueueSize = 256
	// firstByteTimeout bounds how long an accepted connection may stay silent.
	firstByteTimeout = 10 * time.Second
)

type transportConfig struct {
	names        settingNames
	bindAddrs    []string
	bindPort     int
	dialTimeout  time.Duration // -memberlist.packet-dial-timeout
	writeTimeout time.Duration // -memberlist.packet-write-timeout
	readTimeout  time.Duration // -memberlist.packet-read-timeout, 0 none
	maxPacket    int64         // -memberlist.max-packet-size, at most maxFrameSize
	maxConns     int           // -memberlist.max-concurrent-connections, 0 none
	client       *tlsconfig.Client
	server       *tlsconfig.Server
}

// settingNames name the settings behind a transport in its messages: the
// KV's -memberlist.* flags, or those of another memberlist's transport.
type settingNames struct {
	bindAddr  string // "-memberlist.bind-addr"
	bindPort  string // "-memberlist.bind-port"; empty when bindAddr is ip:port
	advertise string // "-memberlist.advertise-addr"
	maxConns  string // "the -memberlist.max-concurrent-connections limit"
	maxPacket string // "-memberlist.max-packet-size"
}

var memberlistNames = settingNames{
	bindAddr:  "-memberlist.bind-addr",
	bindPort:  "-memberlist.bind-port",
	advertise: "-memberlist.advertise-addr",
	maxConns:  "the -memberlist.max-concurrent-connections limit",
	maxPacket: "-memberlist.max-packet-size",
}

func (n settingNames) listener(addr string, port int) string {
	if n.bindPort == "" {
		return n.bindAddr + "=" + net.JoinHostPort(addr, strconv.Itoa(port))
	}
	return fmt.Sprintf("%s=%s %s=%d", n.bindAddr, addr, n.bindPort, port)
}

// transport is a memberlist.NodeAwareTransport over TCP, with mutual TLS when
// configured. Packets to a peer share one long-lived connection (one TLS
// handshake per peer, not per packet); each stream gets its own connection.
// An inbound connection holds one of the connection slots from its accept,
// through its TLS handshake, to its close.
type transport struct {
	cfg     transportConfig
	logger  *slog.Logger
	metrics *transportMetrics
	refusal *onceLog

	listeners []net.Listener
	connSlots chan struct{} // one per inbound connection open; nil: unbounded
	packetCh  chan *memberlist.Packet
	streamCh  chan net.Conn
	done      chan struct{}
	wg        sync.WaitGroup

	mu        sync.Mutex
	advertise string // host:port put in the header of our packet connections
	peers     map[string]*peer
	inbound   map[net.Conn]struct{} // accepted connections not handed to memberlist
	closed    bool
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// newTransport binds every address in cfg.bindAddrs to one port (the first
// bind picks it when cfg.bindPort is 0) and starts accepting.
func newTransport(cfg transportConfig, logger *slog.Logger, m *transportMetrics) (*transport, error) {
	if len(cfg.bindAddrs) == 0 {
		cfg.bindAddrs = []string{"0.0.0.0"}
	}
	if cfg.names == (settingNames{}) {
		cfg.names = memberlistNames
	}
	t := &transport{
		cfg: cfg, logger: logger, metrics: m, refusal: newOnceLog(10 * time.Minute),
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
		peers:    map[string]*peer{},
		inbound:  map[net.Conn]struct{}{},
	}
	if cfg.maxPacket <= 0 {
		t.cfg.maxPacket = maxFrameSize
	}
	if cfg.maxConns > 0 {
		t.connSlots = make(chan struct{}, cfg.maxConns)
	}
	port := cfg.bindPort
	for _, addr := range cfg.bindAddrs {
		if net.ParseIP(addr) == nil {
			t.closeListeners()
			return nil, fmt.Errorf("%s=%q is not an IP address", cfg.names.bindAddr, addr)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			t.closeListeners()
			return nil, fmt.Errorf("gossip listener on %s: %w", cfg.names.listener(addr, port), err)
		}
		if port == 0 {
			port = ln.Addr().(*net.TCPAddr).Port
		}
		t.listeners = append(t.listeners, ln)
	}
	for _, ln := range t.listeners {
		t.wg.Add(1)
		go t.accept(ln)
	}
	return t, nil
}

// port returns the port every listener is bound to.
func (t *transport) port() int {
	return t.listeners[0].Addr().(*net.TCPAddr).Port
}

func (t *transport) closeListeners() {
	for _, ln := range t.listeners {
		_ = ln.Close()
	}
}

// FinalAdvertiseAddr picks the address peers reach us at: the configured
// -memberlist.advertise-addr and -port, else the bind address, else (unspecified
// bind) the first private IP, as dskit does, with the bound port.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	addr, err := t.advertiseIP(ip)
	if err != nil {
		return nil, 0, err
	}
	// -memberlist.advertise-port defaults to 7946 whatever the bind port:
	// like dskit, honour it only along with -memberlist.advertise-addr.
	if ip == "" || port <= 0 {
		port = t.port()
	}
	t.mu.Lock()
	t.advertise = net.JoinHostPort(addr.String(), strconv.Itoa(port))
	t.mu.Unlock()
	return addr, port, nil
}

func (t *transport) advertiseIP(ip string) (net.IP, error) {
	if ip != "" {
		addr := net.ParseIP(ip)
		if addr == nil {
			return nil, fmt.Errorf("%s=%q is not an IP address", t.cfg.names.advertise, ip)
		}
		return addr, nil
	}
	if bound := net.ParseIP(t.cfg.bindAddrs[0]); !bound.IsUnspecified() {
		return bound, nil
	}
	private, err := sockaddr.GetPrivateIP()
	if err != nil {
		return nil, fmt.Errorf("looking for a private IP to advertise: %w", err)
	}
	if private == "" {
		return nil, fmt.Errorf("no private IP address found to advertise: set %s or %s", t.cfg.names.advertise, t.cfg.names.bindAddr)
	}
	return net.ParseIP(private), nil
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }
func (t *transport) StreamCh() <-chan net.Conn           { return t.streamCh }

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// errTransportShutDown answers sends after Shutdown.
var errTransportShutDown = errors.New("gossip transport is shut down")

// WriteToAddress queues a packet for the peer's connection and returns at
// once: memberlist treats packets as lossy, and a slow or dead peer must not
// stall its probe and gossip loops.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	frame := append([]byte(nil), b...) // memberlist may reuse b
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return time.Time{}, errTransportShutDown
	}
	p, ok := t.peers[a.Addr]
	if !ok {
		p = &peer{t: t, addr: a.Addr, queue: make(chan []byte, peerQueueSize)}
		t.peers[a.Addr] = p
		t.wg.Add(1)
		go p.run()
	}
	select {
	case p.queue <- frame:
	default:
		t.metrics.packetsDropped.Inc()
	}
	t.mu.Unlock()
	return time.Now(), nil
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream: a new connection, marked as a stream.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := t.dial(a.Addr, timeout)
	if err != nil {
		t.metrics.streamErrors.Inc()
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte{kindStream}); err != nil {
		_ = conn.Close()
		t.metrics.streamErrors.Inc()
		return nil, fmt.Errorf("gossip stream to %s: %w", a.Addr, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	t.metrics.streamsOut.Inc()
	return conn, nil
}

// dial connects to a peer, with TLS when configured. Errors from the TLS
// client already name the -memberlist.tls-* flag at fault.
func (t *transport) dial(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if t.cfg.client != nil {
		conn, err := t.cfg.client.DialContext(ctx, "tcp", addr, []string{alpnProtocol})
		if err != nil {
			return nil, fmt.Errorf("gossip connection to %s: %w", addr, err)
		}
		return conn, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gossip connection to %s: %w", addr, err)
	}
	return conn, nil
}

// Shutdown stops accepting, closes every connection and waits for the
// transport's goroutines. Streams handed to memberlist are its to close.
func (t *transport) Shutdown() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	for conn := range t.inbound {
		_ = conn.Close()
	}
	t.mu.Unlock()
	t.closeListeners()
	t.wg.Wait()
	return nil
}

func (t *transport) accept(ln net.Listener) {
	defer t.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-t.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.logger.Warn("accepting a gossip connection failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !t.takeSlot() {
			t.metrics.connectionsRefused.Inc()
			t.refusal.log(t.logger, conn.RemoteAddr().String(), fmt.Errorf("gossip connection closed: %d inbound connections are open, %s", t.cfg.maxConns, t.cfg.names.maxConns))
			_ = conn.Close()
			continue
		}
		t.wg.Add(1)
		go t.serve(conn)
	}
}

// takeSlot reserves room for one more inbound connection, false when the
// limit (-memberlist.max-concurrent-connections) is reached: connections
// still in their TLS handshake count.
func (t *transport) takeSlot() bool {
	if t.connSlots == nil {
		return true
	}
	select {
	case t.connSlots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (t *transport) releaseSlot() {
	if t.connSlots != nil {
		<-t.connSlots
	}
}

// streamConn is an inbound stream handed to memberlist: its connection slot
// is freed when memberlist closes it.
type streamConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *streamConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// serve runs the TLS handshake of an accepted connection, when TLS is on,
// then reads its kind byte and dispatches it.
func (t *transport) serve(conn net.Conn) {
	defer t.wg.Done()
	handedOver := false
	defer func() {
		if !handedOver {
			t.releaseSlot()
		}
	}()
	if !t.track(conn) {
		_ = conn.Close()
		return
	}
	if t.cfg.server != nil {
		// The handshake is bounded by the server's handshake timeout; a
		// failed one is counted, logged and closed by the server.
		tlsConn, err := t.cfg.server.Handshake(conn, []string{alpnProtocol})
		t.untrack(conn)
		if err != nil {
			return
		}
		if !t.track(tlsConn) {
			_ = tlsConn.Close()
			return
		}
		conn = tlsConn
	}
	_ = conn.SetReadDeadline(time.Now().Add(firstByteTimeout))
	var kind [1]byte
	if _, err := io.ReadFull(conn, kind[:]); err != nil {
		t.untrack(conn)
		_ = conn.Close()
		return
	}
	switch kind[0] {
	case kindStream:
		// From here on the stream is memberlist's to close.
		t.untrack(conn)
		_ = conn.SetReadDeadline(time.Time{})
		t.metrics.streamsIn.Inc()
		handedOver = true
		stream := &streamConn{Conn: conn, release: t.releaseSlot}
		select {
		case t.streamCh <- stream:
		case <-t.done:
			_ = stream.Close()
		}
	case kindPackets:
		t.readPackets(conn)
		t.untrack(conn)
		_ = conn.Close()
	default:
		t.untrack(conn)
		t.logger.Warn("gossip connection opened with an unknown message kind; is the peer a gossip member of this project?", "peer", conn.RemoteAddr().String(), "kind", kind[0])
		_ = conn.Close()
	}
}

// track records an accepted connection so Shutdown can close it; false
// means the transport is already shut down.
func (t *transport) track(conn net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.inbound[conn] = struct{}{}
	return true
}

func (t *transport) untrack(conn net.Conn) {
	t.mu.Lock()
	delete(t.inbound, conn)
	t.mu.Unlock()
}

// readPackets reads a packet connection: the sender's advertised address,
// then length-prefixed packets until the sender closes it.
func (t *transport) readPackets(conn net.Conn) {
	r := bufio.NewReader(conn)
	t.setPacketDeadline(conn)
	from, err := readString(r)
	if err != nil {
		t.logger.Warn("reading the sender address of a gossip packet connection failed", "peer", conn.RemoteAddr().String(), "err", err)
		return
	}
	for {
		// Between packets the connection may idle; once a packet has
		// begun, it must arrive within -memberlist.packet-read-timeout.
		_ = conn.SetReadDeadline(time.Now().Add(2 * peerIdleTimeout))
		if _, err := r.Peek(1); err != nil {
			if !isClosed(err) && !isTimeout(err) {
				t.metrics.packetErrors.Inc()
				t.logger.Warn("reading a gossip packet failed", "peer", conn.RemoteAddr().String(), "from", from, "err", err)
			}
			return
		}
		t.setPacketDeadline(conn)
		buf, err := readFrame(r, t.cfg.maxPacket, t.cfg.names.maxPacket)
		if err != nil {
			if !isClosed(err) {
				t.metrics.packetErrors.Inc()
				t.logger.Warn("reading a gossip packet failed", "peer", conn.RemoteAddr().String(), "from", from, "err", err)
			}
			return
		}
		t.metrics.packetsIn.Inc()
		t.metrics.packetBytesIn.Add(float64(len(buf)))
		select {
		case t.packetCh <- &memberlist.Packet{Buf: buf, From: advertisedAddr(from), Timestamp: time.Now()}:
		case <-t.done:
			return
		}
	}
}

// setPacketDeadline gives the sender -memberlist.packet-read-timeout to
// finish what it has begun to send.
func (t *transport) setPacketDeadline(conn net.Conn) {
	if t.cfg.readTimeout > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(t.cfg.readTimeout))
	}
}

// advertisedAddr is a peer's advertised address, which memberlist replies to.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }
