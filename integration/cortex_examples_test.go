package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// Cortex's own example configurations (testdata/cortex-examples, copied
// from Cortex's docs/configuration) start unchanged apart from the
// environment: the file paths under /tmp/cortex, the S3 bucket (a
// filesystem directory here), the ports and listen addresses (loopback,
// chosen by the kernel), the instance addresses and the instance IDs of
// processes sharing the host. Those are rewritten as values in the file
// or overridden with flags; no key is removed.

// exampleConfig returns testdata/cortex-examples/<name> with each old
// value replaced by its new one, written under dir, and fails the test if
// a value to replace is missing, so the rewrites cannot go stale.
func exampleConfig(t *testing.T, dir, name string, rewrites ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cortex-examples", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(rewrites); i += 2 {
		if !strings.Contains(s, rewrites[i]) {
			t.Fatalf("%s does not contain %q", name, rewrites[i])
		}
		s = strings.ReplaceAll(s, rewrites[i], rewrites[i+1])
	}
	path := filepath.Join(dir, name)
	testkit.WriteFile(t, path, []byte(s), 0o600)
	return path
}

// exampleDirs makes the directories the examples name under /tmp/cortex
// (now dir) that Cortex expects to exist: the ruler's and the
// alertmanager's local storage.
func exampleDirs(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"rules", "alerts"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

// exampleFlags are the environment's flags: loopback listeners on kernel
// chosen ports and a loopback instance address.
func exampleFlags(configFile string, more ...string) []string {
	return append(append([]string{"-config.file=" + configFile}, testkit.LoopbackFlags()...),
		append([]string{"-ingester.lifecycler.addr=127.0.0.1"}, more...)...)
}

// examplePush sends n series named name as Prometheus' remote write 1.0
// does, with no tenant header (the examples disable auth).
func examplePush(t *testing.T, client *http.Client, base, name string, n int, ts int64) {
	t.Helper()
	req := &prompb.WriteRequest{}
	for i := range n {
		req.Timeseries = append(req.Timeseries, series(name, i, ts, float64(i)))
	}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	httpReq, _ := http.NewRequest("POST", base+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
	httpReq.Header.Set("Content-Encoding", "snappy")
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	httpReq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := client.Do(httpReq)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		t.Fatalf("push to %s: %d %s", base, resp.StatusCode, body)
	}
}

// exampleQuery returns the value of an instant query that must have one
// result.
func exampleQuery(client *http.Client, base, query string, ts int64) (string, error) {
	params := url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(ts)/1000, 'f', 3, 64)}}
	resp, err := client.Get(base + "/prometheus/api/v1/query?" + params.Encode())
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out promResponse
	if err := json.Unmarshal(body, &out); err != nil || out.Status != "success" {
		return "", fmt.Errorf("%s: %d %s", query, resp.StatusCode, body)
	}
	if len(out.Data.Result) != 1 {
		return "", fmt.Errorf("%s: %d results, want 1: %s", query, len(out.Data.Result), body)
	}
	return fmt.Sprint(out.Data.Result[0].Value[1]), nil
}

// expectSum polls until sum(name) at ts, asked of base, is want.
func expectSum(t *testing.T, p *testkit.Cortex, client *http.Client, base, name string, ts int64, want string) {
	t.Helper()
	p.EventuallyNil(30*time.Second, fmt.Sprintf("sum(%s) = %s from %s", name, want, base), func() error {
		got, err := exampleQuery(client, base, "sum("+name+")", ts)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("sum(%s) = %s, want %s", name, got, want)
		}
		return nil
	})
}

