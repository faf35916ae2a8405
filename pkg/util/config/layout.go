package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Move relocates one key between the file's layout and the configuration
// struct: File is where Cortex's configuration file reference puts it, Struct
// where the struct's YAML tags keep it. Both are dotted paths from the root.
type Move struct{ File, Struct string }

// Layout is implemented by a root configuration whose file layout is not
// exactly its struct's: some keys are kept elsewhere in the struct (Moves),
// and some keys are refused whatever the struct says (CheckKey).
type Layout interface {
	// KeyMoves lists the keys the file writes at a path other than the
	// struct's. A file may not set a Move's Struct path itself.
	KeyMoves() []Move
	// CheckKey is asked about every key of the file, by its full dotted path
	// in the file's layout and, for a scalar, its value. A non-nil error
	// refuses the key.
	CheckKey(path, value string) error
}

// Explainer is implemented by a root configuration that can say why a key
// or flag it does not accept is refused, such as one of a feature not built;
// what it does not explain is refused as unknown.
type Explainer interface {
	// ExplainKey is asked about each key of the file the struct has no
	// field for, by its full dotted path. A non-empty why refuses the key
	// with it; block reports that the path holds keys ExplainKey knows, so
	// those under it are refused one by one.
	ExplainKey(path string) (why string, block bool)
	// ExplainFlag is asked about a command-line flag that is not
	// registered, by its name without dashes; "" leaves Go's own error.
	ExplainFlag(name string) string
}

// The interfaces of types that decode their YAML themselves: yaml.v3's,
// and yaml.v2's that yaml.v3 still calls (flagext.Secret has it).
var unmarshalerTypes = []reflect.Type{
	reflect.TypeFor[yaml.Unmarshaler](),
	reflect.TypeFor[interface{ UnmarshalYAML(func(any) error) error }](),
}

// keyError is one refused key of a file.
type keyError struct {
	line int
	msg  string
}

// checkAndMove refuses the keys of doc's root mapping that cfg's layout or
// struct does not accept, naming each by its full path and line, then moves
// the keys of layout.KeyMoves to the struct's paths so doc decodes into cfg.
func checkAndMove(root *yaml.Node, cfg any) error {
	layout, _ := cfg.(Layout)
	var moves []Move
	if layout != nil {
		moves = layout.KeyMoves()
	}
	var errs []keyError
	// Keys under a Move's Struct path that no Move brought there are the
	// struct's private spelling, not the file's.
	structOnly := map[string]string{}
	for _, m := range moves {
		structOnly[m.Struct] = m.File
	}
	filePath := map[*yaml.Node]string{}
	refused := map[*yaml.Node]bool{} // keys already reported
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := join(prefix, k.Value)
				filePath[k] = path
				if file, ok := structOnly[path]; ok {
					msg := fmt.Sprintf("unknown key %s (line %d)", path, k.Line)
					if file != "" {
						msg += ": the configuration file reference names it " + file
					}
					errs = append(errs, keyError{k.Line, msg})
					refused[k] = true
					continue
				}
				if layout != nil {
					value := ""
					if v.Kind == yaml.ScalarNode {
						value = v.Value
					}
					if err := layout.CheckKey(path, value); err != nil {
						errs = append(errs, keyError{k.Line, fmt.Sprintf("key %s (line %d): %v", path, k.Line, err)})
						refused[k] = true
						continue
					}
				}
				walk(v, path)
			}
		case yaml.SequenceNode:
			for i, e := range n.Content {
				walk(e, fmt.Sprintf("%s[%d]", prefix, i))
			}
		}
	}
	walk(root, "")
	// The keys refused are reported: drop them, and check the rest.
	dropKeys(root, refused)
	for _, m := range moves {
		if err := moveKey(root, m.File, m.Struct); err != nil {
			return err
		}
	}
	// The mappings that held only moved keys are left behind, empty or
	// with keys of their own, which are unknown.
	containers := map[string]bool{}
	for _, m := range moves {
		segs := strings.Split(m.File, ".")
		for i := 1; i < len(segs); i++ {
			containers[strings.Join(segs[:i], ".")] = true
		}
	}
	c := checker{filePath: filePath, containers: containers, structOnly: structOnly, moved: map[string][]string{}}
	c.explainer, _ = cfg.(Explainer)
	for _, m := range moves {
		if m.File == "" {
			continue
		}
		segs := strings.Split(m.File, ".")
		for i := range segs {
			dir := strings.Join(segs[:i], ".")
			if !slices.Contains(c.moved[dir], segs[i]) {
				c.moved[dir] = append(c.moved[dir], segs[i])
			}
		}
	}
	c.check(root, reflect.TypeOf(cfg), "")
	errs = append(errs, c.errs...)
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b keyError) int { return a.line - b.line })
	if len(errs) == 1 {
		return fmt.Errorf("%s", errs[0].msg)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d keys refused:", len(errs))
	for _, e := range errs {
		b.WriteString("\n  " + e.msg)
	}
	return fmt.Errorf("%s", b.String())
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// checker walks a file's nodes alongside the types they decode into.
type checker struct {
	filePath   map[*yaml.Node]string // each key's path in the file as written
	containers map[string]bool       // the file's paths that hold moved keys
	structOnly map[string]string     // the struct's paths the file may not set
	moved      map[string][]string   // the file's keys (or blocks) of moved keys, by the path holding them
	explainer  Explainer             // nil: every key refused is unknown
	errs       []keyError
}

// path is k's path in the file: as written, or under prefix when k is not
// from the file.
func (c *checker) path(k *yaml.Node, prefix string) string {
	if p, ok := c.filePath[k]; ok {
		return p
	}
	return join(prefix, k.Value)
}

// check reports every mapping key under n that t has no field for.
func (c *checker) check(n *yaml.Node, t reflect.Type, prefix string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for _, u := range unmarshalerTypes {
		if reflect.PointerTo(t).Implements(u) || t.Implements(u) {
			return // decodes itself: its own errors name what is wrong
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Struct:
			fields := map[string]reflect.Type{}
			anyKey := structFields(t, fields)
			var known []string // the keys a file may set here
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := c.path(k, prefix)
				ft, ok := fields[k.Value]
				switch {
				case ok:
					c.check(v, ft, path)
				case anyKey != nil:
					c.check(v, anyKey, path)
				default:
					if known == nil {
						dir, _, _ := cutLast(path)
						for name := range fields {
							if _, private := c.structOnly[join(dir, name)]; !private {
								known = append(known, name)
							}
						}
						known = append(known, c.moved[dir]...)
					}
					c.unknown(k, v, path, known)
				}
			}
		case reflect.Map:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				c.check(v, t.Elem(), c.path(k, prefix))
			}
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range n.Content {
				c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", prefix, i))
			}
		}
	}
}

