package integration

import (
	"bytes"
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
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// cluster is a distributor, three ingesters and a querier, each its own
// process, with mutual TLS on every HTTP and gRPC server and client, and
// gossip over mutual TLS.
type cluster struct {
	t           *testing.T
	dir         string
	certs       string
	seed        string // the gossip address of the first member, which the others join
	ingesters   []*testkit.Cortex
	ingDirs     []string
	distributor *testkit.Cortex
	querier     *testkit.Cortex
	client      *http.Client
}

// start runs a member of the cluster: the first one becomes the seed.
func (c *cluster) start(flags ...string) *testkit.Cortex {
	c.t.Helper()
	certs := c.certs
	common := append(mtlsFlags(certs), ingesterClientFlags(certs)...)
	common = append(common,
		"-auth.enabled=true",
		"-ring.store=memberlist",
		"-memberlist.bind-addr=127.0.0.1",
		"-memberlist.bind-port=0",
		// No -memberlist.tls-enabled: the paths alone turn TLS on.
		"-memberlist.tls-cert-path="+filepath.Join(certs, "client.crt"),
		"-memberlist.tls-key-path="+filepath.Join(certs, "client.key"),
		"-memberlist.tls-ca-path="+filepath.Join(certs, "root.crt"),
		"-memberlist.tls-server-name=localhost",
		"-distributor.replication-factor=3",
		"-ingester.heartbeat-period=1s",
		"-ingester.join-after=0s",
		"-ingester.min-ready-duration=0s",
		"-ingester.observe-period=0s",
		"-log.level=info",
	)
	if c.seed != "" {
		common = append(common, "-memberlist.join="+c.seed)
	}
	p := testkit.StartCortex(c.t, append(common, flags...)...)
	if c.seed == "" {
		c.seed = p.GossipAddr()
	}
	return p
}

func (c *cluster) startIngester(i int) *testkit.Cortex {
	c.t.Helper()
	return c.start(
		"-target=ingester",
		"-ingester.lifecycler.ID=ingester-"+itoa(i),
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+c.ingDirs[i],
	)
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	for i := range 3 {
		c.ingDirs = append(c.ingDirs, filepath.Join(c.dir, "ingester-"+itoa(i)))
		c.ingesters = append(c.ingesters, c.startIngester(i))
	}
	c.distributor = c.start("-target=distributor")
	c.querier = c.start("-target=querier")
	for _, p := range append([]*testkit.Cortex{c.distributor, c.querier}, c.ingesters...) {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, 3)
	c.waitActiveIngesters(c.querier, 3)
	return c
}

// waitActiveIngesters waits until p's view of the ring has n ACTIVE ingesters.
func (c *cluster) waitActiveIngesters(p *testkit.Cortex, n int) {
	c.t.Helper()
	p.EventuallyNil(30*time.Second, fmt.Sprintf("%s to see %d ACTIVE ingesters", p.HTTPAddr, n), func() error {
		page, err := c.ringPage(p)
		if err != nil {
			return err
		}
		if strings.Count(page, `"state":"ACTIVE"`) != n {
			return fmt.Errorf("ring page: %s", page)
		}
		return nil
	})
}

// ringPage returns p's /ingester/ring page in JSON.
func (c *cluster) ringPage(p *testkit.Cortex) (string, error) {
	req, _ := http.NewRequest("GET", "https://"+p.HTTPAddr+"/ingester/ring", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// members returns how many gossip members p's /memberlist page lists, and the page.
func (c *cluster) members(p *testkit.Cortex) (int, string) {
	_, page := tryGet(c.client, "https://"+p.HTTPAddr+"/memberlist")
	return strings.Count(page, "\n") - 2, page
}

// push sends a remote-write 1.0 request as Prometheus does.
func (c *cluster) push(tenantID string, req *prompb.WriteRequest) (int, string) {
	c.t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	httpReq, _ := http.NewRequest("POST", "https://"+c.distributor.HTTPAddr+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
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
	out, err := c.tryQuery(tenantID, path, params)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// tryQuery is query for callers that poll: an answer other than success
// is an error rather than the test's end.
func (c *cluster) tryQuery(tenantID, path string, params url.Values) (promResponse, error) {
	req, _ := http.NewRequest("GET", "https://"+c.querier.HTTPAddr+"/prometheus/api/v1/"+path+"?"+params.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", tenantID)
	resp, err := c.client.Do(req)
	if err != nil {
		return promResponse{}, fmt.Errorf("query: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out promResponse
	if err := json.Unmarshal(body, &out); err != nil || out.Status != "success" {
		return out, fmt.Errorf("query %s %v: %d %s", path, params, resp.StatusCode, body)
	}
	return out, nil
}

func series(name string, i int, ts int64, v float64) prompb.TimeSeries {
	return prompb.TimeSeries{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "test"}, {Name: "series", Value: strconv.Itoa(i)}},
		Samples: []prompb.Sample{{Timestamp: ts, Value: v}},
	}
}

// TestWriteReadPathMutualTLS writes and reads through real processes: a
// memberlist ring, replication factor 3, mutual TLS everywhere, an
// ingester killed and restarted, another stopped.
func TestWriteReadPathMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	t.Parallel()
	c := newCluster(t)
	// Every process gossips with the others over mutual TLS.
	c.ingesters[0].EventuallyNil(30*time.Second, "/memberlist of ingester 0 to list 5 members", func() error {
		if n, page := c.members(c.ingesters[0]); n != 5 {
			return fmt.Errorf("it lists %d:\n%s", n, page)
		}
		return nil
	})
	const nSeries = 50
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()

	// Ten scrapes of fifty series, acknowledged one request at a time.
	for step := int64(0); step < 10; step++ {
		req := &prompb.WriteRequest{}
		for i := 0; i < nSeries; i++ {
			req.Timeseries = append(req.Timeseries, series("test_metric", i, base+step*15000, float64(i)*100+float64(step)))
		}
		if code, body := c.push("tenant-a", req); code != http.StatusNoContent {
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
	c.ingesters[1].Kill()
	for step := int64(10); step < 15; step++ {
		req := &prompb.WriteRequest{}
		for i := 0; i < nSeries; i++ {
			req.Timeseries = append(req.Timeseries, series("test_metric", i, base+step*15000, float64(i)*100+float64(step)))
		}
		if code, body := c.push("tenant-a", req); code != http.StatusNoContent {
			t.Fatalf("push with one ingester down, step %d: %d %s", step, code, body)
		}
	}
	checkAll(15)

	// Restarting it replays its WAL: it holds every series it acknowledged.
	c.ingesters[1] = c.startIngester(1)
	waitReady(c.ingesters[1], c.client)
	_, metrics := get(t, c.client, "https://"+c.ingesters[1].HTTPAddr+"/metrics")
	if !strings.Contains(metrics, fmt.Sprintf("cortex_ingester_memory_series %d", nSeries)) {
		t.Fatalf("restarted ingester does not hold its %d series after WAL replay:\n%s", nSeries, grepLines(metrics, "cortex_ingester_memory"))
	}
	checkAll(15)

	// SIGTERM: the ingester leaves the ring cleanly and exits 0.
	c.ingesters[0].Stop()
	if err := c.ingesters[0].ExitErr(); err != nil {
		t.Fatalf("ingester exit after SIGTERM: %v", err)
	}
	c.waitActiveIngesters(c.distributor, 2)
	ringPage, err := c.ringPage(c.distributor)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ringPage, `"ingester-1"`) || strings.Contains(ringPage, `"ingester-0"`) {
		t.Fatalf("ingester-0 still in the ring after a clean shutdown: %s", ringPage)
	}
}

// TestEveryPortRefusesStrangers checks that, across a cluster, every HTTP and
// gRPC port refuses a client without a certificate and one from a foreign CA.
func TestEveryPortRefusesStrangers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	t.Parallel()
	c := newCluster(t)
	anonymous := tlsClient(t, tlsconfig.ClientConfig{CAPath: filepath.Join(c.certs, "root.crt")})
	stranger := tlsClient(t, clientConfig(c.certs, "stranger"))
	for _, p := range append([]*testkit.Cortex{c.distributor, c.querier}, c.ingesters...) {
		for name, cl := range map[string]*tlsconfig.Client{"no certificate": anonymous, "foreign CA": stranger} {
			if _, err := httpClient(cl).Get("https://" + p.HTTPAddr + "/ready"); err == nil {
				t.Errorf("HTTP %s accepted a client with %s", p.HTTPAddr, name)
			}
			if _, err := grpcHealth(t, cl, p.GRPCAddr); err == nil {
				t.Errorf("gRPC %s accepted a client with %s", p.GRPCAddr, name)
			}
		}
	}
	// The gossip port too: it requires a certificate of the cluster's CA
	// (the -memberlist.tls-*-path flags alone turned TLS on).
	gossip := c.seed
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

// TestSingleProcess runs -target=all on its defaults plus mutual TLS: the
// distributor and querier reach the in-process ingester over the process's
// own gRPC server, and a restart replays the write-ahead log.
func TestSingleProcess(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	data := t.TempDir()
	flags := append(append(mtlsFlags(certs), ingesterClientFlags(certs)...),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-auth.enabled=false",
		"-blocks-storage.tsdb.dir="+data,
	)
	p := testkit.StartCortex(t, flags...)
	c := &cluster{t: t, certs: certs, distributor: p, querier: p, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	waitReady(p, c.client)

	ts := time.Now().Add(-time.Minute).UnixMilli()
	req := &prompb.WriteRequest{}
	for i := 0; i < 10; i++ {
		req.Timeseries = append(req.Timeseries, series("single_metric", i, ts, float64(i)))
	}
	// With auth disabled the header is ignored: everything is tenant "fake".
	if code, body := c.push("ignored", req); code != http.StatusNoContent {
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

	p.Stop()
	if err := p.ExitErr(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	p = testkit.StartCortex(t, flags...)
	c.distributor, c.querier = p, p
	waitReady(p, c.client)
	check()
}
