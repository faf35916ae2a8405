// Package tracing sets up the process's OpenTelemetry tracer provider from
// -tracing.* (Cortex's tracing block: OTLP gRPC export over pkg/tlsconfig,
// or Jaeger configured by the JAEGER_* environment variables), and
// gives the servers and clients of the process their instrumentation: one
// span per HTTP request and per gRPC call, server and client side, with the
// trace context carried over every link.
//
// The provider is the process-wide OpenTelemetry one, as Cortex's is, so
// that the libraries' own spans (Prometheus' PromQL engine) join the same
// traces. With tracing off the instrumentation functions return their
// input unchanged or nothing: no handler, interceptor or context lookup is
// added to the request path.
//
// Spans never carry request headers, cookies or certificates: only the
// route, the method, the peer, the status and the tenant.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/propagators/aws/xray"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// Process names the process the spans come from.
type Process struct {
	// ServiceName is the resource's service.name: Cortex's "cortex", or
	// "cortex-<target>" when the process runs one target.
	ServiceName string
	// Instance is the resource's service.instance.id: the instance ID the
	// process has in its rings.
	Instance string
}

// ServiceName is the service name Cortex gives a process running targets.
func ServiceName(targets []string) string {
	if len(targets) == 1 {
		return "cortex-" + targets[0]
	}
	return "cortex"
}

// Provider is the process's tracer provider while tracing is on: the one
// the instrumentation of this package finds as OpenTelemetry's global.
type Provider struct {
	trace.TracerProvider
	propagator propagation.TextMapPropagator
}

// active returns the process's provider, or false when tracing is off.
// The instrumentation looks it up where it is built rather than being
// handed it, so that the servers and the clients of every link, built in
// many packages, are traced from one place each (pkg/server,
// pkg/util/grpcclient) and none is left out.
func active() (*Provider, bool) {
	p, ok := otel.GetTracerProvider().(*Provider)
	return p, ok
}

// Enabled reports whether the process traces.
func Enabled() bool {
	_, ok := active()
	return ok
}

// Setup installs the tracer provider cfg asks for as the process's, and
// returns the function that flushes the spans still queued and uninstalls
// it. cfg must have passed Validate. With -tracing.type=jaeger and no
// JAEGER_* variable set, nothing is installed, as in Cortex.
func Setup(ctx context.Context, cfg Config, p Process, loader *tlsconfig.Loader, logger *slog.Logger) (func(context.Context) error, error) {
	switch strings.ToLower(cfg.Type) {
	case OtelType:
		return setupOTLP(ctx, cfg.Otel, p, loader, logger)
	case JaegerType:
		return setupJaeger(ctx, p, logger)
	}
	return nil, fmt.Errorf("-tracing.type=%q: must be %s or %s", cfg.Type, JaegerType, OtelType)
}

func setupOTLP(ctx context.Context, cfg Otel, p Process, loader *tlsconfig.Loader, logger *slog.Logger) (func(context.Context) error, error) {
	tls, err := tlsconfig.NewClient(tlsPrefix, cfg.clientTLS(), loader)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{tls.GRPCDialOption()}
	if cfg.RoundRobin {
		opts = append(opts, grpc.WithDefaultServiceConfig(`{"loadBalancingPolicy":"round_robin"}`))
	}
	// The connection is made here, not by the exporter, so that it uses
	// this project's TLS (reloaded certificates, TLS 1.2 minimum, AEAD
	// suites, handshake failures explained) like every other link.
	conn, err := grpc.NewClient(cfg.OtlpEndpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("-tracing.otel.otlp-endpoint=%q: %w", cfg.OtlpEndpoint, err)
	}
	exporter, err := otlptracegrpc.New(ctx, otlptracegrpc.WithGRPCConn(conn))
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("creating the OTLP trace exporter for -tracing.otel.otlp-endpoint=%q: %w", cfg.OtlpEndpoint, err)
	}
	attrs := []resource.Option{resource.WithHost(), resource.WithAttributes(semconv.ServiceName(p.ServiceName))}
	if p.Instance != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceInstanceID(p.Instance)))
	}
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("creating the tracing resource: %w", err)
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler(cfg.SampleRatio)),
	}
	var propagator propagation.TextMapPropagator = propagation.TraceContext{}
	if strings.EqualFold(cfg.ExporterType, ExporterTypeAWSXRay) {
		tpOpts = append(tpOpts, sdktrace.WithIDGenerator(xray.NewIDGenerator()))
		propagator = xray.Propagator{}
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	install(tp, propagator, logger)
	logger.Info("tracing over OTLP", "endpoint", cfg.OtlpEndpoint, "tls", tls != nil, "sample_ratio", cfg.SampleRatio, "service_name", p.ServiceName)
	return func(ctx context.Context) error {
		uninstall()
		err := tp.Shutdown(ctx)
		return errors.Join(err, conn.Close())
	}, nil
}

// sampler is Cortex's: a trace starting here is sampled at ratio; a
// request that carries a trace context keeps its caller's decision.
func sampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
}

// install makes tp the process's provider, with propagator, and logs the
// failed exports (a collector down or refusing the TLS handshake).
func install(tp trace.TracerProvider, propagator propagation.TextMapPropagator, logger *slog.Logger) {
	otel.SetTextMapPropagator(propagator)
	otel.SetTracerProvider(&Provider{TracerProvider: tp, propagator: propagator})
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: "+err.Error(), "component", "tracing")
	}))
}

// uninstall turns the instrumentation off for whatever is built after it.
func uninstall() {
	otel.SetTracerProvider(noop.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
}

// ShutdownTimeout bounds the flush of the spans still queued at shutdown.
const ShutdownTimeout = 5 * time.Second
