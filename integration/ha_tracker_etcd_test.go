package integration

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// etcdServer is a real etcd (Debian's etcd-server) serving its clients over
// TLS and requiring a client certificate of the test's CA.
type etcdServer struct {
	Endpoint string // https://127.0.0.1:<port>
	out      *testkit.Buffer
}

// startEtcd runs etcd on free loopback ports with the server key pair and
// the CA of dir (server.crt, server.key, root.crt), and waits until it
// answers a client that presents dir's client certificate.
func startEtcd(t *testing.T, dir string) *etcdServer {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not on PATH: install Debian's etcd-server (apt-get install etcd-server; .ci/run does) to test the HA tracker over etcd")
	}
	for attempt := 0; ; attempt++ {
		e, err := tryStartEtcd(t, bin, dir)
		if err == nil {
			return e
		}
		if !errors.Is(err, errEtcdPortTaken) || attempt == 4 {
			t.Fatal(err)
		}
	}
}

var errEtcdPortTaken = errors.New("etcd: port already in use")

func tryStartEtcd(t *testing.T, bin, dir string) (*etcdServer, error) {
	client, peer := freePort(t), freePort(t)
	e := &etcdServer{Endpoint: "https://" + client, out: &testkit.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--name=ha-test",
		"--data-dir="+t.TempDir(),
		"--listen-client-urls="+e.Endpoint,
		"--advertise-client-urls="+e.Endpoint,
		"--listen-peer-urls=http://"+peer,
		"--initial-advertise-peer-urls=http://"+peer,
		"--initial-cluster=ha-test=http://"+peer,
		"--cert-file="+filepath.Join(dir, "server.crt"),
		"--key-file="+filepath.Join(dir, "server.key"),
		"--trusted-ca-file="+filepath.Join(dir, "root.crt"),
		"--client-cert-auth",
		"--logger=zap", "--log-outputs=stderr", "--log-level=warn",
	)
	cmd.Stdout, cmd.Stderr = e.out, e.out
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() { cancel(); <-done }

	hc := httpClient(tlsClient(t, clientConfig(dir, "client")))
	deadline := time.Now().Add(testkit.StartTimeout)
	for interval := 10 * time.Millisecond; ; interval = min(2*interval, 500*time.Millisecond) {
		select {
		case <-done:
			if strings.Contains(e.out.String(), "address already in use") {
				return nil, errEtcdPortTaken
			}
			return nil, fmt.Errorf("etcd exited while starting: %s", e.out.String())
		default:
		}
		if code, body := tryGet(hc, e.Endpoint+"/health"); code == 200 && strings.Contains(body, `"health":"true"`) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("etcd did not become healthy in %s: %s", testkit.StartTimeout, e.out.String())
		}
		time.Sleep(interval)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("etcd output:\n%s", e.out.String())
		}
	})
	return e, nil
}

// freePort returns 127.0.0.1:<port> with a port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// etcdFlags are the -<prefix>etcd.* flags of a client of e presenting the
// leaf named leaf of dir. No -<prefix>etcd.tls-enabled: the paths alone
// turn TLS on.
func etcdFlags(prefix string, e *etcdServer, dir, leaf string) []string {
	return []string{
		"-" + prefix + "etcd.endpoints=" + e.Endpoint,
		"-" + prefix + "etcd.dial-timeout=2s",
		"-" + prefix + "etcd.tls-cert-path=" + filepath.Join(dir, leaf+".crt"),
		"-" + prefix + "etcd.tls-key-path=" + filepath.Join(dir, leaf+".key"),
		"-" + prefix + "etcd.tls-ca-path=" + filepath.Join(dir, "root.crt"),
	}
}

