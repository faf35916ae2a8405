package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// ringInstances counts the instances of p's ingester ring page.
func (c *cluster) ringInstances(p *testkit.Cortex) (int, string, error) {
	page, err := c.ringPage(p)
	return strings.Count(page, `"id":`), page, err
}

// TestIngesterShutdownOnRequest: in one process with mutual TLS and a
// filesystem bucket, POST /ingester/shutdown ships every pushed sample,
// takes the ingester out of the ring and stops it while the process
// serves on; GET answers 405, and an identity given one tenant gets 403
// on the ingester's admin paths and on /debug/fgprof.
func TestIngesterShutdownOnRequest(t *testing.T) {
	t.Parallel()
	pki := testkit.NewPKI(t, "root")
	pki.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(t, "tenant-a", certgen.Options{DNSNames: []string{"localhost"}})
	allow := filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(allow, []byte("clients:\n  client: ['*']\n  tenant-a: [tenant-a]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bucketDir := filepath.Join(t.TempDir(), "bucket")
	p, c := startBlocksProcess(t, pki.Dir,
		"-auth.client-tenants-file="+allow,
		"-blocks-storage.filesystem.dir="+bucketDir,
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
		// Blocks reach the bucket only when flushed.
		"-blocks-storage.tsdb.ship-interval=1h",
	)
	base := "https://" + p.HTTPAddr
	tenantA := httpClient(tlsClient(t, clientConfig(pki.Dir, "tenant-a")))
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/ingester/shutdown"},
		{http.MethodGet, "/ingester/shutdown"},
		{http.MethodPost, "/shutdown"},
		{http.MethodGet, "/ingester/mode"},
		{http.MethodPost, "/ingester/mode?mode=READONLY"},
		{http.MethodGet, "/debug/fgprof?seconds=1"},
	} {
		if code, body := do(t, tenantA, r.method, base+r.path, "", nil); code != http.StatusForbidden || !strings.Contains(body, `only identities given "*" in -auth.client-tenants-file`) {
			t.Errorf("tenant-a %s %s: %d %.200s, want 403", r.method, r.path, code, body)
		}
	}
	if code, body := do(t, c.client, http.MethodGet, base+"/debug/fgprof?seconds=1&format=folded", "", nil); code != http.StatusOK || !strings.Contains(body, "runtime.") {
		t.Errorf("GET /debug/fgprof?seconds=1&format=folded: %d %.300s, want folded stacks", code, body)
	}
	if code, body := do(t, c.client, http.MethodGet, base+"/debug/fgprof", "", nil); code != http.StatusBadRequest || !strings.Contains(body, "a profile of 30s would outlast the HTTP server's write timeout 30s (-server.http-write-timeout)") {
		t.Errorf("GET /debug/fgprof (30s by default): %d %.300s, want 400 naming the write timeout", code, body)
	}

	start := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	pushed := c.pushScrapes("team-a", "shut", start, 0, 40, 1)
	if blocks, _ := tryReadBlocks(bucketDir, "team-a"); len(blocks) != 0 {
		t.Fatalf("%d blocks in the bucket before the shutdown", len(blocks))
	}
	if n, page, err := c.ringInstances(p); err != nil || n != 1 {
		t.Fatalf("ring before the shutdown: %d instances, %v: %s", n, err, page)
	}

	if code, body := do(t, c.client, http.MethodGet, base+"/ingester/shutdown", "", nil); code != http.StatusMethodNotAllowed || body != "shutting the ingester down needs POST\n" {
		t.Errorf("GET /ingester/shutdown: %d %q, want 405 saying to use POST", code, body)
	}
	if n, _, _ := c.ringInstances(p); n != 1 {
		t.Fatal("a GET took the ingester out of the ring")
	}
	if code, body := do(t, c.client, http.MethodPost, base+"/ingester/shutdown", "", nil); code != http.StatusNoContent {
		t.Fatalf("POST /ingester/shutdown: %d %s", code, body)
	}

	// Every sample is in the bucket, and the ingester left the ring.
	var samples uint64
	for _, b := range readBlocks(t, bucketDir, "team-a") {
		samples += b.Stats.NumSamples
	}
	if samples != pushed {
		t.Errorf("the bucket holds %d samples after the shutdown, want all %d pushed", samples, pushed)
	}
	p.EventuallyNil(10*time.Second, "the ingester out of the ring", func() error {
		if n, page, err := c.ringInstances(p); err != nil || n != 0 {
			return fmt.Errorf("%d instances, %v: %s", n, err, page)
		}
		return nil
	})

	// The process serves on, without an ingester to write to.
	if code, body := get(t, c.client, base+"/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "terminated") {
		t.Errorf("/ready after the shutdown: %d %q, want 503 naming the terminated module", code, body)
	}
	if code, body := get(t, c.client, base+"/services"); code != http.StatusOK || !strings.Contains(body, "\ningester: Terminated\n") || !strings.Contains(body, "\ndistributor: Running\n") {
		t.Errorf("/services after the shutdown: %d\n%s\nwant the ingester Terminated, the distributor Running", code, body)
	}
	if code, body := get(t, c.client, base+"/config"); code != http.StatusOK {
		t.Errorf("/config after the shutdown: %d %.200s", code, body)
	}
	if code, body := c.push("team-a", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("late", 0, time.Now().UnixMilli(), 1)}}); code != http.StatusServiceUnavailable || !strings.Contains(body, "no writable ingesters in the ring") {
		t.Errorf("push after the shutdown: %d %q, want 503", code, body)
	}
	if code, body := do(t, c.client, http.MethodPost, base+"/ingester/shutdown", "", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "ingester is terminated") {
		t.Errorf("a second POST /ingester/shutdown: %d %q, want 503", code, body)
	}
}

