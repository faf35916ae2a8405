package tracing

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// The values of -tracing.type.
const (
	JaegerType = "jaeger"
	OtelType   = "otel"
)

// ExporterTypeAWSXRay is the -tracing.otel.exporter-type that makes trace
// IDs and propagation AWS X-Ray's.
const ExporterTypeAWSXRay = "awsxray"

// tlsPrefix names the exporter's TLS flags: -tracing.otel.tls.tls-cert-path, ...
const tlsPrefix = "tracing.otel.tls"

// Config is Cortex's tracing block: -tracing.*.
type Config struct {
	Type string `yaml:"type"`
	Otel Otel   `yaml:"otel"`
}

// Otel is Cortex's tracing.otel block: the OTLP gRPC exporter.
type Otel struct {
	OtlpEndpoint string    `yaml:"otlp_endpoint"`
	ExporterType string    `yaml:"exporter_type"`
	SampleRatio  float64   `yaml:"sample_ratio"`
	RoundRobin   bool      `yaml:"round_robin"`
	TLSEnabled   bool      `yaml:"tls_enabled"`
	TLS          TLSConfig `yaml:"tls"`
}

// TLSConfig is Cortex's tracing.otel.tls block: the exporter's client
// certificate and the CA its collector's certificate must chain to. The
// rest of the client's TLS (TLS 1.2 minimum, AEAD cipher suites, reload of
// rotated files) is pkg/tlsconfig's, as on every other link.
type TLSConfig struct {
	CertPath           string `yaml:"tls_cert_path"`
	KeyPath            string `yaml:"tls_key_path"`
	CAPath             string `yaml:"tls_ca_path"`
	ServerName         string `yaml:"tls_server_name"`
	InsecureSkipVerify bool   `yaml:"tls_insecure_skip_verify"`
}

// RegisterFlags registers -tracing.* with Cortex's names and defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Type, "tracing.type", JaegerType, "Tracing type: otel exports spans over OTLP gRPC to -tracing.otel.otlp-endpoint; jaeger is configured by the JAEGER_* environment variables (JAEGER_AGENT_HOST, JAEGER_ENDPOINT, ...) and traces nothing when none is set.")
	f.Float64Var(&c.Otel.SampleRatio, "tracing.otel.sample-ratio", 0.001, "Fraction of traces to be sampled, from 0 to 1 (1 traces everything). A request that carries a sampled trace context (traceparent) is traced whatever the ratio, as the caller decided.")
	f.StringVar(&c.Otel.OtlpEndpoint, "tracing.otel.otlp-endpoint", "", "OTLP gRPC collector endpoint (host:port) the spans are sent to. Required with -tracing.type=otel.")
	f.StringVar(&c.Otel.ExporterType, "tracing.otel.exporter-type", "", "Enhance traces and propagation for a specific exporter. Empty uses W3C trace context; awsxray uses AWS X-Ray trace IDs and its propagation header.")
	f.BoolVar(&c.Otel.TLSEnabled, "tracing.otel.tls-enabled", false, "Use TLS to the collector. Implied by any of the -tracing.otel.tls.* flags; alone it verifies the collector against the system's CAs.")
	f.BoolVar(&c.Otel.RoundRobin, "tracing.otel.round-robin", false, "Spread the exports over every address the endpoint's name resolves to (gRPC round_robin), instead of the first that answers (pick_first).")
	f.StringVar(&c.Otel.TLS.CertPath, tlsPrefix+".tls-cert-path", "", "Path to the client certificate presented to the collector (mutual TLS).")
	f.StringVar(&c.Otel.TLS.KeyPath, tlsPrefix+".tls-key-path", "", "Path to the private key of the client certificate.")
	f.StringVar(&c.Otel.TLS.CAPath, tlsPrefix+".tls-ca-path", "", "Path to the CA bundle the collector's certificate must chain to. Empty means the system's CAs.")
	f.StringVar(&c.Otel.TLS.ServerName, tlsPrefix+".tls-server-name", "", "Name to verify the collector's certificate against, instead of the endpoint's host.")
	f.BoolVar(&c.Otel.TLS.InsecureSkipVerify, tlsPrefix+".tls-insecure-skip-verify", false, "Skip verifying the collector's certificate. Insecure: for debugging only.")
}

// Validate checks the flags, naming the one at fault. The TLS files are
// checked when Setup loads them.
func (c *Config) Validate() error {
	var errs []error
	switch strings.ToLower(c.Type) {
	case JaegerType:
	case OtelType:
		if c.Otel.OtlpEndpoint == "" {
			errs = append(errs, errors.New("-tracing.otel.otlp-endpoint must be set when -tracing.type=otel"))
		}
	default:
		errs = append(errs, fmt.Errorf("-tracing.type=%q: must be %s or %s", c.Type, JaegerType, OtelType))
	}
	if strings.HasPrefix(c.Otel.OtlpEndpoint, "kubernetes://") {
		errs = append(errs, fmt.Errorf("-tracing.otel.otlp-endpoint=%q: kubernetes:// endpoints are not resolved here; give host:port (a DNS name resolves to every address with -tracing.otel.round-robin)", c.Otel.OtlpEndpoint))
	}
	// NaN fails both comparisons, so it is refused too.
	if !(c.Otel.SampleRatio >= 0 && c.Otel.SampleRatio <= 1) {
		errs = append(errs, fmt.Errorf("-tracing.otel.sample-ratio=%g: must be between 0 and 1", c.Otel.SampleRatio))
	}
	switch strings.ToLower(c.Otel.ExporterType) {
	case "", ExporterTypeAWSXRay:
	default:
		errs = append(errs, fmt.Errorf("-tracing.otel.exporter-type=%q: must be empty or %s", c.Otel.ExporterType, ExporterTypeAWSXRay))
	}
	return errors.Join(errs...)
}

// clientTLS is the exporter's link as pkg/tlsconfig builds it.
func (o *Otel) clientTLS() tlsconfig.ClientConfig {
	return tlsconfig.ClientConfig{
		Enabled:            o.TLSEnabled,
		CertPath:           o.TLS.CertPath,
		KeyPath:            o.TLS.KeyPath,
		CAPath:             o.TLS.CAPath,
		ServerName:         o.TLS.ServerName,
		InsecureSkipVerify: o.TLS.InsecureSkipVerify,
		MinVersion:         "VersionTLS12",
		CommonNameFallback: true,
	}
}
