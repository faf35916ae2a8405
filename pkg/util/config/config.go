// Package config loads a Cortex-style configuration: flag defaults, then a
// YAML file, then command-line flags, in increasing order of precedence.
//
// It knows no component: it must not import other packages of this module,
// and fills whatever configuration struct its caller registers.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

const (
	fileFlag      = "config.file"
	expandEnvFlag = "config.expand-env"
)

// Registerer is implemented by the root config.
type Registerer interface{ RegisterFlags(f *flag.FlagSet) }

// Load fills cfg from its flag defaults, then the YAML file named by
// -config.file (if any), then args, so command-line flags override the file.
// It registers -config.file and -config.expand-env on fs itself.
func Load(fs *flag.FlagSet, args []string, cfg Registerer) error {
	var file string
	var expandEnv bool
	cfg.RegisterFlags(fs)
	fs.StringVar(&file, fileFlag, "", "YAML configuration file to load; command-line flags override it.")
	fs.BoolVar(&expandEnv, expandEnvFlag, false, "Expand ${VAR} and $VAR in the configuration file from the environment.")

	// The file must be read before fs.Parse so flags win over it, but
	// finding -config.file needs the flag package's own syntax rules (which
	// flags are boolean, "-f v" vs "-f=v"). So dry-run the args against a copy
	// of fs whose other flags discard their values. On any syntax error
	// (unknown flag, -help, ...) skip the file and let fs.Parse report it.
	if err := dryRun(fs, args, &file, &expandEnv); err != nil {
		if why := explainFlag(cfg, err); why != "" {
			// Refused as fs.Parse refuses an undefined flag, in other words.
			fmt.Fprintln(fs.Output(), why)
			if fs.Usage != nil {
				fs.Usage()
			}
			return errors.New(why)
		}
		if perr := fs.Parse(args); perr != nil {
			return perr
		}
		return err
	}
	if file != "" {
		if err := loadFile(file, expandEnv, cfg); err != nil {
			return err
		}
	}
	return fs.Parse(args)
}

func dryRun(fs *flag.FlagSet, args []string, file *string, expandEnv *bool) error {
	dry := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	dry.SetOutput(io.Discard)
	dry.Usage = func() {}
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case fileFlag:
			dry.StringVar(file, f.Name, "", "")
		case expandEnvFlag:
			dry.BoolVar(expandEnv, f.Name, false, "")
		default:
			bf, ok := f.Value.(interface{ IsBoolFlag() bool })
			dry.Var(discard{ok && bf.IsBoolFlag()}, f.Name, "")
		}
	})
	return dry.Parse(args)
}

// undefinedFlag is how the flag package refuses a flag it does not know.
const undefinedFlag = "flag provided but not defined: -"

// explainFlag returns cfg's explanation of the flag err refuses as
// undefined, or "".
func explainFlag(cfg Registerer, err error) string {
	e, ok := cfg.(Explainer)
	name, undefined := strings.CutPrefix(err.Error(), undefinedFlag)
	if !ok || !undefined {
		return ""
	}
	return e.ExplainFlag(name)
}

// discard accepts any value; it stands in for real flags during the dry run.
type discard struct{ isBool bool }

func (discard) String() string     { return "" }
func (discard) Set(string) error   { return nil }
func (d discard) IsBoolFlag() bool { return d.isBool }

func loadFile(path string, expandEnv bool, cfg any) error {
	buf, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading -%s: %w", fileFlag, err)
	}
	if expandEnv {
		buf = []byte(os.ExpandEnv(string(buf)))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(buf, &doc); err != nil {
		return fmt.Errorf("parsing -%s %q: %w", fileFlag, path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("parsing -%s %q: line %d: the file must be a mapping of keys", fileFlag, path, root.Line)
	}
	if err := checkAndMove(root, cfg); err != nil {
		return fmt.Errorf("-%s %q: %w", fileFlag, path, err)
	}
	// Decoding over cfg keeps the flag defaults for keys the file omits.
	if err := root.Decode(cfg); err != nil {
		return fmt.Errorf("parsing -%s %q: %w", fileFlag, path, err)
	}
	return nil
}

// Dump returns cfg as YAML, in the file's layout when cfg is a Layout.
// Secrets are masked because flagext.Secret marshals non-empty values as
// "********", so the output is safe to log or serve but does not round-trip
// them.
func Dump(cfg any) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("marshalling config: %w", err)
	}
	if layout, ok := cfg.(Layout); ok && doc.Kind == yaml.MappingNode {
		for _, m := range layout.KeyMoves() {
			if err := moveKey(&doc, m.Struct, m.File); err != nil {
				return nil, fmt.Errorf("marshalling config: %w", err)
			}
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("marshalling config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshalling config: %w", err)
	}
	return b.Bytes(), nil
}
