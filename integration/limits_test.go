package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// TestRuntimeOverridesReload changes a tenant's limit in the runtime
// configuration file of a running process: the new limit applies without a
// restart, and other tenants keep the defaults.
func TestRuntimeOverridesReload(t *testing.T) {
	certs := certDir(t)
	runtimeFile := filepath.Join(t.TempDir(), "runtime.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(runtimeFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("overrides:\n  strict:\n    max_label_names_per_series: 2\n")
	p := start(t, append(mtlsFlags(certs),
		"-ingester.client.tls-cert-path="+filepath.Join(certs, "client.crt"),
		"-ingester.client.tls-key-path="+filepath.Join(certs, "client.key"),
		"-ingester.client.tls-ca-path="+filepath.Join(certs, "root.crt"),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
		"-runtime-config.file="+runtimeFile,
		"-runtime-config.reload-period=100ms",
	)...)
	c := &cluster{t: t, certs: certs, distributor: p, querier: p, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	p.waitReady(c.client, "https://"+p.httpAddr()+"/ready")

	req := func() *prompb.WriteRequest {
		// Three label names: __name__, job, series.
		return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("limited", 1, time.Now().UnixMilli(), 1)}}
	}
	code, body := c.push("strict", req())
	if code != 400 || !strings.Contains(body, "limited") || !strings.Contains(body, "2") {
		t.Fatalf("tenant over its overridden label limit: %d %q, want 400 naming the series and the limit", code, body)
	}
	if code, body := c.push("relaxed", req()); code != 200 {
		t.Fatalf("tenant on the defaults: %d %s", code, body)
	}

	write("overrides:\n  strict:\n    max_label_names_per_series: 10\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body = c.push("strict", req())
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("raised limit not applied 10s after the runtime file changed: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A broken file keeps the last good overrides.
	write("overrides:\n  strict:\n    no_such_limit: 1\n")
	time.Sleep(500 * time.Millisecond)
	if code, body := c.push("strict", req()); code != 200 {
		t.Fatalf("a broken runtime file replaced the good overrides: %d %s", code, body)
	}
}
