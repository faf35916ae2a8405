package cortex

import (
	"flag"
	"fmt"
	"strings"
)

// registerHTTPPrefix registers Cortex's -http.prefix: where the legacy
// paths live (remote write at <prefix>/push, the Prometheus API at
// <prefix>/api/v1/..., the ruler's <prefix>/rules).
func (c *Config) registerHTTPPrefix(f *flag.FlagSet) {
	f.StringVar(&c.HTTPPrefix, "http.prefix", "/api/prom", "HTTP path prefix of Cortex's legacy API: remote write at <prefix>/push, the Prometheus API at <prefix>/api/v1/... beside -http.prometheus-http-prefix, the ruler's configuration API at <prefix>/rules. Empty serves no legacy paths.")
}

// validateHTTPPrefix refuses a prefix that cannot be a path prefix.
func validateHTTPPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.ContainsAny(prefix, "{}? \t") {
		return fmt.Errorf("-http.prefix (http_prefix) %q: must start with / and not end with one, without {, }, ? or spaces; empty serves no legacy paths", prefix)
	}
	return nil
}

// prometheusPrefixes are the prefixes the Prometheus API is served under:
// -http.prometheus-http-prefix, then Cortex's legacy -http.prefix.
func (t *Cortex) prometheusPrefixes() []string {
	prefixes := []string{t.Cfg.Querier.PrometheusHTTPPrefix}
	if legacy := t.Cfg.HTTPPrefix; legacy != "" && legacy != t.Cfg.Querier.PrometheusHTTPPrefix {
		prefixes = append(prefixes, legacy)
	}
	return prefixes
}
