package gossip

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/grafana/dskit/kv"
	dskitml "github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

const ringKey = "ring"

// mutualTLS is the configuration the wiring gives a member: one key pair
// for both halves, client certificates required and checked against caPath.
func mutualTLS(caPath, certPath, keyPath string) *TLSConfig {
	return &TLSConfig{
		Client: tlsconfig.ClientConfig{CertPath: certPath, KeyPath: keyPath, CAPath: caPath, MinVersion: "VersionTLS12", CommonNameFallback: true},
		Server: tlsconfig.ServerConfig{CertPath: certPath, KeyPath: keyPath, CAPath: caPath, ClientAuth: "RequireAndVerifyClientCert"},
	}
}

// fromFlags is what TLSConfigFromFlags makes of -memberlist.tls-ca-path,
// -memberlist.tls-cert-path and -memberlist.tls-key-path.
func fromFlags(caPath, certPath, keyPath string) *TLSConfig {
	var tr dskitml.TCPTransportConfig
	tr.TLS.CertPath, tr.TLS.KeyPath, tr.TLS.CAPath = certPath, keyPath, caPath
	c := TLSConfigFromFlags(tr)
	return &c
}

type nodeOptions struct {
	tls              *TLSConfig // nil: plaintext
	join             []string
	abortIfJoinFails bool
	configure        func(*Config)
}

// node is one gossip member with its own registry, TLS loader and log.
type node struct {
	name   string
	kv     *KV
	client kv.Client
	reg    *prometheus.Registry
	loader *tlsconfig.Loader
	logs   *testkit.Buffer
}

// testConfig is dskit's flag defaults with intervals short enough for tests.
func testConfig(name string, join []string) Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet(name, flag.PanicOnError))
	cfg.NodeName = name
	cfg.TCPTransport.BindAddrs = []string{"127.0.0.1"}
	cfg.TCPTransport.BindPort = 0
	cfg.GossipInterval = 50 * time.Millisecond
	cfg.PushPullInterval = 200 * time.Millisecond
	cfg.JoinMembers = join
	cfg.MinJoinBackoff = 50 * time.Millisecond
	cfg.MaxJoinBackoff = 200 * time.Millisecond
	cfg.MaxJoinRetries = 3
	cfg.LeaveTimeout = 2 * time.Second
	cfg.BroadcastTimeoutForLocalUpdatesOnShutdown = time.Second
	return cfg
}

// newNode builds a member; start it with start.
func newNode(t *testing.T, name string, opts nodeOptions) *node {
	t.Helper()
	n := &node{name: name, reg: prometheus.NewRegistry(), logs: &testkit.Buffer{}}
	logger := n.logs.Logger().With("node", name)
	n.loader = tlsconfig.NewLoader(logger, n.reg)
	cfg := testConfig(name, opts.join)
	cfg.AbortIfJoinFails = opts.abortIfJoinFails
	if opts.configure != nil {
		opts.configure(&cfg)
	}
	var tlsCfg TLSConfig
	if opts.tls != nil {
		tlsCfg = *opts.tls
	}
	k, err := New(cfg, tlsCfg, n.loader, logger, n.reg)
	if err != nil {
		t.Fatalf("node %s: %v", name, err)
	}
	n.kv = k
	n.client = k.Client(ring.GetCodec())
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("GOSSIP_TEST_LOGS") != "" { // GOSSIP_TEST_LOGS=1 shows every log
			t.Logf("log of node %s:\n%s", name, n.logs.String())
		}
	})
	return n
}

// start starts the member's service and stops it when the test ends.
func (n *node) start(t *testing.T) error {
	t.Helper()
	// The service's context descends from StartAsync's: it must outlive this call.
	s := n.kv.Service()
	if err := s.StartAsync(context.Background()); err != nil {
		return err
	}
	t.Cleanup(func() { n.stop(t) })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return s.AwaitRunning(ctx)
}

func (n *node) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s := n.kv.Service()
	s.StopAsync()
	if err := s.AwaitTerminated(ctx); err != nil && s.State() != services.Failed {
		t.Errorf("stopping node %s: %v", n.name, err)
	}
}

func startNode(t *testing.T, name string, opts nodeOptions) *node {
	t.Helper()
	n := newNode(t, name, opts)
	if err := n.start(t); err != nil {
		t.Fatalf("starting node %s: %v", name, err)
	}
	return n
}

func (n *node) addr() string { return "127.0.0.1:" + strconv.Itoa(n.kv.ListenPort()) }

// addIngester is a CAS function registering an ACTIVE ingester.
func addIngester(id string) func(any) (any, bool, error) {
	return func(in any) (any, bool, error) {
		desc, _ := in.(*ring.Desc)
		if desc == nil {
			desc = ring.NewDesc()
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(id))
		desc.AddIngester(id, id+":9095", "", []uint32{h.Sum32()}, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
		return desc, true, nil
	}
}

// ingesters returns the ingester IDs a node's ring holds, sorted.
func (n *node) ingesters(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	v, err := n.client.Get(ctx, ringKey)
	if err != nil {
		t.Fatalf("node %s: Get: %v", n.name, err)
	}
	return ringIDs(v)
}

func ringIDs(v any) []string {
	desc, _ := v.(*ring.Desc)
	if desc == nil {
		return nil
	}
	var ids []string
	for id := range desc.Ingesters {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (n *node) cas(t *testing.T, f func(any) (any, bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n.client.CAS(ctx, ringKey, f); err != nil {
		t.Fatalf("node %s: CAS: %v", n.name, err)
	}
}

// waitMembers waits until every node sees exactly want members.
func waitMembers(t *testing.T, want int, nodes ...*node) {
	t.Helper()
	testkit.EventuallyNil(t, waitTimeout, fmt.Sprintf("%d gossip members on every node", want), func() error {
		var bad []error
		for _, n := range nodes {
			if m := n.kv.Members(); len(m) != want {
				bad = append(bad, fmt.Errorf("%s sees %v", n.name, m))
			}
		}
		return errors.Join(bad...)
	})
}

// waitIngesters waits until every node's ring holds exactly want.
func waitIngesters(t *testing.T, want []string, nodes ...*node) {
	t.Helper()
	slices.Sort(want)
	testkit.EventuallyNil(t, waitTimeout, fmt.Sprintf("ring %v on every node", want), func() error {
		var bad []error
		for _, n := range nodes {
			if got := n.ingesters(t); !slices.Equal(got, want) {
				bad = append(bad, fmt.Errorf("%s has %v", n.name, got))
			}
		}
		return errors.Join(bad...)
	})
}

// watching returns how many WatchKey calls on key and WatchPrefix calls
// on prefix the node's KV serves.
func (n *node) watching(key, prefix string) int {
	w := &n.kv.watchers
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.keys[key]) + len(w.prefixes[prefix])
}

// dskitConfig is the memberlist configuration New takes.
type dskitConfig = Config

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newLoader() *tlsconfig.Loader {
	return tlsconfig.NewLoader(discardLogger(), prometheus.NewRegistry())
}
