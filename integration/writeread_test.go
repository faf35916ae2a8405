package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// cluster is a distributor, three ingesters and a querier, each its own
// process, with mutual TLS on every HTTP and gRPC server and client.
type cluster struct {
	t           *testing.T
	dir         string
	certs       string
	ingesters   []*process
	ingDirs     []string
	mlPorts     []int
	distributor *process
	querier     *process
	client      *http.Client
}

func (c *cluster) commonFlags(mlPort int) []string {
	certs := c.certs
	flags := append(mtlsFlags(certs),
		"-auth.enabled=true",
		"-ring.store=memberlist",
		"-memberlist.bind-addr=127.0.0.1",
		"-memberlist.bind-port="+itoa(mlPort),
		"-memberlist.join=127.0.0.1:"+itoa(c.mlPorts[0]),
		// No -memberlist.tls-enabled: the paths alone turn TLS on.
		"-memberlist.tls-cert-path="+filepath.Join(certs, "client.crt"),
		"-memberlist.tls-key-path="+filepath.Join(certs, "client.key"),
		"-memberlist.tls-ca-path="+filepath.Join(certs, "root.crt"),
		"-memberlist.tls-server-name=localhost",
		"-ingester.client.tls-cert-path="+filepath.Join(certs, "client.crt"),
		"-ingester.client.tls-key-path="+filepath.Join(certs, "client.key"),
		"-ingester.client.tls-ca-path="+filepath.Join(certs, "root.crt"),
		"-distributor.replication-factor=3",
		"-ingester.heartbeat-period=1s",
		"-ingester.join-after=0s",
		"-ingester.min-ready-duration=0s",
		"-ingester.observe-period=0s",
		"-log.level=info",
	)
	return flags
}

func (c *cluster) startIngester(i int) *process {
	flags := append(c.commonFlags(c.mlPorts[i]),
		"-target=ingester",
		"-ingester.lifecycler.ID=ingester-"+itoa(i),
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+c.ingDirs[i],
	)
	return start(c.t, flags...)
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	for i := 0; i < 5; i++ {
		c.mlPorts = append(c.mlPorts, freePort(t))
	}
	for i := 0; i < 3; i++ {
		c.ingDirs = append(c.ingDirs, filepath.Join(c.dir, "ingester-"+itoa(i)))
		c.ingesters = append(c.ingesters, c.startIngester(i))
	}
	c.distributor = start(t, append(c.commonFlags(c.mlPorts[3]), "-target=distributor")...)
	c.querier = start(t, append(c.commonFlags(c.mlPorts[4]), "-target=querier")...)
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	for _, p := range append([]*process{c.distributor, c.querier}, c.ingesters...) {
		p.waitReady(c.client, "https://"+p.httpAddr()+"/ready")
	}
	c.waitActiveIngesters(c.distributor, 3)
	c.waitActiveIngesters(c.querier, 3)
	return c
}

// waitActiveIngesters waits until p's view of the ring has n ACTIVE ingesters.
func (c *cluster) waitActiveIngesters(p *process, n int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "https://"+p.httpAddr()+"/ingester/ring", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := c.client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(body)
			if strings.Count(last, `"state":"ACTIVE"`) == n {
				return
			}
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("%s never saw %d ACTIVE ingesters; last ring page: %s", p.httpAddr(), n, last)
}

