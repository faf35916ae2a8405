// Package dnsaddr resolves the address lists of the query-scheduler links
// (-frontend.scheduler-address, -querier.scheduler-address): comma-separated
// host:port entries, each DNS name standing for every address it resolves
// to, as Cortex resolves its single entry.
package dnsaddr

import (
	"context"
	"fmt"
	"net"
	"strings"
)

// Lookup resolves a host name, as net.Resolver.LookupHost.
type Lookup func(ctx context.Context, host string) ([]string, error)

// Split returns the entries of list, each checked to be host:port; flag
// names the flag in errors.
func Split(flag, list string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(e); err != nil {
			return nil, fmt.Errorf("-%s=%q: entry %q must be host:port: %w", flag, list, e, err)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-%s=%q names no host:port", flag, list)
	}
	return out, nil
}

// Resolve maps every address the entries of list resolve to onto the entry
// it came from, whose name the peer's certificate is verified against. An
// entry that does not resolve fails the whole lookup, so that the caller
// keeps its current addresses.
func Resolve(ctx context.Context, lookup Lookup, flag, list string) (map[string]string, error) {
	entries, err := Split(flag, list)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		host, port, _ := net.SplitHostPort(e)
		if net.ParseIP(host) != nil {
			out[e] = e
			continue
		}
		ips, err := lookup(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolving %q of -%s: %w", host, flag, err)
		}
		for _, ip := range ips {
			out[net.JoinHostPort(ip, port)] = e
		}
	}
	return out, nil
}
