package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/version"
)

func TestFill(t *testing.T) {
	bi := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/cortex-tls/cortex", Version: "v0.0.0-20261207110000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-07T11:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	ver, date := "", ""
	fill(bi, &ver, &date)
	if ver != "v0.0.0-20261207110000-0123456789ab+dirty" || date != "2026-12-07T11:00:00Z" {
		t.Errorf("from the toolchain's build information: version %q, date %q", ver, date)
	}

	// Link flags win.
	ver, date = "1.4.0", "20261207-11:30:00"
	fill(bi, &ver, &date)
	if ver != "1.4.0" || date != "20261207-11:30:00" {
		t.Errorf("with -ldflags values: version %q, date %q, want them kept", ver, date)
	}

	ver, date = "", ""
	fill(&debug.BuildInfo{}, &ver, &date)
	if ver != Devel || date != "" {
		t.Errorf("without build information: version %q, date %q", ver, date)
	}
}

// setBuild sets Prometheus' version variables as -ldflags -X does, for
// the test's duration.
func setBuild(t *testing.T, ver, rev, branch, user, date string) {
	t.Helper()
	old := []string{version.Version, version.Revision, version.Branch, version.BuildUser, version.BuildDate}
	version.Version, version.Revision, version.Branch, version.BuildUser, version.BuildDate = ver, rev, branch, user, date
	t.Cleanup(func() {
		version.Version, version.Revision, version.Branch, version.BuildUser, version.BuildDate = old[0], old[1], old[2], old[3], old[4]
	})
}

func TestGetAndPrint(t *testing.T) {
	setBuild(t, "1.4.0", "0123456789ab", "main", "ci@builder", "20261207-11:30:00")
	want := Info{Version: "1.4.0", Revision: "0123456789ab", Branch: "main", BuildUser: "ci@builder", BuildDate: "20261207-11:30:00", GoVersion: runtime.Version()}
	if got := Get(); got != want {
		t.Errorf("Get() = %+v, want %+v", got, want)
	}
	out := Print()
	for _, line := range []string{
		"cortex, version 1.4.0 (branch: main, revision: 0123456789ab)",
		"build user:       ci@builder",
		"build date:       20261207-11:30:00",
		"go version:       " + runtime.Version(),
	} {
		if !strings.Contains(out, line) {
			t.Errorf("Print() =\n%s\nwant a line %q", out, line)
		}
	}
}

func TestCollector(t *testing.T) {
	setBuild(t, "1.4.0", "0123456789ab", "main", "ci@builder", "20261207-11:30:00")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector())
	want := `# HELP cortex_build_info A metric with a constant '1' value labeled by version, revision, branch, goversion from which cortex was built, and the goos and goarch for the build.
# TYPE cortex_build_info gauge
cortex_build_info{branch="main",goarch="` + runtime.GOARCH + `",goos="` + runtime.GOOS + `",goversion="` + runtime.Version() + `",revision="0123456789ab",tags="` + version.GetTags() + `",version="1.4.0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cortex_build_info"); err != nil {
		t.Error(err)
	}
}