// push sends a remote-write 1.0 request as Prometheus does.
func (c *cluster) push(tenantID string, req *prompb.WriteRequest) (int, string) {
	c.t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	httpReq, _ := http.NewRequest("POST", "https://"+c.distributor.httpAddr()+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
	httpReq.Header.Set("Content-Encoding", "snappy")
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	httpReq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	httpReq.Header.Set("X-Scope-OrgID", tenantID)
	resp, err := c.client.Do(httpReq)
	if err != nil {
		c.t.Fatalf("push: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

type promResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
			Values [][]any           `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

func (c *cluster) query(tenantID, path string, params url.Values) promResponse {
	c.t.Helper()
	req, _ := http.NewRequest("GET", "https://"+c.querier.httpAddr()+"/prometheus/api/v1/"+path+"?"+params.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", tenantID)
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("query: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out promResponse
	if err := json.Unmarshal(body, &out); err != nil || out.Status != "success" {
		c.t.Fatalf("query %s %v: %d %s", path, params, resp.StatusCode, body)
	}
	return out
}

func series(name string, i int, ts int64, v float64) prompb.TimeSeries {
	return prompb.TimeSeries{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "test"}, {Name: "series", Value: strconv.Itoa(i)}},
		Samples: []prompb.Sample{{Timestamp: ts, Value: v}},
	}
}

// TestWriteReadPathMutualTLS is issue 3's integration test: real processes,
// memberlist ring, replication factor 3, mutual TLS everywhere.
func TestWriteReadPathMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	c := newCluster(t)
	// Every process gossips with the others over mutual TLS.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, page := get(t, c.client, "https://"+c.ingesters[0].httpAddr()+"/memberlist")
		if n := strings.Count(page, "\n") - 2; n == 5 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("/memberlist of ingester 0 lists %d members, want 5:\n%s", n, page)
		}
		time.Sleep(200 * time.Millisecond)
	}
	const nSeries = 50
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()

	// Ten scrapes of fifty series, acknowledged one request at a time.
	for step := int64(0); step < 10; step++ {
		req := &prompb.WriteRequest{}
		for i := 0; i < nSeries; i++ {
			req.Timeseries = append(req.Timeseries, series("test_metric", i, base+step*15000, float64(i)*100+float64(step)))
		}
		if code, body := c.push("tenant-a", req); code != 200 {
			t.Fatalf("push step %d: %d %s", step, code, body)
		}
	}
	checkAll := func(steps int64) {
		t.Helper()
		at := strconv.FormatFloat(float64(base+(steps-1)*15000)/1000, 'f', 3, 64)
		res := c.query("tenant-a", "query", url.Values{"query": {"sum(test_metric)"}, "time": {at}})
		want := 0.0
		for i := 0; i < nSeries; i++ {
			want += float64(i)*100 + float64(steps-1)
		}
		if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != strconv.FormatFloat(want, 'f', -1, 64) {
			t.Fatalf("sum(test_metric) at step %d: %+v, want %v", steps-1, res.Data.Result, want)
		}
		rng := c.query("tenant-a", "query_range", url.Values{"query": {`test_metric{series="7"}`},
			"start": {strconv.FormatInt(base/1000, 10)}, "end": {at}, "step": {"15"}})
		if len(rng.Data.Result) != 1 || len(rng.Data.Result[0].Values) != int(steps) {
			t.Fatalf("range query: %+v, want %d points", rng.Data.Result, steps)
		}
		for k, p := range rng.Data.Result[0].Values {
			if want := strconv.FormatFloat(700+float64(k), 'f', -1, 64); p[1] != want {
				t.Fatalf("range point %d = %v, want %s", k, p[1], want)
			}
		}
	}
	checkAll(10)
	// Tenants are isolated.
	if res := c.query("tenant-b", "query", url.Values{"query": {"test_metric"}}); len(res.Data.Result) != 0 {
		t.Fatalf("tenant-b sees tenant-a's series: %+v", res.Data.Result)
	}

	// kill -9 one ingester: writes and queries keep succeeding, nothing acknowledged is lost.
	victim := c.ingesters[1]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	for step := int64(10); step < 15; step++ {
		req := &prompb.WriteRequest{}
		for i := 0; i < nSeries; i++ {
			req.Timeseries = append(req.Timeseries, series("test_metric", i, base+step*15000, float64(i)*100+float64(step)))
		}
		if code, body := c.push("tenant-a", req); code != 200 {
			t.Fatalf("push with one ingester down, step %d: %d %s", step, code, body)
		}
	}
	checkAll(15)

	// Restarting it replays its WAL: it holds every series it acknowledged.
	c.ingesters[1] = c.startIngester(1)
	c.ingesters[1].waitReady(c.client, "https://"+c.ingesters[1].httpAddr()+"/ready")
	_, metrics := get(t, c.client, "https://"+c.ingesters[1].httpAddr()+"/metrics")
	if !strings.Contains(metrics, fmt.Sprintf("cortex_ingester_memory_series %d", nSeries)) {
		t.Fatalf("restarted ingester does not hold its %d series after WAL replay:\n%s", nSeries, grepLines(metrics, "cortex_ingester_memory"))
	}
	checkAll(15)

	// SIGTERM: the ingester leaves the ring cleanly and exits 0.
	c.ingesters[0].stop()
	if err := c.ingesters[0].exitErr; err != nil {
		t.Fatalf("ingester exit after SIGTERM: %v", err)
	}
	c.waitActiveIngesters(c.distributor, 2)
	req, _ := http.NewRequest("GET", "https://"+c.distributor.httpAddr()+"/ingester/ring", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ringPage, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(ringPage), `"ingester-1"`) || strings.Contains(string(ringPage), `"ingester-0"`) {
		t.Fatalf("ingester-0 still in the ring after a clean shutdown: %s", ringPage)
	}
}

// TestEveryPortRefusesStrangers checks that, across a cluster, every HTTP and
// gRPC port refuses a client without a certificate and one from a foreign CA.
func TestEveryPortRefusesStrangers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	c := newCluster(t)
	anonymous := tlsClient(t, tlsconfig.ClientConfig{CAPath: filepath.Join(c.certs, "root.crt")})
	stranger := tlsClient(t, clientConfig(c.certs, "stranger"))
	for _, p := range append([]*process{c.distributor, c.querier}, c.ingesters...) {
		for name, cl := range map[string]*tlsconfig.Client{"no certificate": anonymous, "foreign CA": stranger} {
			if _, err := httpClient(cl).Get("https://" + p.httpAddr() + "/ready"); err == nil {
				t.Errorf("HTTP %s accepted a client with %s", p.httpAddr(), name)
			}
			conn, err := grpc.NewClient(p.grpcAddr(), cl.GRPCDialOption())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			cancel()
			conn.Close()
			if err == nil {
				t.Errorf("gRPC %s accepted a client with %s", p.grpcAddr(), name)
			}
		}
	}
	// The gossip port too: it requires a certificate of the cluster's CA
	// (the -memberlist.tls-*-path flags alone turned TLS on).
	gossip := "127.0.0.1:" + itoa(c.mlPorts[0])
	member := tlsClient(t, clientConfig(c.certs, "client"))
	for name, cl := range map[string]*tlsconfig.Client{"no certificate": anonymous, "foreign CA": stranger, "the cluster's CA": member} {
		err := gossipHandshake(gossip, cl)
		refused := err != nil && strings.Contains(err.Error(), "certificate")
		if want := name != "the cluster's CA"; refused != want {
			t.Errorf("gossip port %s, client with %s: refused=%v (%v), want refused=%v", gossip, name, refused, err, want)
		}
	}
}

// gossipHandshake connects to a gossip port as a member would and reads:
// a refused certificate surfaces as a TLS alert (with TLS 1.3, on the first
// read), an accepted one as the server waiting for the member to speak.
func gossipHandshake(addr string, cl *tlsconfig.Client) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cl.Config("localhost", []string{"cortex-gossip"}))
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	return err
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSingleProcess runs -target=all on its defaults plus mutual TLS: the
// distributor and querier reach the in-process ingester over the process's
// own gRPC server, and a restart replays the write-ahead log.
func TestSingleProcess(t *testing.T) {
	certs := certDir(t)
	data := t.TempDir()
	flags := append(mtlsFlags(certs),
		"-ingester.client.tls-cert-path="+filepath.Join(certs, "client.crt"),
		"-ingester.client.tls-key-path="+filepath.Join(certs, "client.key"),
		"-ingester.client.tls-ca-path="+filepath.Join(certs, "root.crt"),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-auth.enabled=false",
		"-blocks-storage.tsdb.dir="+data,
	)
	p := start(t, flags...)
	c := &cluster{t: t, certs: certs, distributor: p, querier: p, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	p.waitReady(c.client, "https://"+p.httpAddr()+"/ready")

	ts := time.Now().Add(-time.Minute).UnixMilli()
	req := &prompb.WriteRequest{}
	for i := 0; i < 10; i++ {
		req.Timeseries = append(req.Timeseries, series("single_metric", i, ts, float64(i)))
	}
	// With auth disabled the header is ignored: everything is tenant "fake".
	if code, body := c.push("ignored", req); code != 200 {
		t.Fatalf("push: %d %s", code, body)
	}
	at := strconv.FormatFloat(float64(ts)/1000, 'f', 3, 64)
	check := func() {
		t.Helper()
		res := c.query("", "query", url.Values{"query": {"sum(single_metric)"}, "time": {at}})
		if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != "45" {
			t.Fatalf("sum(single_metric) = %+v, want 45", res.Data.Result)
		}
	}
	check()

	p.stop()
	if p.exitErr != nil {
		t.Fatalf("exit after SIGTERM: %v", p.exitErr)
	}
	p = start(t, flags...)
	c.distributor, c.querier = p, p
	p.waitReady(c.client, "https://"+p.httpAddr()+"/ready")
	check()
}