// unknown reports the key k with value v at path, a sibling of the keys
// known, or, when path holds moved keys or keys the explainer knows, the
// keys left in it.
func (c *checker) unknown(k, v *yaml.Node, path string, known []string) {
	block := false
	if c.explainer != nil {
		why, b := c.explainer.ExplainKey(path)
		if why != "" {
			c.errs = append(c.errs, keyError{k.Line, fmt.Sprintf("%s (line %d): %s", path, k.Line, why)})
			return
		}
		block = b
	}
	if (!c.containers[path] && !block) || v.Kind != yaml.MappingNode {
		msg := fmt.Sprintf("unknown key %s (line %d)", path, k.Line)
		if near := closest(lastSegment(path), known); near != "" {
			dir, _, _ := cutLast(path)
			msg += ": did you mean " + join(dir, near) + "?"
		}
		c.errs = append(c.errs, keyError{k.Line, msg})
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		c.unknown(v.Content[i], v.Content[i+1], c.path(v.Content[i], path), c.moved[path])
	}
}

// cutLast splits a dotted path before its last key.
func cutLast(path string) (dir, name string, ok bool) {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return "", path, false
	}
	return path[:i], path[i+1:], true
}

func lastSegment(path string) string {
	_, name, _ := cutLast(path)
	return name
}

// closest returns the key of known nearest to key, within an edit distance
// of 2 and of fewer than half key's characters (so "host" does not suggest
// "port"), or "".
func closest(key string, known []string) string {
	best, bestDist := "", min(3, (len(key)+1)/2)
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist || (d == bestDist && best != "" && k < best) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// structFields adds t's YAML keys to fields, following inline structs; an
// inline map accepts any key, whose value type it returns.
func structFields(t reflect.Type, fields map[string]reflect.Type) (anyKey reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Struct:
				if a := structFields(ft, fields); a != nil {
					anyKey = a
				}
			case reflect.Map:
				anyKey = ft.Elem()
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return anyKey
}

// moveKey moves the key at path from (if the file sets it) to path to,
// creating the mappings on the way; with to empty, it removes the key.
func moveKey(root *yaml.Node, from, to string) error {
	parent, idx := find(root, from)
	if parent == nil {
		return nil
	}
	k, v := parent.Content[idx], parent.Content[idx+1]
	if p, _ := find(root, to); to != "" && p != nil {
		return fmt.Errorf("key %s (line %d): set twice", from, k.Line)
	}
	parent.Content = slices.Delete(parent.Content, idx, idx+2)
	if to == "" {
		return nil // a key the file's layout does not have
	}
	segs := strings.Split(to, ".")
	n := root
	for _, s := range segs[:len(segs)-1] {
		next := child(n, s)
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: k.Line}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Line: k.Line}, next)
		}
		if next.Kind != yaml.MappingNode {
			return fmt.Errorf("key %s (line %d): not a mapping", s, next.Line)
		}
		n = next
	}
	k.Value = segs[len(segs)-1]
	n.Content = append(n.Content, k, v)
	return nil
}

// find returns the mapping holding the key at path and the key's index.
func find(root *yaml.Node, path string) (*yaml.Node, int) {
	segs := strings.Split(path, ".")
	n := root
	for _, s := range segs[:len(segs)-1] {
		if n = child(n, s); n == nil {
			return nil, 0
		}
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == segs[len(segs)-1] {
			return n, j
		}
	}
	return nil, 0
}

// dropKeys removes the keys in drop, with their values, from the mappings
// under n.
func dropKeys(n *yaml.Node, drop map[*yaml.Node]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !drop[n.Content[i]] {
				dropKeys(n.Content[i+1], drop)
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
		}
		n.Content = kept
	case yaml.SequenceNode:
		for _, e := range n.Content {
			dropKeys(e, drop)
		}
	}
}

// child returns the value of key in mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == key {
			return n.Content[j+1]
		}
	}
	return nil
}
