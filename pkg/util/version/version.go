// Package version is what the binary knows of its own build: the version,
// revision, branch, build user and build date, as Prometheus reports them
// on /api/v1/status/buildinfo and in the cortex_build_info metric.
//
// As in Cortex, the values live in github.com/prometheus/common/version,
// whose variables `make build` sets with -ldflags -X (Version, Branch,
// BuildUser, BuildDate). What the link flags leave empty comes from the
// build information the Go toolchain embeds: the module version, and the
// VCS revision (with -modified for a work tree with uncommitted changes)
// and commit time.
package version

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
)

// Program is the program name of the version line and the namespace of
// the build_info metric.
const Program = "cortex"

// Devel is the version of a binary built without a version: by `go test`,
// or `go run` outside a VCS work tree.
const Devel = "(devel)"

// Info is Prometheus' PrometheusVersion, the data of
// /api/v1/status/buildinfo.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

// The Go toolchain's build information completes the link flags once, at
// start: the variables are the binary's constants from then on, read by
// Prometheus' collector and version line as well as by Get.
func init() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	fill(bi, &version.Version, &version.BuildDate)
}

// fill sets the version and the build date, where empty, from bi: its
// module version and its VCS commit time. The revision needs no filling:
// Prometheus' version package reads vcs.revision (with -modified for a
// tree with uncommitted changes) when no link flag set one.
func fill(bi *debug.BuildInfo, ver, date *string) {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if *ver == "" {
		*ver = Devel
		if bi.Main.Version != "" {
			*ver = bi.Main.Version
		}
	}
	if *date == "" {
		*date = settings["vcs.time"]
	}
}

// Get returns the build's information.
func Get() Info {
	return Info{
		Version:   version.Version,
		Revision:  version.GetRevision(),
		Branch:    version.Branch,
		BuildUser: version.BuildUser,
		BuildDate: version.BuildDate,
		GoVersion: version.GoVersion,
	}
}

// Print is the -version output: Prometheus' version block for cortex.
func Print() string { return version.Print(Program) }

// NewCollector is the cortex_build_info gauge, always 1, labelled with
// the version, revision, branch, Go version, OS and architecture.
func NewCollector() prometheus.Collector { return versioncollector.NewCollector(Program) }
