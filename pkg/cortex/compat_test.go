package cortex

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/cortex-tls/cortex/pkg/api"
	"github.com/cortex-tls/cortex/pkg/cortex/cortexcompat"
	"github.com/cortex-tls/cortex/pkg/util/config"
)

var updateCompat = flag.Bool("update", false, "rewrite docs/cortex-compatibility.md from this tree's flags and routes")

// The Cortex release the flag and path lists come from (scripts/cortex-flags
// extracts them from its docs).
const (
	cortexVersion = cortexcompat.Version
	compatDoc     = "../../docs/cortex-compatibility.md"
	cortexAPIFile = "../../integration/testdata/cortex-api-1.21.tsv"
)

// cortexFlag is one flag of Cortex's configuration reference.
type cortexFlag struct{ name, path, def string }

// cortexPath is one row of Cortex's HTTP API table.
type cortexPath struct{ service, methods, path, api string }

// readTSV returns the rows of a tab-separated file after its comment lines
// and its column header.
func readTSV(t *testing.T, file string, columns int) [][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	s := bufio.NewScanner(f)
	header := false
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if !header {
			header = true
			continue
		}
		row := strings.Split(line, "\t")
		if len(row) != columns {
			t.Fatalf("%s: %d columns in %q, want %d", file, len(row), line, columns)
		}
		rows = append(rows, row)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// ourFlagSet is every flag this system's configuration accepts, registered
// as the process registers them.
func ourFlagSet(t *testing.T) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("cortex", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg Config
	if err := config.Load(fs, nil, &cfg); err != nil {
		t.Fatal(err)
	}
	return fs
}

// sameDefault compares Cortex's documented default with a flag's default:
// quotes, duration spellings (1m, 1m0s), number spellings and list
// brackets aside.
func sameDefault(cortex, ours string) bool {
	norm := func(s string) string {
		s = strings.Trim(s, `"`)
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			s = strings.Join(strings.Fields(strings.ReplaceAll(s[1:len(s)-1], ",", " ")), ",")
		}
		if s == "{}" {
			s = ""
		}
		return s
	}
	c, o := norm(cortex), norm(ours)
	if c == o {
		return true
	}
	if cd, ok := parseAnyDuration(c); ok {
		if od, ok := parseAnyDuration(o); ok {
			return cd == od
		}
	}
	if cf, err := strconv.ParseFloat(c, 64); err == nil {
		if of, err := strconv.ParseFloat(o, 64); err == nil {
			return cf == of
		}
	}
	return false
}

func parseAnyDuration(s string) (time.Duration, bool) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, true
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), true
	}
	return 0, false
}

// flagClass is where a Cortex flag stands here.
type flagClass struct {
	flag    cortexFlag
	ours    *flag.Flag // nil: not accepted here
	same    bool
	reason  string        // why the default differs
	feature compatFeature // the feature not built
}

type compatReport struct {
	classes      []flagClass
	extensions   []*flag.Flag
	paths        []cortexPath
	pathHere     map[cortexPath]string
	unclassified []string
	// features are the features not built, in the order their first flag
	// appears in Cortex's reference.
	features []compatFeature
}

func classifyFlags(t *testing.T) compatReport {
	t.Helper()
	fs := ourFlagSet(t)
	var r compatReport
	cortexNames := map[string]bool{}
	usedReasons := map[string]bool{}
	for _, cf := range cortexcompat.Flags() {
		f := cortexFlag{cf.Name, cf.Path, cf.Default}
		cortexNames[f.name] = true
		c := flagClass{flag: f, ours: fs.Lookup(f.name)}
		switch {
		case c.ours != nil && sameDefault(f.def, c.ours.DefValue):
			c.same = true
		case c.ours != nil:
			reason, ok := compatDefaultReasons[f.name]
			if !ok {
				r.unclassified = append(r.unclassified, fmt.Sprintf("-%s: default %q here, %q in Cortex: add the reason to compatDefaultReasons", f.name, c.ours.DefValue, f.def))
			}
			usedReasons[f.name] = true
			c.reason = reason
		default:
			feature, ok := notBuiltFeature(f.name, f.path)
			if !ok {
				r.unclassified = append(r.unclassified, fmt.Sprintf("-%s (%s) is not accepted here: add it to a feature of compatNotBuilt", f.name, f.path))
			}
			c.feature = feature
			if ok && !slices.ContainsFunc(r.features, func(g compatFeature) bool { return g.Name == feature.Name }) {
				r.features = append(r.features, feature)
			}
		}
		r.classes = append(r.classes, c)
	}
	for name := range compatDefaultReasons {
		if !usedReasons[name] {
			r.unclassified = append(r.unclassified, fmt.Sprintf("compatDefaultReasons explains -%s, whose default is Cortex's or which Cortex lacks: remove it", name))
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if d, ok := f.Value.(interface{ Deprecated() bool }); ok && d.Deprecated() && !cortexNames[f.Name] {
			return // an older Cortex's name (deprecated.go), not an extension
		}
		if !cortexNames[f.Name] {
			r.extensions = append(r.extensions, f)
		}
	})
	slices.Sort(r.unclassified)
	return r
}

