package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// repoRoot is the module's root, where the Makefile is.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func gitOutput(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("git %s: %v (the build's VCS stamp needs a git work tree)", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// TestMakeBuildStampsVersion builds the binary as `make build` does and
// finds its version, revision, branch and build date in -version, the
// startup log line, /api/v1/status/buildinfo and cortex_build_info.
func TestMakeBuildStampsVersion(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	// Go finds the VCS of a tree by its .git directory: a linked work tree,
	// whose .git is a file, gets no stamp.
	if fi, err := os.Stat(filepath.Join(repoRoot(t), ".git")); err != nil || !fi.IsDir() {
		t.Skip("not a git clone with a .git directory: Go stamps no VCS information here")
	}
	revision := gitOutput(t, "rev-parse", "HEAD")
	branch := gitOutput(t, "rev-parse", "--abbrev-ref", "HEAD")
	bin := filepath.Join(t.TempDir(), "cortex")
	build := exec.Command("make", "-s", "build", "BINARY="+bin, "VERSION=1.2.3-test", "BUILD_USER=tester@host", "BUILD_DATE=2026-12-07T10:00:00Z")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	// The tree may hold uncommitted changes: then the revision says so.
	revisionRE := regexp.QuoteMeta(revision) + `(-modified)?`

	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatalf("cortex -version: %v", err)
	}
	for _, re := range []string{
		`^cortex, version 1\.2\.3-test \(branch: ` + regexp.QuoteMeta(branch) + `, revision: ` + revisionRE + `\)\n`,
		`\n  build user:       tester@host\n`,
		`\n  build date:       2026-12-07T10:00:00Z\n`,
	} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("cortex -version printed\n%s\nwant a match for %s", out, re)
		}
	}
	if t.Failed() {
		return
	}

	cmd := exec.Command(bin, append(testkit.LoopbackFlags(), "-target=all", "-auth.enabled=false")...)
	cmd.Dir = t.TempDir()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(testkit.StopTimeout):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("cortex did not stop within %s", testkit.StopTimeout)
		}
	})
	var startLine, httpAddr string
	listening := regexp.MustCompile(`msg="server listening".* http=(\S+)`)
	timeout := time.After(testkit.StartTimeout)
	for httpAddr == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("cortex exited before serving; start line %q", startLine)
			}
			if strings.Contains(line, `msg="starting cortex"`) {
				startLine = line
			}
			if m := listening.FindStringSubmatch(line); m != nil {
				httpAddr = m[1]
			}
		case <-timeout:
			t.Fatalf("cortex did not log its listening address within %s", testkit.StartTimeout)
		}
	}
	go func() {
		for range lines { // the pipe must not fill up while the test runs
		}
	}()
	if !regexp.MustCompile(` version=1\.2\.3-test revision=` + revisionRE + ` branch=` + regexp.QuoteMeta(branch) + ` build_date=2026-12-07T10:00:00Z `).MatchString(startLine) {
		t.Errorf("startup line %q, want the version, revision, branch and build date", startLine)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testkit.StartTimeout)
	defer cancel()
	getBody := func(path string) string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	var info struct {
		Status string
		Data   map[string]string
	}
	body := getBody("/prometheus/api/v1/status/buildinfo")
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("buildinfo %s: %v", body, err)
	}
	d := info.Data
	if info.Status != "success" || d["version"] != "1.2.3-test" || !regexp.MustCompile("^"+revisionRE+"$").MatchString(d["revision"]) ||
		d["branch"] != branch || d["buildUser"] != "tester@host" || d["buildDate"] != "2026-12-07T10:00:00Z" || !strings.HasPrefix(d["goVersion"], "go1.") {
		t.Errorf("buildinfo %s, want the stamped version, revision %s, branch %s, build user and date", body, revision, branch)
	}
	metrics := getBody("/metrics")
	if re := regexp.MustCompile(`\ncortex_build_info\{branch="` + regexp.QuoteMeta(branch) + `",.*revision="` + revisionRE + `",.*version="1\.2\.3-test"\} 1\n`); !re.MatchString(metrics) {
		t.Errorf("/metrics has no cortex_build_info with the stamped version:\n%s", grepLines(metrics, "build_info"))
	}
}
