package config

import (
	"flag"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// GeneralGroup is the heading of the flags whose name has no prefix
// (-target, -version, ...).
const GeneralGroup = "general"

// Help prints the flags of fs that include accepts (every flag when include
// is nil; never a flag whose value reports Deprecated, as Mimir hides
// them), grouped by component: the part of the name before its first dot
// (-server.*, -ingester.*, -blocks-storage.*), the flags without a prefix
// first and the groups in name order. Each flag is printed as the flag
// package prints it, with its default.
func Help(w io.Writer, fs *flag.FlagSet, include func(*flag.Flag) bool) {
	groups := map[string][]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		if d, ok := f.Value.(interface{ Deprecated() bool }); ok && d.Deprecated() {
			return
		}
		if include == nil || include(f) {
			g := FlagGroup(f.Name)
			groups[g] = append(groups[g], f)
		}
	})
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == GeneralGroup:
			return -1
		case b == GeneralGroup:
			return 1
		}
		return strings.Compare(a, b)
	})
	for i, g := range names {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s:\n", g)
		for _, f := range groups[g] {
			printFlag(w, f)
		}
	}
}

// FlagGroup is the component a flag belongs to in Help: its name up to the
// first dot, or GeneralGroup.
func FlagGroup(name string) string {
	if g, _, ok := strings.Cut(name, "."); ok {
		return g
	}
	return GeneralGroup
}

// MatchAny returns a filter accepting the flags whose name matches one of
// patterns (path.Match syntax: "server.http-tls-*").
func MatchAny(patterns []string) func(*flag.Flag) bool {
	return func(f *flag.Flag) bool {
		for _, p := range patterns {
			if ok, _ := path.Match(p, f.Name); ok {
				return true
			}
		}
		return false
	}
}

// printFlag prints one flag in the layout of flag.PrintDefaults.
func printFlag(w io.Writer, f *flag.Flag) {
	var b strings.Builder
	fmt.Fprintf(&b, "  -%s", f.Name)
	typ, usage := flag.UnquoteUsage(f)
	if typ != "" {
		b.WriteString(" " + typ)
	}
	b.WriteString("\n    \t")
	b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
	if !zeroDefault(f) {
		if typ == "string" {
			fmt.Fprintf(&b, " (default %q)", f.DefValue)
		} else {
			fmt.Fprintf(&b, " (default %v)", f.DefValue)
		}
	}
	fmt.Fprintln(w, b.String())
}

// zeroDefault reports a default the flag package would not print.
func zeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "0s", "[]", "<nil>":
		return true
	}
	return false
}
