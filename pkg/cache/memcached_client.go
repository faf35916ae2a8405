package cache

import (
	"context"
	"hash/fnv"
	"net"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// NewMemcachedClient returns a gomemcache client over addresses (host:port,
// keys spread over them by hash) dialling through tls, or plaintext when
// tls is nil. timeout bounds each operation.
func NewMemcachedClient(addresses []string, timeout time.Duration, maxIdleConns int, tls *tlsconfig.Client) *memcache.Client {
	return newMemcachedClient(newServerSelector(addresses), timeout, maxIdleConns, tls)
}

func newMemcachedClient(sel *serverSelector, timeout time.Duration, maxIdleConns int, tls *tlsconfig.Client) *memcache.Client {
	client := memcache.NewFromSelector(sel)
	client.Timeout = timeout
	client.MaxIdleConns = max(maxIdleConns, 1)
	client.DialContext = memcachedDialer(timeout, tls)
	return client
}

// memcachedDialer dials memcached addresses through tls, or plaintext when
// tls is nil.
func memcachedDialer(timeout time.Duration, tls *tlsconfig.Client) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		// gomemcache bounds the dial by the operation timeout; a new
		// connection also pays for a TCP and TLS handshake, so it gets a
		// second more than one operation.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+time.Second)
		defer cancel()
		if tls != nil {
			// Dialled per connection with the tlsconfig client, so reloaded
			// certificates and CA bundles apply to the next connection.
			return tls.DialContext(ctx, network, addr, nil)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
}

// serverSelector spreads keys over the addresses by FNV hash. gomemcache's
// own ServerList resolves host names once at start and dials the resulting
// IP, which would check a TLS server certificate against the IP instead of
// the host name given, and never follow a DNS change; this selector hands
// the address to the dialer as written.
type serverSelector struct {
	addrs []net.Addr
	// discovery, when set, gives the addresses instead of addrs.
	discovery *autoDiscovery
}

// hostAddr is a host:port left unresolved.
type hostAddr string

func (a hostAddr) Network() string { return "tcp" }
func (a hostAddr) String() string  { return string(a) }

func newServerSelector(addresses []string) *serverSelector {
	s := &serverSelector{}
	for _, a := range addresses {
		s.addrs = append(s.addrs, hostAddr(a))
	}
	return s
}

// current returns the addresses to use now.
func (s *serverSelector) current() []net.Addr {
	if s.discovery == nil {
		return s.addrs
	}
	nodes := s.discovery.addresses()
	addrs := make([]net.Addr, len(nodes))
	for i, n := range nodes {
		addrs[i] = hostAddr(n)
	}
	return addrs
}

func (s *serverSelector) PickServer(key string) (net.Addr, error) {
	addrs := s.current()
	if len(addrs) == 0 {
		return nil, memcache.ErrNoServers
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return addrs[h.Sum32()%uint32(len(addrs))], nil
}

func (s *serverSelector) Each(f func(net.Addr) error) error {
	for _, a := range s.current() {
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}
