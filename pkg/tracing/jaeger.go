package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	dtracing "github.com/grafana/dskit/tracing"
	"go.opentelemetry.io/contrib/samplers/jaegerremote"
	"go.opentelemetry.io/otel/attribute"
	jaegerexporter "go.opentelemetry.io/otel/exporters/jaeger" //nolint:staticcheck // deprecated for OTLP (-tracing.type=otel), but the exporter JAEGER_* configure
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// jaegerEnv are the variables that turn Cortex's Jaeger tracing on
// (jaeger-client-go's: an agent, a collector or a sampling server).
var jaegerEnv = []string{"JAEGER_AGENT_HOST", "JAEGER_AGENT_PORT", "JAEGER_ENDPOINT", "JAEGER_SAMPLING_ENDPOINT", "JAEGER_SAMPLER_MANAGER_HOST_PORT"}

// jaegerConfig is the Jaeger setup the JAEGER_* variables describe, read
// as dskit's tracing package reads them (jaeger-client-go's variables,
// which Cortex's jaeger type uses).
//
// dskit's own setup from these variables cannot be used here: its
// resource mixes its semantic-conventions schema (1.41.0) with the SDK's
// (1.43.0 in this build) and fails. This is that setup with this
// package's resource.
type jaegerConfig struct {
	agentHost, agentPort string
	endpoint             string // collector URL; the agent is not used when set
	user, password       string
	samplerType          string
	samplerParam         float64
	samplingServerURL    string
	tags                 []attribute.KeyValue
	maxQueueSize         int
}

// jaegerFromEnv reads the JAEGER_* variables; false when none turns
// Jaeger tracing on, as in Cortex.
func jaegerFromEnv() (jaegerConfig, bool, error) {
	on := false
	for _, v := range jaegerEnv {
		if os.Getenv(v) != "" {
			on = true
		}
	}
	if !on {
		return jaegerConfig{}, false, nil
	}
	c := jaegerConfig{agentHost: "localhost", agentPort: "6831", samplerType: os.Getenv("JAEGER_SAMPLER_TYPE")}
	var errs []error
	if e := os.Getenv("JAEGER_ENDPOINT"); e != "" {
		if u, err := url.ParseRequestURI(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			errs = append(errs, fmt.Errorf("JAEGER_ENDPOINT=%q: want the collector's http:// or https:// URL", e))
		}
		c.endpoint, c.user, c.password = e, os.Getenv("JAEGER_USER"), os.Getenv("JAEGER_PASSWORD")
	}
	if e := os.Getenv("JAEGER_AGENT_HOST"); e != "" {
		c.agentHost = e
	}
	if e := os.Getenv("JAEGER_AGENT_PORT"); e != "" {
		if p, err := strconv.Atoi(e); err != nil || p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("JAEGER_AGENT_PORT=%q: want a port number", e))
		}
		c.agentPort = e
	}
	if e := os.Getenv("JAEGER_SAMPLER_PARAM"); e != "" {
		v, err := strconv.ParseFloat(e, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("JAEGER_SAMPLER_PARAM=%q: want a number", e))
		}
		c.samplerParam = v
	}
	switch {
	case os.Getenv("JAEGER_SAMPLING_ENDPOINT") != "":
		c.samplingServerURL = os.Getenv("JAEGER_SAMPLING_ENDPOINT")
	case os.Getenv("JAEGER_SAMPLER_MANAGER_HOST_PORT") != "":
		c.samplingServerURL = os.Getenv("JAEGER_SAMPLER_MANAGER_HOST_PORT")
	case os.Getenv("JAEGER_AGENT_HOST") != "":
		// The agent serves the sampling strategies too.
		c.samplingServerURL = "http://" + net.JoinHostPort(c.agentHost, "5778") + "/sampling"
	}
	if c.samplingServerURL != "" && c.samplerType == "" {
		c.samplerType = "remote"
	}
	switch c.samplerType {
	case "", "const", "probabilistic", "remote":
	default:
		errs = append(errs, fmt.Errorf("JAEGER_SAMPLER_TYPE=%q: want const, probabilistic or remote", c.samplerType))
	}
	if c.samplerType == "probabilistic" && !(c.samplerParam >= 0 && c.samplerParam <= 1) {
		errs = append(errs, fmt.Errorf("JAEGER_SAMPLER_PARAM=%g: a probabilistic sampler's ratio is between 0 and 1", c.samplerParam))
	}
	var err error
	if c.tags, err = jaegerTags(os.Getenv("JAEGER_TAGS")); err != nil {
		errs = append(errs, err)
	}
	if e := os.Getenv("JAEGER_REPORTER_MAX_QUEUE_SIZE"); e != "" {
		if c.maxQueueSize, err = strconv.Atoi(e); err != nil || c.maxQueueSize <= 0 {
			errs = append(errs, fmt.Errorf("JAEGER_REPORTER_MAX_QUEUE_SIZE=%q: want a positive number of spans", e))
		}
	}
	return c, true, errors.Join(errs...)
}

