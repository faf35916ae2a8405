package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestRuntimeOverridesReload changes a tenant's limit in the runtime
// configuration file of a running process: the new limit applies without a
// restart, and other tenants keep the defaults.
func TestRuntimeOverridesReload(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	runtimeFile := filepath.Join(t.TempDir(), "runtime.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(runtimeFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("overrides:\n  strict:\n    max_label_names_per_series: 2\n")
	p := testkit.StartCortex(t, append(append(mtlsFlags(certs), ingesterClientFlags(certs)...),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
		"-runtime-config.file="+runtimeFile,
		"-runtime-config.reload-period=100ms",
	)...)
	c := &cluster{t: t, certs: certs, distributor: p, querier: p, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	waitReady(p, c.client)

	req := func() *prompb.WriteRequest {
		// Three label names: __name__, job, series.
		return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("limited", 1, time.Now().UnixMilli(), 1)}}
	}
	code, body := c.push("strict", req())
	if code != 400 || !strings.Contains(body, "limited") || !strings.Contains(body, "2") {
		t.Fatalf("tenant over its overridden label limit: %d %q, want 400 naming the series and the limit", code, body)
	}
	if code, body := c.push("relaxed", req()); code != http.StatusNoContent {
		t.Fatalf("tenant on the defaults: %d %s", code, body)
	}

	write("overrides:\n  strict:\n    max_label_names_per_series: 10\n")
	p.EventuallyNil(10*time.Second, "the raised limit to apply", func() error {
		if code, body := c.push("strict", req()); code != http.StatusNoContent {
			return fmt.Errorf("push: %d %s", code, body)
		}
		return nil
	})
	// A broken file keeps the last good overrides.
	write("overrides:\n  strict:\n    no_such_limit: 1\n")
	p.WaitLog("no_such_limit")
	if code, body := c.push("strict", req()); code != http.StatusNoContent {
		t.Fatalf("a broken runtime file replaced the good overrides: %d %s", code, body)
	}
}