// checkPrintConfig runs -print.config on file: the output is in Cortex's
// layout, holds the file's values, and prints the same when loaded back.
func checkPrintConfig(t *testing.T, dir, file string) {
	t.Helper()
	code, out := testkit.RunCortex(t, "-config.file="+file, "-print.config")
	if code != 0 {
		t.Fatalf("-print.config: exit %d: %s", code, out)
	}
	for _, want := range []string{"\ningester_client:\n", "\n  grpc_client_config:\n", "\n    grpc_compression: gzip\n", "\n  match_max_concurrent: true\n", "\n  pool:\n    health_check_ingesters: true\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("-print.config output lacks %q:\n%s", want, out)
		}
	}
	printed := filepath.Join(dir, "printed.yaml")
	testkit.WriteFile(t, printed, []byte(out), 0o600)
	if code, again := testkit.RunCortex(t, "-config.file="+printed, "-print.config"); code != 0 || again != out {
		t.Errorf("-print.config of the printed configuration: exit %d, same output %v:\n%s", code, again == out, again)
	}
}

// TestCortexExamplesSingleProcess starts each of Cortex's single-process
// examples, pushes ten series and reads their sum back.
func TestCortexExamplesSingleProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		rewrites func(dir string) []string
		flags    func(dir string) []string
	}{
		{
			name: "single-process-config-blocks.yaml",
			// The S3 bucket becomes a filesystem directory.
			rewrites: func(dir string) []string {
				return []string{"/tmp/cortex", dir, "backend: s3", "backend: filesystem"}
			},
			flags: func(dir string) []string {
				return []string{"-blocks-storage.filesystem.dir=" + filepath.Join(dir, "blocks")}
			},
		},
		{
			name:     "single-process-config-blocks-local.yaml",
			rewrites: func(dir string) []string { return []string{"/tmp/cortex", dir} },
			flags:    func(string) []string { return nil },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			exampleDirs(t, dir)
			file := exampleConfig(t, dir, tc.name, tc.rewrites(dir)...)
			checkPrintConfig(t, dir, file)
			p := testkit.StartCortexArgs(t, exampleFlags(file, tc.flags(dir)...)...)
			client := &http.Client{Timeout: 10 * time.Second}
			base := "http://" + p.HTTPAddr
			p.WaitReady(client, base+"/ready")
			ts := time.Now().Add(-time.Minute).UnixMilli()
			examplePush(t, client, base, "example_metric", 10, ts)
			expectSum(t, p, client, base, "example_metric", ts, "45")
		})
	}
}

// TestCortexExampleTLS starts Cortex's TLS example, whose gRPC server
// requires client certificates that the ingester client and the querier's
// worker present, with certificates at the paths it names.
func TestCortexExampleTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	exampleDirs(t, dir)
	pki := testkit.NewPKI(t, "root")
	pki.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(t, "client", certgen.Options{CommonName: "client", DNSNames: []string{"localhost"}, IPs: testkit.LoopbackIPs()})
	rewrites := []string{"/tmp/cortex", dir, "backend: s3", "backend: filesystem"}
	for _, f := range []string{"server.crt", "server.key", "client.crt", "client.key", "root.crt"} {
		rewrites = append(rewrites, `"`+f+`"`, `"`+filepath.Join(pki.Dir, f)+`"`)
	}
	file := exampleConfig(t, dir, "single-process-config-blocks-tls.yaml", rewrites...)
	p := testkit.StartCortexArgs(t, exampleFlags(file, "-blocks-storage.filesystem.dir="+filepath.Join(dir, "blocks"))...)
	client := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + p.HTTPAddr
	p.WaitReady(client, base+"/ready")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	examplePush(t, client, base, "example_tls_metric", 10, ts)
	expectSum(t, p, client, base, "example_tls_metric", ts, "45")

	// The gRPC server requires a client certificate of the example's CA.
	if status, err := grpcHealth(t, tlsClient(t, clientConfig(pki.Dir, "client")), p.GRPCAddr); err != nil {
		t.Fatalf("gRPC health with the example's client certificate: %v (%v)", err, status)
	}
	noCert := clientConfig(pki.Dir, "client")
	noCert.CertPath, noCert.KeyPath = "", ""
	if _, err := grpcHealth(t, tlsClient(t, noCert), p.GRPCAddr); err == nil {
		t.Fatal("the gRPC server answered a client without a certificate")
	}
}