// TestIngesterReadOnlyMode: two processes, each a distributor, an
// ingester and a querier, share a gossiped ring with replication factor
// 1. An ingester put in READONLY mode takes none of the series pushed
// meanwhile, which all go to the other one, while queries still read
// what it holds; ACTIVE again, it takes new series.
func TestIngesterReadOnlyMode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	t.Parallel()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	var procs []*testkit.Cortex
	for i := range 2 {
		c.ingDirs = append(c.ingDirs, filepath.Join(c.dir, "ingester-"+itoa(i)))
		procs = append(procs, c.start(
			"-target=distributor,ingester,querier",
			"-distributor.replication-factor=1",
			"-ingester.lifecycler.ID=ingester-"+itoa(i),
			"-ingester.lifecycler.addr=127.0.0.1",
			"-blocks-storage.tsdb.dir="+c.ingDirs[i],
		))
	}
	a, b := procs[0], procs[1]
	c.distributor, c.querier = a, a
	for _, p := range procs {
		waitReady(p, c.client)
		c.waitActiveIngesters(p, 2)
	}
	now := time.Now().UnixMilli()
	pushN := func(name string, n int) {
		t.Helper()
		req := &prompb.WriteRequest{}
		for i := range n {
			req.Timeseries = append(req.Timeseries, series(name, i, now, float64(i)))
		}
		if code, body := c.push("tenant-ro", req); code != http.StatusNoContent {
			t.Fatalf("push of %s: %d %s", name, code, body)
		}
	}
	memorySeries := func(p *testkit.Cortex) float64 { return metricOf(t, c.client, p, "cortex_ingester_memory_series") }
	mode := func(method, query string) (int, string) {
		return do(t, c.client, method, "https://"+a.HTTPAddr+"/ingester/mode"+query, "", nil)
	}
	readOnlySeen := func(want bool) {
		t.Helper()
		a.EventuallyNil(10*time.Second, fmt.Sprintf("the distributor's ring showing ingester-0 read_only=%v", want), func() error {
			page, err := c.ringPage(a)
			if err != nil {
				return err
			}
			if got := strings.Contains(page, `"id":"ingester-0"`) && strings.Count(page, `"read_only":true`) == 1; got != want {
				return fmt.Errorf("ring page: %s", page)
			}
			return nil
		})
	}

	pushN("before", 50)
	beforeA, beforeB := memorySeries(a), memorySeries(b)
	if beforeA == 0 || beforeB == 0 || beforeA+beforeB != 50 {
		t.Fatalf("50 series spread as %v on ingester-0 and %v on ingester-1, want both some", beforeA, beforeB)
	}
	if code, body := mode(http.MethodGet, ""); code != http.StatusOK || body != "Ingester mode ACTIVE" {
		t.Fatalf("GET /ingester/mode: %d %q", code, body)
	}
	if code, body := mode(http.MethodGet, "?mode=READONLY"); code != http.StatusMethodNotAllowed || !strings.Contains(body, "needs POST") {
		t.Errorf("GET /ingester/mode?mode=READONLY: %d %q, want 405", code, body)
	}
	if code, body := mode(http.MethodPost, "?mode=READONLY"); code != http.StatusOK || body != "Ingester mode READONLY" {
		t.Fatalf("POST /ingester/mode?mode=READONLY: %d %q", code, body)
	}
	readOnlySeen(true)

	pushN("during", 50)
	if got := memorySeries(a); got != beforeA {
		t.Errorf("the read-only ingester holds %v series after the push, want still %v", got, beforeA)
	}
	if got := memorySeries(b); got != beforeB+50 {
		t.Errorf("the writable ingester holds %v series, want %v: every new one", got, beforeB+50)
	}
	// The read-only ingester's series are still read.
	res := c.query("tenant-ro", "query", url.Values{"query": {`count({__name__=~"before|during"})`}, "time": {strconv.FormatFloat(float64(now)/1000, 'f', 3, 64)}})
	if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != "100" {
		t.Errorf("count of every series while ingester-0 is read-only: %+v, want 100", res.Data.Result)
	}

	if code, body := mode(http.MethodPost, "?mode=ACTIVE"); code != http.StatusOK || body != "Ingester mode ACTIVE" {
		t.Fatalf("POST /ingester/mode?mode=ACTIVE: %d %q", code, body)
	}
	readOnlySeen(false)
	pushN("after", 50)
	if got := memorySeries(a); got <= beforeA {
		t.Errorf("ingester-0, ACTIVE again, holds %v series, want more than %v", got, beforeA)
	}
}
