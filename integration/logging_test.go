package integration

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestLogLinesNameTheProcess starts two processes of one cluster and finds
// the target and instance ID on every line each writes, from the first
// (the TLS loader's, the server's) to the start line.
func TestLogLinesNameTheProcess(t *testing.T) {
	dir := certDir(t)
	ing := testkit.StartCortex(t, append(mtlsFlags(dir), "-target=ingester", "-ring.store=memberlist", "-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port=0",
		"-ingester.lifecycler.ID=ingester-7", "-blocks-storage.tsdb.dir=tsdb", "-log.level=info")...)
	ing.WaitLog(`msg="starting cortex"`)
	checkLines(t, ing.Output(), regexp.MustCompile(` target=ingester instance=ingester-7( |$)`))

	// Without -ingester.lifecycler.ID, a process on loopback is
	// <hostname>-<gRPC port>; the kernel picks the port here, so the
	// instance is the hostname alone.
	dist := testkit.StartCortex(t, append(mtlsFlags(dir), "-target=distributor", "-ring.store=memberlist", "-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port=0", "-log.level=info")...)
	dist.WaitLog(`msg="starting cortex"`)
	checkLines(t, dist.Output(), regexp.MustCompile(` target=distributor instance=\S`))
}

var logLine = regexp.MustCompile(`^time=\S+ level=\S+ msg=`)

func checkLines(t *testing.T, out string, want *regexp.Regexp) {
	t.Helper()
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if !logLine.MatchString(line) {
			continue
		}
		n++
		if !want.MatchString(line) {
			t.Errorf("log line without %s: %s", want, line)
		}
	}
	if n < 3 {
		t.Errorf("only %d log lines:\n%s", n, out)
	}
}
