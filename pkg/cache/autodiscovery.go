package cache

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// autoDiscoveryInterval is how often the cluster's nodes are asked for
// again: Thanos' DNS provider update interval, which Cortex does not set.
const autoDiscoveryInterval = 10 * time.Second

// dialFunc dials one memcached address, through TLS when configured.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// autoDiscovery finds the nodes of a memcached cluster from its
// configuration endpoints with the "config get cluster" command (AWS
// ElastiCache's auto-discovery, which Thanos implements), in place of
// taking the addresses as the nodes.
type autoDiscovery struct {
	endpoints []string
	dial      dialFunc
	timeout   time.Duration
	logger    *slog.Logger

	// firstMu makes callers take turns resolving while no node is known.
	firstMu   sync.Mutex
	mu        sync.Mutex
	nodes     []string
	resolved  time.Time // of the last success; zero: none yet
	attempted time.Time // of the last resolution
	resolving bool
}

// addresses returns the nodes last discovered, asking the endpoints again
// when that was longer ago than autoDiscoveryInterval: in the background
// once some are known; before returning while none are, callers then
// waiting for one resolution rather than each finding no server.
func (d *autoDiscovery) addresses() []string {
	d.mu.Lock()
	if d.resolved.IsZero() {
		d.mu.Unlock()
		d.firstMu.Lock()
		defer d.firstMu.Unlock()
		d.mu.Lock()
		// An endpoint down is asked again a second later, not by every
		// operation meanwhile: those find no server, a miss.
		if d.resolved.IsZero() && time.Since(d.attempted) >= time.Second {
			d.mu.Unlock()
			d.resolve()
			d.mu.Lock()
		}
		defer d.mu.Unlock()
		return d.nodes
	}
	if time.Since(d.resolved) >= autoDiscoveryInterval && !d.resolving {
		d.resolving = true
		go d.resolve()
	}
	defer d.mu.Unlock()
	return d.nodes
}

// resolve asks every endpoint for its cluster's nodes; the union of the
// answers replaces the nodes, unless none answered.
func (d *autoDiscovery) resolve() {
	var (
		nodes []string
		seen  = map[string]bool{}
		ok    bool
	)
	for _, ep := range d.endpoints {
		got, err := d.configGetCluster(ep)
		if err != nil {
			d.logger.Warn("memcached auto-discovery failed", "address", ep, "err", err)
			continue
		}
		ok = true
		for _, n := range got {
			if !seen[n] {
				seen[n] = true
				nodes = append(nodes, n)
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resolving = false
	d.attempted = time.Now()
	if ok {
		d.nodes, d.resolved = nodes, time.Now()
	}
}

// configGetCluster sends "config get cluster" to an endpoint and parses
// the answer, as Thanos does:
//
//	CONFIG cluster 0 <payload length>
//	<config version>
//	<host>|<ip>|<port> <host>|<ip>|<port> ...
//
//	END
//
// Nodes are dialled by host name, which TLS certificates are checked
// against.
func (d *autoDiscovery) configGetCluster(endpoint string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout+time.Second)
	defer cancel()
	conn, err := d.dial(ctx, "tcp", endpoint)
	if err != nil {
		return nil, err
	}
	defer conn.Close() //nolint:errcheck // the read's error is the one that matters
	_ = conn.SetDeadline(time.Now().Add(d.timeout + time.Second))
	if _, err := conn.Write([]byte("config get cluster\n")); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	meta, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("reading config metadata: %w", err)
	}
	fields := strings.Fields(meta)
	if len(fields) != 4 || fields[0] != "CONFIG" {
		return nil, fmt.Errorf("unexpected answer to config get cluster: %q", strings.TrimSpace(meta))
	}
	size, err := strconv.Atoi(fields[3])
	if err != nil {
		return nil, fmt.Errorf("config metadata %q: payload length: %w", strings.TrimSpace(meta), err)
	}
	version, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("reading config version: %w", err)
	}
	if _, err := strconv.Atoi(strings.TrimSpace(version)); err != nil {
		return nil, fmt.Errorf("config version %q: %w", strings.TrimSpace(version), err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("reading nodes: %w", err)
	}
	if len(version)+len(line) != size {
		return nil, fmt.Errorf("expected %d bytes of config payload, got %d", size, len(version)+len(line))
	}
	var nodes []string
	for n := range strings.FieldsSeq(line) {
		parts := strings.Split(n, "|")
		if len(parts) != 3 {
			return nil, fmt.Errorf("node %q not in host|ip|port form", n)
		}
		if _, err := strconv.Atoi(parts[2]); err != nil {
			return nil, fmt.Errorf("node %q: port: %w", n, err)
		}
		host := parts[0]
		if host == "" {
			host = parts[1]
		}
		nodes = append(nodes, net.JoinHostPort(host, parts[2]))
	}
	return nodes, nil
}