// TestHATrackerEtcd runs two distributors sharing the elected replicas in
// a real etcd that serves TLS and requires client certificates of a
// private CA: they agree on the elected replica, the other replica's
// samples get 202, and the other replica is elected after the failover
// timeout. The ingester ring is in the same etcd (-ring.store=etcd). A
// distributor presenting a client certificate of a foreign CA is refused
// by etcd and exits, naming the certificate's flag.
func TestHATrackerEtcd(t *testing.T) {
	pki := testkit.NewPKI(t, "root")
	pki.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	testkit.WritePair(t, pki.Dir, "stranger", testkit.ClientLeaf(t, testkit.NewCA(t, "foreign"), "client"))
	certs := pki.Dir
	etcd := startEtcd(t, certs)

	c := &cluster{t: t, dir: t.TempDir(), certs: certs}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	// The ingester ring lives in the same etcd, under its own prefix: no
	// gossip.
	ringFlags := append(append(append(mtlsFlags(certs), ingesterClientFlags(certs)...),
		"-auth.enabled=true",
		"-ingester.heartbeat-period=1s",
		"-ingester.join-after=0s",
		"-ingester.min-ready-duration=0s",
		"-ingester.observe-period=0s",
		"-log.level=info",
		"-ring.store=etcd",
	), etcdFlags("", etcd, certs, "client")...)
	start := func(flags ...string) *testkit.Cortex {
		return testkit.StartCortex(t, append(append([]string{}, ringFlags...), flags...)...)
	}
	c.ingDirs = []string{filepath.Join(c.dir, "ingester-0")}
	c.ingesters = []*testkit.Cortex{start(
		"-target=ingester",
		"-distributor.replication-factor=1",
		"-ingester.lifecycler.ID=ingester-0",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+c.ingDirs[0],
	)}
	haFlags := []string{
		"-target=distributor",
		"-distributor.replication-factor=1",
		"-distributor.ha-tracker.enable=true",
		"-distributor.ha-tracker.enable-for-all-users=true",
		"-distributor.ha-tracker.store=etcd",
		"-distributor.ha-tracker.update-timeout=1s",
		"-distributor.ha-tracker.update-timeout-jitter-max=0s",
		"-distributor.ha-tracker.failover-timeout=3s",
	}
	distA := start(append(haFlags, etcdFlags("distributor.ha-tracker.", etcd, certs, "client")...)...)
	distB := start(append(haFlags, etcdFlags("distributor.ha-tracker.", etcd, certs, "client")...)...)
	c.querier = start("-target=querier", "-distributor.replication-factor=1")
	for _, p := range []*testkit.Cortex{c.ingesters[0], distA, distB, c.querier} {
		waitReady(p, c.client)
	}
	for _, p := range []*testkit.Cortex{distA, distB, c.querier} {
		c.waitActiveIngesters(p, 1)
	}
	haFailover(t, c, distA, distB, "team-ha")

	// The elections and the ring are etcd's: keys under their prefixes,
	// read with etcd's own API by a client of the private CA.
	for _, key := range []string{"ha-tracker/team-ha/prom", "collectors/ring"} {
		code, body := tryPost(c.client, etcd.Endpoint+"/v3/kv/range", `{"key":"`+b64(key)+`"}`)
		if code != 200 || !strings.Contains(body, `"kvs"`) {
			t.Fatalf("etcd range %s: %d %s", key, code, body)
		}
	}
	if n := metricOf(t, c.client, distA, `cortex_kv_request_duration_seconds_count{kv_name="distributor-hatracker",operation="CAS",role="primary",status_code="200",type="etcd"}`); n < 1 {
		t.Fatalf("distributor A's etcd CAS calls: %v, want at least 1", n)
	}

	// A client certificate of a foreign CA: etcd refuses the handshake and
	// the distributor exits naming the certificate's flag.
	args := append(append(testkit.LoopbackFlags(), ringFlags...), haFlags...)
	args = append(args, etcdFlags("distributor.ha-tracker.", etcd, certs, "stranger")...)
	exit, out := testkit.RunCortex(t, args...)
	want := "-distributor.ha-tracker.etcd: server at 127.0.0.1:"
	wantCert := "the client certificate -distributor.ha-tracker.etcd.tls-cert-path=" + filepath.Join(certs, "stranger.crt")
	if exit == 0 || !strings.Contains(out, want) || !strings.Contains(out, wantCert) {
		t.Fatalf("a distributor refused by etcd: exit %d, want its log to contain %q and %q, got:\n%s", exit, want, wantCert, out)
	}
}

func tryPost(client *http.Client, u, body string) (int, string) {
	resp, err := client.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