// jaegerTags parses JAEGER_TAGS: key=value pairs separated by commas, a
// value ${VAR} or ${VAR:default} read from the environment.
func jaegerTags(s string) ([]attribute.KeyValue, error) {
	var tags []attribute.KeyValue
	for _, p := range strings.Split(s, ",") {
		if strings.TrimSpace(p) == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if strings.HasPrefix(v, "${") && strings.HasSuffix(v, "}") {
			name, def, _ := strings.Cut(v[2:len(v)-1], ":")
			if v = os.Getenv(name); v == "" {
				v = def
			}
		}
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("JAEGER_TAGS: %q is not key=value", p)
		}
		tags = append(tags, attribute.String(k, v))
	}
	return tags, nil
}

// sampler is the JAEGER_SAMPLER_* sampler, parent-based as Cortex's.
func (c jaegerConfig) sampler(serviceName string) (sdktrace.Sampler, func()) {
	switch c.samplerType {
	case "const":
		if c.samplerParam == 0 {
			return sdktrace.ParentBased(sdktrace.NeverSample()), func() {}
		}
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), func() {}
	case "probabilistic":
		return sampler(c.samplerParam), func() {}
	case "remote":
		// Until the first strategies arrive: JAEGER_SAMPLER_PARAM, else
		// jaeger-client-go's 0.001.
		initial := c.samplerParam
		if initial <= 0 || initial > 1 {
			initial = 0.001
		}
		remote := jaegerremote.New(serviceName, jaegerremote.WithSamplingServerURL(c.samplingServerURL),
			jaegerremote.WithInitialSampler(sdktrace.TraceIDRatioBased(initial)))
		return sdktrace.ParentBased(remote), remote.Close
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample()), func() {}
}

// setupJaeger is -tracing.type=jaeger: traces nothing without JAEGER_*
// variables, as in Cortex; else exports to the Jaeger agent over UDP, or
// to the collector of JAEGER_ENDPOINT over HTTP.
func setupJaeger(ctx context.Context, p Process, logger *slog.Logger) (func(context.Context) error, error) {
	c, on, err := jaegerFromEnv()
	if err != nil {
		return nil, fmt.Errorf("-tracing.type=jaeger: %w", err)
	}
	if !on {
		return func(context.Context) error { return nil }, nil
	}
	var endpoint jaegerexporter.EndpointOption
	if c.endpoint != "" {
		endpoint = jaegerexporter.WithCollectorEndpoint(jaegerexporter.WithEndpoint(c.endpoint),
			jaegerexporter.WithUsername(c.user), jaegerexporter.WithPassword(c.password))
	} else {
		endpoint = jaegerexporter.WithAgentEndpoint(jaegerexporter.WithAgentHost(c.agentHost), jaegerexporter.WithAgentPort(c.agentPort))
	}
	exporter, err := jaegerexporter.New(endpoint)
	if err != nil {
		return nil, fmt.Errorf("-tracing.type=jaeger: %w", err)
	}
	attrs := []resource.Option{resource.WithHost(), resource.WithAttributes(c.tags...), resource.WithAttributes(semconv.ServiceName(p.ServiceName))}
	if p.Instance != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceInstanceID(p.Instance)))
	}
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		return nil, fmt.Errorf("creating the tracing resource: %w", err)
	}
	var batch []sdktrace.BatchSpanProcessorOption
	if c.maxQueueSize > 0 {
		batch = append(batch, sdktrace.WithMaxQueueSize(c.maxQueueSize))
	}
	s, closeSampler := c.sampler(p.ServiceName)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter, batch...), sdktrace.WithResource(res), sdktrace.WithSampler(s))
	// dskit's propagators: W3C trace context and baggage, and Jaeger's
	// uber-trace-id, which Cortex's Jaeger tracing spoke.
	install(tp, propagation.NewCompositeTextMapPropagator(dtracing.OTelPropagatorsFromEnv()...), logger)
	to := c.endpoint
	if to == "" {
		to = net.JoinHostPort(c.agentHost, c.agentPort)
	}
	logger.Info("tracing to Jaeger", "to", to, "sampler", c.samplerType, "sampler_param", c.samplerParam)
	return func(ctx context.Context) error {
		uninstall()
		err := tp.Shutdown(ctx)
		closeSampler()
		return err
	}, nil
}
