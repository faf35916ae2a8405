// Command cortex runs any Cortex component (-target), or `cortex certs
// generate` to create a private CA and component certificates, or `cortex
// loadgen` to drive a remote-write receiver.
//
// It only parses flags and the configuration file and hands them to
// pkg/cortex, pkg/certgen or pkg/loadgen: no component logic belongs here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/cortex"
	"github.com/cortex-tls/cortex/pkg/loadgen"
	"github.com/cortex-tls/cortex/pkg/util/config"
	"github.com/cortex-tls/cortex/pkg/util/logging"
	"github.com/cortex-tls/cortex/pkg/util/version"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "certs":
			os.Exit(certgen.Command(os.Args[2:], os.Stdout, os.Stderr))
		case "loadgen":
			os.Exit(loadgen.Command(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var cfg cortex.Config
	fs := flag.NewFlagSet("cortex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	printVersion := fs.Bool("version", false, "Print the version and exit.")
	helpAll := fs.Bool("help-all", false, "Print every flag, grouped by component, and exit.")
	usage := func(w io.Writer, all bool) {
		fmt.Fprintf(w, "Usage: cortex [flags]\n       cortex certs generate [flags]   (create a CA and certificates; -h for its flags)\n       cortex loadgen [flags]          (remote-write or query load; -h for its flags)\n\n")
		if all {
			fmt.Fprintf(w, "Every flag, by component:\n\n")
			config.Help(w, fs, nil)
			return
		}
		fmt.Fprintf(w, "Common flags, by component; -help-all prints every flag:\n\n")
		config.Help(w, fs, config.MatchAny(commonFlags))
	}
	fs.Usage = func() { usage(stdout, false) }
	if err := config.Load(fs, args, &cfg); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	// Flag parsing stops at the first word that is not a flag: starting
	// anyway would run with the defaults of every flag after it.
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "error: unexpected argument %q: cortex takes only flags (-help lists them, -version prints the version); its only subcommands are \"certs\" and \"loadgen\", given first\n\n", fs.Arg(0))
		usage(stderr, false)
		return 2
	}
	if *helpAll {
		usage(stdout, true)
		return 0
	}
	if *printVersion {
		fmt.Fprintln(stdout, version.Print())
		return 0
	}
	if cfg.PrintConfig {
		out, err := config.Dump(&cfg)
		if err != nil {
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
		_, _ = stdout.Write(out)
		return 0
	}
	logger, err := logging.New(cfg.Server.LogLevel, cfg.Server.LogFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	for _, w := range cortex.DeprecatedFlags(fs) {
		logger.Warn(w)
	}
	setGOGC(cfg.Server.GOGC, logger)
	t, err := cortex.New(cfg, logger)
	if err != nil {
		// Plain text, not a log line: the operator must read this one as is.
		fmt.Fprintln(stderr, "cortex: startup failed:", err)
		return 1
	}
	// t.Logger names the target and the instance on every line.
	build := version.Get()
	t.Logger.Info("starting cortex", "version", build.Version, "revision", build.Revision, "branch", build.Branch, "build_date", build.BuildDate, "go_version", build.GoVersion)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := t.Run(ctx); err != nil {
		t.Logger.Error("cortex stopped with an error: " + err.Error())
		return 1
	}
	t.Logger.Info("cortex stopped")
	return 0
}

// setGOGC applies -server.gogc unless the GOGC environment variable, which
// the runtime has already applied, says otherwise.
func setGOGC(percent int, logger *slog.Logger) {
	if env, ok := os.LookupEnv("GOGC"); ok {
		logger.Info("using the GOGC environment variable instead of -server.gogc", "GOGC", env)
		return
	}
	debug.SetGCPercent(percent)
}
