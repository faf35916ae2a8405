package main

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/cortex"
	"github.com/cortex-tls/cortex/pkg/util/config"
)

func TestHelpPrintsCommonFlagsByComponent(t *testing.T) {
	for _, arg := range []string{"-help", "-h", "--help"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{arg}, &stdout, &stderr); code != 0 {
			t.Fatalf("run(%s) = %d; stderr: %s", arg, code, stderr.String())
		}
		out := stdout.String()
		for _, want := range []string{
			"Usage: cortex [flags]\n",
			"cortex certs generate [flags]",
			"Common flags, by component; -help-all prints every flag:\n\ngeneral:\n  -help-all\n",
			"\nconfig:\n  -config.expand-env\n",
			"  -config.file string\n",
			"\nserver:\n",
			"  -server.http-listen-port int\n    \tHTTP server listen port. (default 9009)\n",
			"  -target value\n",
			"\nalertmanager:\n  -alertmanager.configs.client-timeout duration\n",
			"  -ingester.client.tls-cert-path string\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("run(%s) output lacks %q", arg, want)
			}
		}
		// An advanced flag waits for -help-all.
		if strings.Contains(out, "-blocks-storage.tsdb.head-compaction-interval") {
			t.Errorf("run(%s) printed an advanced flag", arg)
		}
	}
}

func TestHelpAllPrintsEveryFlagOnce(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-help-all"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run(-help-all) = %d; stderr: %s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "Every flag, by component:\n\ngeneral:\n") {
		t.Errorf("-help-all heading missing:\n%.300s", out)
	}
	var cfg cortex.Config
	fs := flag.NewFlagSet("cortex", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := config.Load(fs, nil, &cfg); err != nil {
		t.Fatal(err)
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if d, ok := f.Value.(interface{ Deprecated() bool }); ok && d.Deprecated() {
			if strings.Contains(out, "\n  -"+f.Name+" ") || strings.Contains(out, "\n  -"+f.Name+"\n") {
				t.Errorf("-help-all prints the deprecated -%s", f.Name)
			}
			return
		}
		n++
		if c := strings.Count(out, "\n  -"+f.Name+" "); c+strings.Count(out, "\n  -"+f.Name+"\n") != 1 {
			t.Errorf("-help-all prints -%s %d times", f.Name, c)
		}
	})
	if n < 500 {
		t.Errorf("only %d flags registered", n)
	}
	// Groups follow the flag prefixes, in order.
	if i, j := strings.Index(out, "\nblocks-storage:\n"), strings.Index(out, "\nserver:\n"); i < 0 || j < 0 || i > j {
		t.Errorf("groups blocks-storage at %d, server at %d", i, j)
	}
}

func TestSubcommandHelpStillWorks(t *testing.T) {
	// certs and loadgen parse their own flags (main dispatches before run):
	// -help-all is not theirs.
	for _, args := range [][]string{{"-target=all", "certs"}, {"-target=all", "loadgen"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "its only subcommands are \"certs\" and \"loadgen\", given first") {
			t.Errorf("run(%q) = %d: %s", args, code, stderr.String())
		}
	}
}

func TestDeprecatedFlagLoggedWithItsNewName(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-store-gateway.replication-factor=1", "-target=nothing"}, &stdout, &stderr); code != 1 {
		t.Fatalf("run = %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "flag -store-gateway.replication-factor is deprecated: use -store-gateway.sharding-ring.replication-factor") {
		t.Errorf("no warning naming the new flag:\n%s", stderr.String())
	}
}
