// Command cortex-flags extracts Cortex's flags and HTTP paths from its
// documentation, for the compatibility table pkg/cortex's
// TestCortexCompatibility checks and docs/cortex-compatibility.md shows.
//
//	go run ./scripts/cortex-flags -cortex-dir $(go env GOMODCACHE)/github.com/cortexproject/cortex@v1.21.1 -version v1.21.1
//
// Flags come from docs/configuration/config-file-reference.md: every
// "# CLI flag: -name" line and the "[key: <type> | default = value]" line
// after it, with its YAML path; the blocks the reference describes once
// (consul_config, memcached_client_config, ...) are expanded under every
// path and flag prefix that references them. HTTP paths come from the
// endpoint table of docs/api/_index.md.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

func main() {
	dir := flag.String("cortex-dir", "", "Cortex source tree (a module cache copy or a checkout).")
	version := flag.String("version", "", "Cortex version of that tree, written in the files' headers.")
	flagsOut := flag.String("flags-out", "pkg/cortex/cortexcompat/cortex-flags-1.21.tsv", "Where to write the flags.")
	pathsOut := flag.String("paths-out", "integration/testdata/cortex-api-1.21.tsv", "Where to write the HTTP paths.")
	flag.Parse()
	if *dir == "" || *version == "" {
		fmt.Fprintln(os.Stderr, "cortex-flags: -cortex-dir and -version are required")
		os.Exit(2)
	}
	if err := run(*dir, *version, *flagsOut, *pathsOut); err != nil {
		fmt.Fprintln(os.Stderr, "cortex-flags:", err)
		os.Exit(1)
	}
}

func run(dir, version, flagsOut, pathsOut string) error {
	refPath := filepath.Join(dir, "docs", "configuration", "config-file-reference.md")
	ref, err := os.ReadFile(refPath)
	if err != nil {
		return err
	}
	flags, err := extractFlags(string(ref))
	if err != nil {
		return fmt.Errorf("%s: %w", refPath, err)
	}
	apiPath := filepath.Join(dir, "docs", "api", "_index.md")
	api, err := os.ReadFile(apiPath)
	if err != nil {
		return err
	}
	paths, err := extractPaths(string(api))
	if err != nil {
		return fmt.Errorf("%s: %w", apiPath, err)
	}
	header := func(w io.Writer, source, columns string) {
		fmt.Fprintf(w, "# Cortex %s, %s (github.com/cortexproject/cortex), Apache License 2.0.\n", version, source)
		fmt.Fprintf(w, "# Extracted by: go run ./scripts/cortex-flags -cortex-dir <Cortex %s tree> -version %s\n", version, version)
		fmt.Fprintln(w, columns)
	}
	if err := writeFile(flagsOut, func(w io.Writer) {
		header(w, "docs/configuration/config-file-reference.md", "flag\tyaml_path\tdefault")
		for _, f := range flags {
			fmt.Fprintf(w, "%s\t%s\t%s\n", f.name, f.path, f.def)
		}
	}); err != nil {
		return err
	}
	return writeFile(pathsOut, func(w io.Writer) {
		header(w, "docs/api/_index.md", "service\tmethods\tpath\tapi")
		for _, p := range paths {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.service, p.methods, p.path, p.api)
		}
	})
}

