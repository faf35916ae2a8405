// Package cortexcompat holds Cortex's own list of flags and YAML keys, the
// data this system's compatibility table and its refusals of Cortex's keys
// and flags are checked against.
package cortexcompat

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
)

// Version is the Cortex release the flags come from.
const Version = "v1.21.1"

// The flags of Cortex's configuration file reference, extracted by
// scripts/cortex-flags: comment lines, a header, then flag, YAML path and
// default, tab-separated.
//
//go:embed cortex-flags-1.21.tsv
var flagsTSV string

// Flag is one flag of Cortex's configuration reference.
type Flag struct {
	Name    string // without the leading dash
	Path    string // the dotted YAML path in Cortex's configuration file
	Default string // as Cortex's reference prints it
}

var parsed = sync.OnceValues(func() ([]Flag, error) { return parse(flagsTSV) })

// Flags returns Cortex's flags in the order of its configuration reference.
func Flags() []Flag {
	flags, err := parsed()
	if err != nil {
		panic(err) // the embedded file is checked by this package's tests
	}
	return flags
}

var byIndex = sync.OnceValues(func() (map[string]Flag, map[string]Flag) {
	byName, byPath := map[string]Flag{}, map[string]Flag{}
	for _, f := range Flags() {
		byName[f.Name] = f
		byPath[f.Path] = f
	}
	return byName, byPath
})

// ByName returns Cortex's flag called name (without the leading dash).
func ByName(name string) (Flag, bool) {
	byName, _ := byIndex()
	f, ok := byName[name]
	return f, ok
}

// ByPath returns Cortex's flag stored at the dotted YAML path.
func ByPath(path string) (Flag, bool) {
	_, byPath := byIndex()
	f, ok := byPath[path]
	return f, ok
}

func parse(tsv string) ([]Flag, error) {
	var flags []Flag
	header := false
	for i, line := range strings.Split(tsv, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !header {
			header = true
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 3 {
			return nil, fmt.Errorf("cortex-flags-1.21.tsv line %d: %d columns in %q, want 3", i+1, len(cols), line)
		}
		flags = append(flags, Flag{Name: cols[0], Path: cols[1], Default: cols[2]})
	}
	return flags, nil
}
