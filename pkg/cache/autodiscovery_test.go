package cache_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// configEndpoint is a cluster configuration endpoint, as AWS ElastiCache
// serves one beside its memcached nodes (memcached itself has no "config
// get cluster"): over TLS, it answers that command with nodes.
func configEndpoint(t *testing.T, nodes string) (addr, caPath string, asked *atomic.Int64) {
	t.Helper()
	pki := testkit.NewPKI(t, "endpoint-ca")
	leaf := pki.Server(t, "config-endpoint")
	cert, err := tls.LoadX509KeyPair(leaf.CertPath, leaf.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	ln := tls.NewListener(testkit.Listen(t), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	t.Cleanup(func() { _ = ln.Close() })
	asked = &atomic.Int64{}
	payload := "12\n" + nodes + "\n"
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err != nil || strings.TrimSpace(line) != "config get cluster" {
					_, _ = fmt.Fprintf(conn, "ERROR\r\n")
					return
				}
				asked.Add(1)
				_, _ = fmt.Fprintf(conn, "CONFIG cluster 0 %d\r\n%s\r\nEND\r\n", len(payload), payload)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return net.JoinHostPort("localhost", port), pki.CAPath, asked
}

// With -auto-discovery the addresses are configuration endpoints: the
// client asks them for the cluster's nodes and reads and writes there.
func TestMemcachedAutoDiscovery(t *testing.T) {
	mc := cachetest.StartMemcachedTLS(t)
	_, mcPort, _ := net.SplitHostPort(mc.Addr)
	endpoint, endpointCA, asked := configEndpoint(t, "localhost|127.0.0.1|"+mcPort)

	// One bundle trusting the endpoint's and memcached's CAs.
	var bundle []byte
	for _, p := range []string{mc.CAPath, endpointCA} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, b...)
	}
	caPath := filepath.Join(t.TempDir(), "ca.crt")
	testkit.WriteFile(t, caPath, bundle, 0o644)

	cfg := defaultConfig(t)
	cfg.Addresses = endpoint
	cfg.AutoDiscovery = true
	cfg.Timeout = 5 * time.Second
	cfg.TLS.CAPath = caPath
	tlsClient, err := tlsconfig.NewClient(prefix, cfg.TLS, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	c := cache.NewMemcached("test-cache", cfg, tlsClient, nil, prometheus.NewPedanticRegistry())
	c.Store(map[string][]byte{"k": []byte("v")}, time.Hour)
	testkit.Eventually(t, 10*time.Second, "the value written to the discovered node", func() bool {
		return string(c.Fetch(context.Background(), []string{"k"})["k"]) == "v"
	})
	if asked.Load() == 0 {
		t.Fatal("the configuration endpoint was never asked")
	}

	// The value is in the real memcached, read without discovery.
	direct := defaultConfig(t)
	direct.Addresses = mc.Addr
	direct.Timeout = 5 * time.Second
	direct.TLS.CAPath = mc.CAPath
	directTLS, err := tlsconfig.NewClient(prefix, direct.TLS, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cache.NewMemcached("direct", direct, directTLS, nil, prometheus.NewPedanticRegistry()).Fetch(context.Background(), []string{"k"}); string(got["k"]) != "v" {
		t.Fatalf("memcached itself holds %q", got["k"])
	}
}