func writeFile(path string, write func(io.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	write(w)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type cortexFlag struct{ name, path, def string }

// block is one "### `name`" section of the reference: the flag prefixes it
// is used with and its YAML lines.
type block struct {
	prefixes []string
	lines    []string
}

var (
	sectionRe = regexp.MustCompile("^### `([A-Za-z0-9_]+)`")
	prefixRe  = regexp.MustCompile("^- (?:`([^`]+)`|_no prefix_)")
	cliFlagRe = regexp.MustCompile(`^# CLI flag: -(\S+)`)
	// [key: <type> | default = value], where value may be empty.
	fieldRe = regexp.MustCompile(`^\[([A-Za-z0-9_]+): <([^>]+)>(?: \| default = (.*))?\]$`)
	// [key: <block_config>], a reference to another section.
	refRe       = regexp.MustCompile(`^\[([A-Za-z0-9_]+): <([A-Za-z0-9_]+)>\]$`)
	refPrefixRe = regexp.MustCompile(`^# The CLI flags prefix for this block config is: (\S+)`)
	mapKeyRe    = regexp.MustCompile(`^([A-Za-z0-9_]+):$`)
)

// extractFlags walks the root block and every block it references.
func extractFlags(ref string) ([]cortexFlag, error) {
	blocks := map[string]*block{}
	var root *block
	var cur *block
	inYAML := false
	for _, line := range strings.Split(ref, "\n") {
		switch {
		case strings.HasPrefix(line, "### Supported contents"):
			root = &block{}
			cur = root
			continue
		case sectionRe.MatchString(line):
			cur = &block{}
			blocks[sectionRe.FindStringSubmatch(line)[1]] = cur
			continue
		}
		if cur == nil {
			continue
		}
		if strings.HasPrefix(line, "```") {
			inYAML = strings.HasPrefix(line, "```yaml")
			continue
		}
		if inYAML {
			cur.lines = append(cur.lines, line)
		} else if m := prefixRe.FindStringSubmatch(line); m != nil {
			cur.prefixes = append(cur.prefixes, m[1])
		}
	}
	if root == nil {
		return nil, errors.New("no \"Supported contents\" section")
	}
	w := &walker{blocks: blocks, seen: map[string]bool{}}
	if err := w.walk(root, "", "", 0); err != nil {
		return nil, err
	}
	return w.flags, nil
}

type walker struct {
	blocks map[string]*block
	flags  []cortexFlag
	seen   map[string]bool
}

// walk emits the flags of b under the YAML path base, replacing <prefix>
// with prefix.
func (w *walker) walk(b *block, base, prefix string, depth int) error {
	if depth > 10 {
		return fmt.Errorf("blocks nested deeper than 10 under %s", base)
	}
	type level struct {
		indent int
		key    string
	}
	var stack []level
	var pendingFlag, pendingPrefix string
	for _, raw := range b.lines {
		line := strings.TrimSpace(raw)
		if line == "" {
			continue
		}
		indent := len(raw) - len(strings.TrimLeft(raw, " "))
		if !strings.HasPrefix(line, "#") {
			for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
				stack = stack[:len(stack)-1]
			}
		}
		path := func(key string) string {
			parts := []string{}
			if base != "" {
				parts = append(parts, base)
			}
			for _, l := range stack {
				parts = append(parts, l.key)
			}
			return strings.Join(append(parts, key), ".")
		}
		switch {
		case cliFlagRe.MatchString(line):
			pendingFlag = cliFlagRe.FindStringSubmatch(line)[1]
		case refPrefixRe.MatchString(line):
			pendingPrefix = refPrefixRe.FindStringSubmatch(line)[1]
		case strings.HasPrefix(line, "#"):
		case mapKeyRe.MatchString(line):
			stack = append(stack, level{indent, mapKeyRe.FindStringSubmatch(line)[1]})
			pendingFlag, pendingPrefix = "", ""
		case pendingFlag != "" && fieldRe.MatchString(line):
			m := fieldRe.FindStringSubmatch(line)
			name := pendingFlag
			if strings.HasPrefix(name, "<prefix>.") {
				if prefix == "" {
					name = strings.TrimPrefix(name, "<prefix>.")
				} else {
					name = prefix + strings.TrimPrefix(name, "<prefix>")
				}
			}
			if !w.seen[name] {
				w.seen[name] = true
				w.flags = append(w.flags, cortexFlag{name: name, path: path(m[1]), def: strings.TrimSpace(m[3])})
			}
			pendingFlag, pendingPrefix = "", ""
		case refRe.MatchString(line):
			m := refRe.FindStringSubmatch(line)
			sub, ok := w.blocks[m[2]]
			if ok {
				p := pendingPrefix
				if p == "" && len(sub.prefixes) == 1 {
					p = sub.prefixes[0]
				}
				if err := w.walk(sub, path(m[1]), p, depth+1); err != nil {
					return err
				}
			}
			pendingFlag, pendingPrefix = "", ""
		default:
			pendingFlag, pendingPrefix = "", ""
		}
	}
	return nil
}

type cortexPath struct{ service, methods, path, api string }

var endpointRe = regexp.MustCompile("^\\| \\[([^\\]]+)\\]\\([^)]*\\) \\| ([^|]+)\\|[^|]*\\| `([A-Z,]+) ([^`]+)` \\|")

// extractPaths reads the endpoint table of the HTTP API page.
func extractPaths(api string) ([]cortexPath, error) {
	var paths []cortexPath
	for _, line := range strings.Split(api, "\n") {
		m := endpointRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		service := strings.Trim(strings.TrimSpace(m[2]), "_")
		p := cortexPath{service: service, methods: m[3], path: m[4], api: strings.TrimSpace(m[1])}
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil, errors.New("no endpoint table")
	}
	return paths, nil
}
