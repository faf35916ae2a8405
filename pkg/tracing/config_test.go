package tracing

import (
	"context"
	"flag"
	"log/slog"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// startSpan starts a span of the process's provider, as a library does.
func startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	return otel.Tracer("test").Start(ctx, name)
}

func defaults(t *testing.T) Config {
	t.Helper()
	var c Config
	c.RegisterFlags(flag.NewFlagSet("tracing", flag.PanicOnError))
	return c
}

func TestDefaultsAreCortexs(t *testing.T) {
	c := defaults(t)
	if c.Type != JaegerType || c.Otel.SampleRatio != 0.001 || c.Otel.OtlpEndpoint != "" || c.Otel.ExporterType != "" || c.Otel.TLSEnabled || c.Otel.RoundRobin {
		t.Fatalf("defaults %+v, want Cortex's: type jaeger, sample ratio 0.001, the rest empty or false", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"unknown type", func(c *Config) { c.Type = "zipkin" }, `-tracing.type="zipkin": must be jaeger or otel`},
		{"otel without endpoint", func(c *Config) { c.Type = "otel" }, "-tracing.otel.otlp-endpoint must be set when -tracing.type=otel"},
		{"negative ratio", func(c *Config) { c.Otel.SampleRatio = -0.1 }, "-tracing.otel.sample-ratio=-0.1: must be between 0 and 1"},
		{"ratio above 1", func(c *Config) { c.Otel.SampleRatio = 1.5 }, "-tracing.otel.sample-ratio=1.5: must be between 0 and 1"},
		{"NaN ratio", func(c *Config) { c.Otel.SampleRatio = math.NaN() }, "-tracing.otel.sample-ratio=NaN: must be between 0 and 1"},
		{"unknown exporter", func(c *Config) { c.Otel.ExporterType = "datadog" }, `-tracing.otel.exporter-type="datadog": must be empty or awsxray`},
		{"kubernetes endpoint", func(c *Config) { c.Type, c.Otel.OtlpEndpoint = "otel", "kubernetes:///collector:4317" }, `-tracing.otel.otlp-endpoint="kubernetes:///collector:4317": kubernetes:// endpoints are not resolved here`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults(t)
			tc.set(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
	ok := defaults(t)
	ok.Type, ok.Otel.OtlpEndpoint, ok.Otel.SampleRatio, ok.Otel.ExporterType = "OTEL", "collector:4317", 1, "AWSXRay"
	if err := ok.Validate(); err != nil {
		t.Fatalf("otel with an endpoint, ratio 1 and awsxray (any case, as Cortex): %v", err)
	}
}

func setup(t *testing.T, c Config) (func(context.Context) error, error) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	return Setup(context.Background(), c, Process{ServiceName: "cortex-test"}, tlsconfig.NewLoader(logger, nil), logger)
}

func TestSetupRefusesUnreadableTLSFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.crt")
	for flagName, set := range map[string]func(*Config){
		"-tracing.otel.tls.tls-ca-path":   func(c *Config) { c.Otel.TLS.CAPath = missing },
		"-tracing.otel.tls.tls-cert-path": func(c *Config) { c.Otel.TLS.CertPath, c.Otel.TLS.KeyPath = missing, missing },
	} {
		c := defaults(t)
		c.Type, c.Otel.OtlpEndpoint = OtelType, "127.0.0.1:4317"
		set(&c)
		stop, err := setup(t, c)
		if err == nil {
			_ = stop(context.Background())
			t.Fatalf("%s=%s: no error", flagName, missing)
		}
		if !strings.Contains(err.Error(), flagName) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("%s=%s: %v, want the flag and the path named", flagName, missing, err)
		}
		if Enabled() {
			t.Fatal("tracing installed after a failed setup")
		}
	}
}

func TestPropagationFollowsTheExporterType(t *testing.T) {
	for exporterType, header := range map[string]string{"": "Traceparent", ExporterTypeAWSXRay: "X-Amzn-Trace-Id"} {
		c := defaults(t)
		c.Type, c.Otel.OtlpEndpoint, c.Otel.ExporterType, c.Otel.SampleRatio = OtelType, "127.0.0.1:4317", exporterType, 1
		stop, err := setup(t, c)
		if err != nil {
			t.Fatal(err)
		}
		ctx, sp := startSpan(context.Background(), "test")
		h := http.Header{}
		InjectHeaders(ctx, h)
		sp.End()
		if len(h) != 1 || h.Get(header) == "" {
			t.Errorf("exporter type %q: injected %v, want only %s", exporterType, h, header)
		}
		back := trace.SpanContextFromContext(ExtractHeaders(context.Background(), h))
		if back.TraceID() != sp.SpanContext().TraceID() || !back.IsSampled() || !back.IsRemote() {
			t.Errorf("exporter type %q: extracted %+v, want the span's trace, sampled, remote", exporterType, back)
		}
		// No collector listens: the span is dropped, not waited for.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_ = stop(ctx)
		cancel()
	}
}

func TestSetupInstallsAndUninstalls(t *testing.T) {
	c := defaults(t)
	c.Type, c.Otel.OtlpEndpoint, c.Otel.ExporterType = OtelType, "127.0.0.1:4317", ExporterTypeAWSXRay
	stop, err := setup(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if !Enabled() || len(GRPCDialOptions()) != 1 || len(GRPCServerOptions()) != 3 {
		t.Fatalf("after Setup: enabled %v, %d dial options, %d server options", Enabled(), len(GRPCDialOptions()), len(GRPCServerOptions()))
	}
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if Enabled() || GRPCDialOptions() != nil || GRPCServerOptions() != nil {
		t.Fatal("instrumentation still given after shutdown")
	}
}

type countingCollector struct {
	ptraceotlp.UnimplementedGRPCServer
	spans atomic.Int64
}

func (c *countingCollector) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	c.spans.Add(int64(req.Traces().SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

// Plaintext export with -tracing.otel.round-robin: the spans still queued
// are sent when the process stops.
func TestShutdownFlushesToTheCollector(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	collector := &countingCollector{}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, collector)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	c := defaults(t)
	c.Type, c.Otel.OtlpEndpoint, c.Otel.SampleRatio, c.Otel.RoundRobin = OtelType, lis.Addr().String(), 1, true
	stop, err := setup(t, c)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, sp := startSpan(context.Background(), "work")
		sp.End()
	}
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := collector.spans.Load(); n != 3 {
		t.Fatalf("the collector received %d spans, want 3", n)
	}
}
