// Package grpcpool keeps one gRPC connection per peer address, made on
// first use and closed when the peer leaves: the pools of the components
// that call their own kind over a ring (ruler to ruler, alertmanager to
// alertmanager).
//
// It knows no component: it must not import other packages of this module.
package grpcpool

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Pool holds the connections of one client link.
type Pool struct {
	name string
	opts []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// New returns an empty pool whose connections dial with opts, plus
// keepalives that find a dead peer within half a minute. name ("ruler",
// "alertmanager") names the peers in dial errors.
func New(name string, opts ...grpc.DialOption) *Pool {
	opts = append(slices.Clone(opts),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}))
	return &Pool{name: name, opts: opts, conns: map[string]*grpc.ClientConn{}}
}

// Conn returns the connection to addr, creating it the first time (it
// connects at the first call).
func (p *Pool) Conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("%s client for %s: %w", p.name, addr, err)
	}
	p.conns[addr] = cc
	return cc, nil
}

// Retain closes the connections to the addresses not in addrs (peers that
// left the ring).
func (p *Pool) Retain(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, cc := range p.conns {
		if !slices.Contains(addrs, addr) {
			_ = cc.Close()
			delete(p.conns, addr)
		}
	}
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for addr, cc := range p.conns {
		errs = append(errs, cc.Close())
		delete(p.conns, addr)
	}
	return errors.Join(errs...)
}
