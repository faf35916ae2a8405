package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/loadgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// clusterPorts is how many consecutive ports scripts/cluster.sh uses from
// BASE_PORT: HTTP at +0..9, gRPC at +20..29, gossip at +40..49.
const clusterPorts = 50

// freePortRange finds a BASE_PORT whose range is free on 127.0.0.1 now.
// The script's ports are fixed, as an operator's would be; another
// process could take one in between, but in a range drawn at random that
// is unlikely, and the script then fails naming the process.
func freePortRange(t *testing.T) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(40000-clusterPorts)
		free := true
		for p := base; p < base+clusterPorts && free; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			_ = l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free range of ports on 127.0.0.1")
	return 0
}

// TestClusterScript runs scripts/cluster.sh, the multi-process cluster
// of docs/multi-process.md, writes through its distributor and reads
// through its query-frontend with the client certificate it generated,
// then stops it as Ctrl-C does and finds every process gone.
func TestClusterScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten processes")
	}
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("scripts/cluster.sh needs %s", tool)
		}
	}
	dir := t.TempDir()
	base := freePortRange(t)
	out := &testkit.Buffer{}
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "cluster.sh"))
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "CORTEX="+testkit.CortexBinary(t), "CLUSTER_DIR="+dir, "BASE_PORT="+itoa(base), "READY_TIMEOUT=120")
	cmd.Stdout, cmd.Stderr = out, out
	// A group of its own: should the script not stop its processes, the
	// cleanup kills the group, which holds only what the script started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("scripts/cluster.sh output:\n%s", out.String())
			for _, name := range []string{"ingester-1", "distributor", "query-frontend", "querier"} {
				log, _ := os.ReadFile(filepath.Join(dir, "logs", name+".log"))
				t.Logf("logs/%s.log:\n%s", name, log)
			}
		}
	})

	testkit.EventuallyNil(t, 150*time.Second, "every process of the cluster ready", func() error {
		select {
		case <-exited:
			t.Fatalf("the script exited (%v) before the cluster was ready", exitErr)
		default:
		}
		if !strings.Contains(out.String(), "Ctrl-C stops the cluster") {
			return fmt.Errorf("the script has not printed the addresses yet")
		}
		return nil
	})
	distributor := "https://127.0.0.1:" + itoa(base+3)
	frontend := "https://127.0.0.1:" + itoa(base+4)
	for _, line := range []string{
		"cluster ready: 10 processes",
		"write: " + distributor + "/api/v1/push",
		"read:  " + frontend + "/prometheus",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the script did not print %q", line)
		}
	}

	client := httpClient(tlsClient(t, clientConfig(filepath.Join(dir, "certs"), "client")))
	sum, err := loadgen.RunWrite(context.Background(), loadgen.WriteConfig{
		URL: distributor + "/api/v1/push", Tenant: "demo", Series: 20, LabelsPerSeries: 3, SeriesPerRequest: 10,
		Writers: 1, Requests: 2, MetricName: "cluster_script_series",
	}, client, nil)
	if err != nil || sum.SucceededRequests != 2 {
		t.Fatalf("writing through the distributor: %v, summary %+v", err, sum)
	}
	query := frontend + "/prometheus/api/v1/query?" + url.Values{"query": {"count(cluster_script_series)"}}.Encode()
	testkit.EventuallyNil(t, 30*time.Second, "the written series through the query-frontend", func() error {
		code, body := do(t, client, "GET", query, "demo", nil)
		if code != 200 || !strings.Contains(body, `,"20"]`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	// Ctrl-C: the script stops every process and exits.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		stopped = true
		if ee, ok := exitErr.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
			t.Errorf("the script exited with %v after SIGINT, want status 130", exitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the script did not exit within 60s of SIGINT")
	}
	if !strings.Contains(out.String(), "stopping 10 processes\nstopped; logs and data in "+dir) {
		t.Errorf("the script did not report stopping its processes")
	}
	// Every process is gone: the group is empty and no port answers.
	if err := syscall.Kill(-cmd.Process.Pid, 0); err == nil {
		t.Error("processes of the script's group still run after it exited")
	}
	for p := base; p < base+10; p++ {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", itoa(p)), time.Second); err == nil {
			_ = c.Close()
			t.Errorf("127.0.0.1:%d still accepts connections after the script stopped", p)
		}
	}
	for _, name := range []string{"ingester-1", "distributor", "querier", "alertmanager"} {
		log, _ := os.ReadFile(filepath.Join(dir, "logs", name+".log"))
		if !strings.Contains(string(log), `msg="cortex stopped"`) {
			t.Errorf("%s did not stop cleanly: its log does not end with \"cortex stopped\"", name)
		}
	}
}

// TestClusterScriptChecks is the cheap half: the script parses, passes
// shellcheck where it is installed, and refuses an unknown argument
// before starting anything.
func TestClusterScriptChecks(t *testing.T) {
	script := filepath.Join(repoRoot(t), "scripts", "cluster.sh")
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command("shellcheck", script).CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	}
	out, err := exec.Command("bash", script, "--exit-when-redy").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || string(out) != "cluster.sh: unknown argument --exit-when-redy (only --exit-when-ready)\n" {
		t.Errorf("an unknown argument: %v %q, want status 2 naming it", err, out)
	}
	help, err := exec.Command("bash", script, "--help").Output()
	if err != nil || !strings.Contains(string(help), "Usage: scripts/cluster.sh [--exit-when-ready]") || !strings.Contains(string(help), "BASE_PORT") {
		t.Errorf("--help: %v\n%s", err, help)
	}
}
