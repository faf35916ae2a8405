package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestPrometheusRemoteWriteTenantFromCertificate runs docs/getting-started.md
// §2 with the Prometheus on PATH, the one Debian and Ubuntu ship (2.42):
// it sends no remote_write.headers, so no X-Scope-OrgID arrives, and with
// -auth.tenant-from-client-cert the identity of the client certificate in
// its tls_config is the tenant. Prometheus scrapes itself and its up series
// must arrive in the tenant demo, and only there.
func TestPrometheusRemoteWriteTenantFromCertificate(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not on PATH; .ci/run installs Debian's prometheus package")
	}
	version, _ := exec.Command(bin, "--version").CombinedOutput()
	t.Logf("%s", strings.SplitN(string(version), "\n", 2)[0])

	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "demo", certgen.Options{CommonName: "demo", DNSNames: []string{"demo"}})
	certs := p.Dir

	proc := testkit.StartCortex(t, append(mtlsFlags(certs), "-auth.tenant-from-client-cert", "-ingester.min-ready-duration=0s")...)
	admin := httpClient(tlsClient(t, clientConfig(certs, "client")))
	waitReady(proc, admin)

	stopPrometheus := startPrometheus(t, bin, func(listen string) string {
		return fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [%q]
remote_write:
  - url: https://%s/api/v1/push
    tls_config:
      ca_file: %s
      cert_file: %s
      key_file: %s
    queue_config:
      batch_send_deadline: 1s
`, listen, proc.HTTPAddr, filepath.Join(certs, "root.crt"), filepath.Join(certs, "demo.crt"), filepath.Join(certs, "demo.key"))
	})
	defer stopPrometheus()

	// The demo certificate, without a header, reads its own tenant.
	demo := httpClient(tlsClient(t, clientConfig(certs, "demo")))
	query := "https://" + proc.HTTPAddr + "/prometheus/api/v1/query?" + url.Values{"query": {`up{job="prometheus"}`}}.Encode()
	testkit.EventuallyNil(t, 60*time.Second, "Prometheus' up series in the tenant demo", func() error {
		code, body := tryGet(demo, query)
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		res := promResult(t, body)
		if len(res) != 1 || res[0].Value[1] != "1" {
			return fmt.Errorf("up{job=\"prometheus\"} = %s", body)
		}
		return nil
	})
	if code, body := do(t, admin, http.MethodGet, query, "other", nil); code != http.StatusOK || len(promResult(t, body)) != 0 {
		t.Errorf("tenant other: %d %s, want no series", code, body)
	}
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

func promResult(t *testing.T, body string) []promSample {
	t.Helper()
	var r struct {
		Data struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("query answer %q: %v", body, err)
	}
	return r.Data.Result
}

// startPrometheus runs Prometheus on 127.0.0.1 with its storage in a
// temporary directory and the configuration config(listen address)
// returns, and returns a function that stops it (also run when the test
// ends). Prometheus binds its port itself, so the port is found free and
// then handed over: when another process takes it in between, Prometheus
// exits and is started again on another port.
func startPrometheus(t *testing.T, bin string, config func(listen string) string) (stop func()) {
	t.Helper()
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listen := l.Addr().String()
		_ = l.Close()
		cfg := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(cfg, []byte(config(listen)), 0o644); err != nil {
			t.Fatal(err)
		}
		out := &testkit.Buffer{}
		cmd := exec.Command(bin, "--config.file="+cfg, "--web.listen-address="+listen,
			"--storage.tsdb.path="+filepath.Join(dir, "data-"+strconv.Itoa(attempt)))
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Prometheus' exit status after SIGTERM says nothing the test checks.
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		stopped := false
		stop = func() {
			if stopped {
				return
			}
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(testkit.StopTimeout):
				_ = cmd.Process.Kill()
				<-done
				t.Errorf("prometheus did not stop within %s of SIGTERM", testkit.StopTimeout)
			}
			if t.Failed() {
				t.Logf("prometheus' output:\n%s", out.String())
			}
		}
		// Ready once it serves its own /-/ready; an early exit is a
		// failure, or a port taken in between.
		ready := func() error {
			select {
			case err := <-done:
				done <- err
				return fmt.Errorf("prometheus exited: %v", err)
			default:
			}
			resp, err := http.Get("http://" + listen + "/-/ready")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/-/ready: %d", resp.StatusCode)
			}
			return nil
		}
		var last error
		deadline := time.Now().Add(testkit.StartTimeout)
		for time.Now().Before(deadline) {
			if last = ready(); last == nil || strings.HasPrefix(last.Error(), "prometheus exited") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if last == nil {
			t.Cleanup(stop)
			return stop
		}
		stop()
		if strings.Contains(out.String(), "address already in use") && attempt < 3 {
			continue
		}
		t.Fatalf("prometheus on %s: %v\n%s", listen, last, out.String())
	}
}
