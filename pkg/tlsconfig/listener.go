package tlsconfig

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// Listener wraps a TCP listener so that Accept returns connections whose TLS
// handshake already succeeded. Handshakes run concurrently, off the accept
// loop, so a slow or hostile client cannot stall others; failed ones are
// classified and logged by the Server.
func (s *Server) Listener(inner net.Listener, nextProtos []string) net.Listener {
	l := &tlsListener{Listener: inner, s: s, protos: nextProtos, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

type tlsListener struct {
	net.Listener
	s      *Server
	protos []string
	conns  chan net.Conn
	done   chan struct{}

	closeOnce sync.Once
	mu        sync.Mutex
	err       error
}

func (l *tlsListener) acceptLoop() {
	for {
		raw, err := l.Listener.Accept()
		if ne, ok := err.(interface{ Temporary() bool }); ok && ne.Temporary() {
			// Out of file descriptors and the like: wait as net/http does.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			l.closeOnce.Do(func() { close(l.done) })
			return
		}
		go func() {
			conn, err := l.s.Handshake(raw, l.protos)
			if err != nil {
				return
			}
			select {
			case l.conns <- conn:
			case <-l.done:
				_ = conn.Close()
			}
		}()
	}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err == nil {
			return nil, net.ErrClosed
		}
		return nil, l.err
	}
}

func (l *tlsListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// GRPCCredentials returns transport credentials for a gRPC server that
// handshake with the Server's live certificate, CA bundle and peer checks.
func (s *Server) GRPCCredentials() credentials.TransportCredentials {
	return serverCreds{s: s}
}

type serverCreds struct{ s *Server }

func (c serverCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, err := c.s.Handshake(raw, []string{"h2"})
	if err != nil {
		return nil, nil, err
	}
	return conn, tlsInfo(conn), nil
}

func (serverCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errServerOnly
}

func (serverCreds) Info() credentials.ProtocolInfo {
	// The same ProtocolInfo as grpc's own credentials.NewTLS, which still sets
	// the deprecated SecurityVersion.
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"} //nolint:staticcheck // matches credentials.NewTLS's Info()
}

func (c serverCreds) Clone() credentials.TransportCredentials { return c }

func (serverCreds) OverrideServerName(string) error { return nil }

func tlsInfo(conn *tls.Conn) credentials.TLSInfo {
	return credentials.TLSInfo{
		State:          conn.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}
}

var errServerOnly = errors.New("tlsconfig: server credentials cannot dial")