// routePattern turns a route path (ServeMux syntax) into a regexp over
// Cortex's documented paths, whose parameters are {name} too.
func routePattern(p string) *regexp.Regexp {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			parts[i] = `\{[^/]+\}`
		} else {
			parts[i] = regexp.QuoteMeta(s)
		}
	}
	return regexp.MustCompile("^" + strings.TrimSuffix(strings.Join(parts, "/"), "/") + "/?$")
}

// servedHere says how this system serves a Cortex path: "yes" with each
// of Cortex's methods, the methods it answers when they differ, or "no". A
// subtree route (a trailing slash) serves only its own path: the
// Prometheus API's catch-all answers unknown paths with 404.
func servedHere(routes []api.Route, p cortexPath) string {
	cortexPath := strings.NewReplacer("<prometheus-http-prefix>", "/prometheus", "/<alertmanager-http-prefix>", "/alertmanager").Replace(p.path)
	if cortexPath == "/" {
		return "yes" // the index page, the mux's own route
	}
	var methods []string
	anyMethod := false
	for _, r := range routes {
		if !routePattern(r.Path).MatchString(cortexPath) {
			continue
		}
		if len(r.Methods) == 0 {
			anyMethod = true
		}
		for _, m := range r.Methods {
			if m != http.MethodOptions && !slices.Contains(methods, m) {
				methods = append(methods, m)
			}
		}
	}
	if anyMethod {
		return "yes"
	}
	if len(methods) == 0 {
		return "no"
	}
	for _, m := range strings.Split(p.methods, ",") {
		if !slices.Contains(methods, m) {
			slices.Sort(methods)
			return strings.Join(methods, ",") + " only"
		}
	}
	return "yes"
}

// allRoutes are the routes of a -target=all process with every optional
// page on, and of the targets not in all (-target=overrides). Routes are
// mounted when the modules are built, so each process is stopped as soon
// as it starts.
func allRoutes(t *testing.T) []api.Route {
	t.Helper()
	runtimeFile := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(runtimeFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	routes := routesOf(t,
		"-distributor.ha-tracker.enable=true", "-distributor.ha-tracker.store=inmemory",
		"-ruler.enable-sharding=true", "-ruler.enable-api=true",
		"-store-gateway.sharding-enabled=true", "-compactor.sharding-enabled=true",
		"-alertmanager.sharding-enabled=true", "-experimental.alertmanager.enable-api=true",
	)
	return append(routes, routesOf(t, "-target=overrides", "-runtime-config.file="+runtimeFile, "-runtime-config.filesystem.dir=/")...)
}

func routesOf(t *testing.T, args ...string) []api.Route {
	t.Helper()
	c, err := New(loadConfig(t, args...), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	routes := c.API.Routes()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = c.Run(ctx) // stopped before it served: modules report the cancelled start
	return routes
}

// TestCortexCompatibility classifies every flag of Cortex's configuration
// reference and every path of its HTTP API, and checks that
// docs/cortex-compatibility.md shows exactly that (-update rewrites it).
func TestCortexCompatibility(t *testing.T) {
	r := classifyFlags(t)
	for _, u := range r.unclassified {
		t.Error(u)
	}
	routes := allRoutes(t)
	r.pathHere = map[cortexPath]string{}
	for _, row := range readTSV(t, cortexAPIFile, 4) {
		p := cortexPath{row[0], row[1], row[2], row[3]}
		r.paths = append(r.paths, p)
		r.pathHere[p] = servedHere(routes, p)
	}
	doc := renderCompatDoc(r)
	if *updateCompat {
		if err := os.WriteFile(compatDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	committed, err := os.ReadFile(compatDoc)
	if err != nil {
		t.Fatalf("%v: generate it with go test ./pkg/cortex -run TestCortexCompatibility -update", err)
	}
	if string(committed) != doc {
		t.Errorf("docs/cortex-compatibility.md differs from what this tree's flags and routes give (first difference at line %d): regenerate it with go test ./pkg/cortex -run TestCortexCompatibility -update", firstDiffLine(string(committed), doc))
	}
}

func firstDiffLine(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// The compatibility page says why each feature whose keys are refused is
// not built, not only that its keys are refused.
func TestNotBuiltFeaturesSayWhy(t *testing.T) {
	for _, nb := range NotBuilt {
		if notBuiltWhy[nb.Feature] == "" {
			t.Errorf("NotBuilt feature %q (key %s) has no reason in notBuiltWhy", nb.Feature, nb.Key)
		}
	}
	for feature := range notBuiltWhy {
		if !slices.ContainsFunc(NotBuilt, func(nb NotBuiltKey) bool { return nb.Feature == feature }) {
			t.Errorf("notBuiltWhy gives a reason for %q, which NotBuilt does not list", feature)
		}
	}
}
