package cortex

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/cortex/cortexcompat"
)

// layoutExceptions are the flags of Cortex's whose YAML key here is not
// Cortex's, with the reason.
var layoutExceptions = map[string]string{
	// Cortex keeps both; here the deprecated flag is another name of
	// -ingester.max-exemplars.
	"blocks-storage.tsdb.max-exemplars": "limits.max_exemplars",
}

// changedKeys returns the YAML keys, in the file's layout, whose values
// differ between a and b.
func changedKeys(a, b *Config) []string {
	fileKey := map[string]string{}
	for _, m := range keyMoves {
		fileKey[m.Struct] = m.File
	}
	var out []string
	var walk func(x, y reflect.Value, path string)
	walk = func(x, y reflect.Value, path string) {
		if x.Kind() == reflect.Struct && !selfDecoding(x.Type()) {
			for i := range x.NumField() {
				f := x.Type().Field(i)
				name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if name == "-" || (!f.IsExported() && !f.Anonymous) {
					continue
				}
				p := path
				if !strings.Contains(opts, "inline") {
					if name == "" {
						name = strings.ToLower(f.Name)
					}
					p = strings.TrimPrefix(path+"."+name, ".")
				}
				walk(x.Field(i), y.Field(i), p)
			}
			return
		}
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			if f, ok := fileKey[path]; ok {
				path = f
			}
			out = append(out, path)
		}
	}
	walk(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "")
	return out
}

// selfDecoding reports whether t decodes its YAML itself (a leaf, like
// flagext.Secret), with yaml.v3's interface or yaml.v2's.
func selfDecoding(t reflect.Type) bool {
	for _, u := range []reflect.Type{reflect.TypeFor[yaml.Unmarshaler](), reflect.TypeFor[interface{ UnmarshalYAML(func(any) error) error }]()} {
		if t.Implements(u) || reflect.PointerTo(t).Implements(u) {
			return true
		}
	}
	return false
}

// Every flag this system shares with Cortex is stored at Cortex's YAML key:
// setting the flag changes that key, and only that key, of the
// configuration in the file's layout.
func TestFlagsAtCortexYAMLPaths(t *testing.T) {
	cortexPath := map[string]string{}
	for _, f := range cortexcompat.Flags() {
		cortexPath[f.Name] = f.Path
	}
	newConfig := func() (*Config, *flag.FlagSet) {
		var cfg Config
		fs := flag.NewFlagSet("cortex", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.RegisterFlags(fs)
		return &cfg, fs
	}
	base, fs := newConfig()
	checked := 0
	fs.VisitAll(func(f *flag.Flag) {
		want, ok := cortexPath[f.Name]
		if !ok {
			return
		}
		if p, ok := layoutExceptions[f.Name]; ok {
			want = p
		}
		cfg, fs := newConfig()
		set := false
		for _, v := range []string{"17", "true", "false", "17s", "probe", "1.5", "memberlist", "VersionTLS13", "debug", "json", "gzip", "shuffle-sharding", "RequireAndVerifyClientCert", "s3", "memcached", "blocks", "legacy", "10.0.0.0/8", `{"webhook":1}`} {
			if v != f.Value.String() && fs.Set(f.Name, v) == nil {
				set = true
				break
			}
		}
		if !set {
			t.Errorf("-%s: no probe value is accepted", f.Name)
			return
		}
		changed := changedKeys(base, cfg)
		switch {
		case len(changed) == 1 && changed[0] == want:
			checked++
		case len(changed) == 0 && fs.Lookup(f.Name).Value.String() == f.Value.String():
			// The probe value equals the default: nothing to see.
		default:
			t.Errorf("-%s: sets %v, Cortex's key is %s", f.Name, changed, want)
		}
	})
	if checked < 600 {
		t.Errorf("only %d flags checked", checked)
	}
	t.Logf("%d flags at Cortex's YAML keys", checked)
}