// freeLoopbackPort returns a port of 127.0.0.1 that was free a moment ago.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestCortexExamplesGossip starts Cortex's two gossip examples, which form
// one ring of two ingesters over memberlist: series pushed to either
// process spread over both ingesters, and each process's querier reads
// all of them.
func TestCortexExamplesGossip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	exampleDirs(t, dir)
	// The examples gossip on fixed ports and join each other there: each
	// gets a free loopback port instead (the kernel's pick, released just
	// before the process binds it again), and both start at once, retrying
	// their joins until the other listens.
	ports := map[string]string{"7946": freeLoopbackPort(t), "7947": freeLoopbackPort(t)}
	start := func(i int, bind, join string) *testkit.Cortex {
		name := fmt.Sprintf("single-process-config-blocks-gossip-%d.yaml", i)
		file := exampleConfig(t, dir, name, "/tmp/cortex", dir,
			"bind_port: "+bind, "bind_port: "+ports[bind],
			"localhost:"+join, "127.0.0.1:"+ports[join])
		id := strconv.Itoa(i)
		return testkit.StartCortexArgs(t, exampleFlags(file,
			"-memberlist.bind-addr=127.0.0.1",
			"-store-gateway.sharding-ring.instance-id=store-gateway-"+id, "-store-gateway.sharding-ring.instance-addr=127.0.0.1",
			"-ruler.ring.instance-id=ruler-"+id, "-ruler.ring.instance-addr=127.0.0.1",
			"-compactor.ring.instance-id=compactor-"+id, "-compactor.ring.instance-addr=127.0.0.1",
		)...)
	}
	p1 := start(1, "7946", "7947")
	p2 := start(2, "7947", "7946")
	client := &http.Client{Timeout: 10 * time.Second}
	procs := []*testkit.Cortex{p1, p2}
	// The store-gateways wait for their ring to be stable for a minute
	// (Cortex's -store-gateway.sharding-ring.wait-stability-min-duration),
	// and the ingesters join after 10s and observe for 10s, as the examples
	// set: the processes are ready after a minute and more.
	for _, p := range procs {
		p.EventuallyNil(3*time.Minute, p.HTTPAddr+"/ready answering 200", func() error {
			if code, body := tryGet(client, "http://"+p.HTTPAddr+"/ready"); code != http.StatusOK {
				return fmt.Errorf("last answer %d %s", code, body)
			}
			return nil
		})
	}
	for _, p := range procs {
		p.EventuallyNil(60*time.Second, p.HTTPAddr+" to see both ingesters ACTIVE", func() error {
			req, _ := http.NewRequest("GET", "http://"+p.HTTPAddr+"/ingester/ring", nil)
			req.Header.Set("Accept", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			page, _ := io.ReadAll(resp.Body)
			if strings.Count(string(page), `"state":"ACTIVE"`) != 2 || !strings.Contains(string(page), "Ingester 1") || !strings.Contains(string(page), "Ingester 2") {
				return fmt.Errorf("ring page: %s", page)
			}
			return nil
		})
	}
	ts := time.Now().Add(-time.Minute).UnixMilli()
	examplePush(t, client, "http://"+p1.HTTPAddr, "example_gossip_metric", 20, ts)
	examplePush(t, client, "http://"+p2.HTTPAddr, "example_gossip_other", 20, ts)
	for _, p := range procs {
		base := "http://" + p.HTTPAddr
		expectSum(t, p, client, base, "example_gossip_metric", ts, "190")
		expectSum(t, p, client, base, "example_gossip_other", ts, "190")
	}
	// Replication factor 1 over one ring: each ingester holds some of the
	// series and none holds all of them.
	for _, p := range procs {
		_, body := tryGet(client, "http://"+p.HTTPAddr+"/metrics")
		held := 0.0
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "cortex_ingester_memory_series ") {
				held, _ = strconv.ParseFloat(strings.TrimPrefix(l, "cortex_ingester_memory_series "), 64)
			}
		}
		if held <= 0 || held >= 40 {
			t.Errorf("%s holds %v series of 40, want some but not all", p.HTTPAddr, held)
		}
	}
}
