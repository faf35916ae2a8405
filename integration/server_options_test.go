package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// Cortex's server and API options, on the real binary with mutual TLS:
// every route under -server.path-prefix, the alertmanager under
// -http.alertmanager-http-prefix, gzip, build information, CORS, no
// instrumentation routes, and the request log with source IPs and headers.
func TestServerAndAPIOptions(t *testing.T) {
	certs := certDir(t)
	hc := httpClient(tlsClient(t, clientConfig(certs, "client")))
	p := testkit.StartCortex(t, append(mtlsFlags(certs),
		"-target=all",
		"-server.path-prefix=/cortex",
		"-http.alertmanager-http-prefix=/am",
		"-server.register-instrumentation=false",
		"-api.response-compression-enabled=true",
		"-api.build-info-enabled=true",
		`-server.cors-origin=https://grafana\.example`,
		"-server.log-request-at-info-level-enabled=true",
		"-server.log-source-ips-enabled=true",
		"-server.log-request-headers=true",
		"-api.http-request-headers-to-log=X-Dashboard",
	)...)
	base := "https://" + p.HTTPAddr
	p.WaitReady(hc, base+"/cortex/ready")

	if code, _ := tryGet(hc, base+"/ready"); code != http.StatusNotFound {
		t.Errorf("/ready outside -server.path-prefix answered %d, want 404", code)
	}
	if code, _ := tryGet(hc, base+"/cortex/metrics"); code != http.StatusNotFound {
		t.Errorf("/cortex/metrics with -server.register-instrumentation=false answered %d, want 404", code)
	}

	query := func(path string, header ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Scope-OrgID", "tenant-a")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, path := range []string{"/cortex/prometheus/api/v1/query?query=vector(1)", "/cortex/api/prom/api/v1/query?query=vector(1)"} {
		resp := query(path, "Origin", "https://grafana.example", "X-Forwarded-For", "198.51.100.9", "X-Dashboard", "overview")
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"success"`) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://grafana.example" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want the allowed origin", path, got)
		}
	}
	if resp := query("/cortex/prometheus/api/v1/status/buildinfo"); resp.StatusCode != http.StatusOK {
		t.Errorf("buildinfo with -api.build-info-enabled: %d", resp.StatusCode)
	}
	if resp := query("/cortex/config", "Accept-Encoding", "gzip"); resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("/cortex/config with Accept-Encoding gzip: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	// The alertmanager answers under its prefix: the tenant has no
	// configuration yet.
	resp := query("/cortex/am/api/v2/status")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "the Alertmanager is not configured for this tenant") {
		t.Errorf("/cortex/am/api/v2/status: %d %s", resp.StatusCode, body)
	}
	if code, _ := tryGet(hc, base+"/cortex/alertmanager/api/v2/status"); code != http.StatusNotFound {
		t.Errorf("the alertmanager's default prefix still answers: %d", code)
	}
	// So does its web UI, the prefix itself redirecting to the page.
	for _, path := range []string{"/cortex/am/", "/cortex/am"} {
		resp := query(path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNotFound || resp.Request.URL.Path != "/cortex/am/" || !strings.Contains(string(body), "the Alertmanager is not configured for this tenant") {
			t.Errorf("%s: %d from %s: %s", path, resp.StatusCode, resp.Request.URL.Path, body)
		}
	}

	p.WaitLog("GET /cortex/prometheus/api/v1/query?query=vector(1) (200)")
	line := grepLines(p.Output(), "GET /cortex/prometheus/api/v1/query?query=vector(1) (200)")
	for _, want := range []string{"sourceIPs=", "198.51.100.9", "X-Dashboard=overview", "request_id=", "X-Scope-Orgid: tenant-a"} {
		if !strings.Contains(line, want) {
			t.Errorf("request log line lacks %q: %s", want, line)
		}
	}
}

// -ring.detailed-metrics-enabled (default true) exports each ingester's
// tokens and share of the ring on /metrics; false leaves them out.
func TestRingDetailedMetrics(t *testing.T) {
	certs := certDir(t)
	hc := httpClient(tlsClient(t, clientConfig(certs, "client")))
	for _, enabled := range []bool{true, false} {
		flags := append(mtlsFlags(certs), "-target=all", "-ingester.num-tokens=16")
		if !enabled {
			flags = append(flags, "-ring.detailed-metrics-enabled=false")
		}
		p := testkit.StartCortex(t, flags...)
		waitReady(p, hc)
		_, body := get(t, hc, "https://"+p.HTTPAddr+"/metrics")
		tokens := grepLines(body, `cortex_ring_tokens_owned{`)
		share := grepLines(body, `cortex_ring_member_ownership_percent{`)
		if enabled && (!strings.Contains(tokens, `name="ingester"} 16`) || !strings.Contains(share, `name="ingester"} 0.99999`)) {
			t.Errorf("detailed metrics on: tokens %q, ownership %q; want the one ingester's 16 tokens and whole ring", tokens, share)
		}
		if !enabled && (tokens != "" || share != "") {
			t.Errorf("detailed metrics off: %q %q", tokens, share)
		}
		p.Stop()
	}
}
