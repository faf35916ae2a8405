package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

func TestRunRefusesPositionalArguments(t *testing.T) {
	for _, args := range [][]string{
		{"help"},
		{"version"},
		{"cert", "generate"},
		{"-server.http-listen-port=0", "version", "-target=distributor"},
		{"-target=all", "certs", "generate"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2; stderr: %s", args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "unexpected argument") || !strings.Contains(stderr.String(), "Usage: cortex [flags]") {
			t.Errorf("run(%q) stderr = %q, want the argument refused and the usage", args, stderr.String())
		}
	}
}

// Bad -tracing.* values stop the process at startup, naming the flag.
func TestRunRefusesBadTracingFlags(t *testing.T) {
	for args, want := range map[string]string{
		"-tracing.otel.sample-ratio=2":     "cortex: startup failed: -tracing.otel.sample-ratio=2: must be between 0 and 1\n",
		"-tracing.type=zipkin":             "cortex: startup failed: -tracing.type=\"zipkin\": must be jaeger or otel\n",
		"-tracing.otel.exporter-type=grpc": "cortex: startup failed: -tracing.otel.exporter-type=\"grpc\": must be empty or awsxray\n",
		"-tracing.type=otel":               "cortex: startup failed: -tracing.otel.otlp-endpoint must be set when -tracing.type=otel\n",
	} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{args}, &stdout, &stderr); code != 1 || stderr.String() != want {
			t.Errorf("run(%s) = %d, stderr %q; want 1, %q", args, code, stderr.String(), want)
		}
	}
}

func TestRunVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run(-version) = %d; stderr: %s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "cortex, version ") || !strings.Contains(out, "\n  go version:       "+runtime.Version()+"\n") {
		t.Fatalf("run(-version) printed %q, want Prometheus' version block for cortex", out)
	}
}

// A flag of Cortex's that is not built here is refused with its reason, as
// an undefined flag is refused: the same exit code, the usage printed.
func TestRunExplainsCortexFlagsNotBuilt(t *testing.T) {
	for args, want := range map[string]string{
		"-querier.thanos-engine=true": "error: Cortex's -querier.thanos-engine is not built here: the Thanos PromQL engine (queries run on Prometheus' engine)",
		"-no-such-flag":               "error: flag provided but not defined: -no-such-flag\n",
	} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{args}, &stdout, &stderr); code != 1 {
			t.Errorf("run(%s) = %d, want 1; stderr: %s", args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("run(%s) stderr = %q, want %q", args, stderr.String(), want)
		}
		if !strings.Contains(stdout.String(), "Usage: cortex [flags]") {
			t.Errorf("run(%s) printed no usage", args)
		}
	}
}
