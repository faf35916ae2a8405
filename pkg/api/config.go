package api

import (
	"flag"
	"fmt"
	"net/http"
	"strings"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/regexp"
	"github.com/klauspost/compress/gzhttp"
	"github.com/prometheus/prometheus/util/httputil"
)

// Config is Cortex's api block, but for prometheus_http_prefix, which the
// querier keeps.
type Config struct {
	ResponseCompression     bool                `yaml:"response_compression_enabled"`
	AlertmanagerHTTPPrefix  string              `yaml:"alertmanager_http_prefix"`
	HTTPRequestHeadersToLog flagext.StringSlice `yaml:"http_request_headers_to_log"`
	RequestIDHeader         string              `yaml:"request_id_header"`
	CORSOrigin              string              `yaml:"cors_origin"`
	BuildInfoEnabled        bool                `yaml:"build_info_enabled"`
	QuerierDefaultCodec     string              `yaml:"querier_default_codec"`

	// ServerPathPrefix is -server.path-prefix, set by pkg/cortex: the
	// index page's links carry it.
	ServerPathPrefix string `yaml:"-"`
}

// RegisterFlags registers Cortex's -api.*, -http.alertmanager-http-prefix
// and -server.cors-origin flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.ResponseCompression, "api.response-compression-enabled", false, "Compress every HTTP response with gzip for clients that accept it (the Prometheus API's responses always are).")
	f.StringVar(&c.AlertmanagerHTTPPrefix, "http.alertmanager-http-prefix", "/alertmanager", "HTTP path prefix of the alertmanager's API: <prefix>/api/v2/..., <prefix>/-/healthy, <prefix>/-/ready.")
	f.Var(&c.HTTPRequestHeadersToLog, "api.http-request-headers-to-log", "HTTP request header added to the request's log line (repeat the flag for several), with the request's ID (request_id).")
	f.StringVar(&c.RequestIDHeader, "api.request-id-header", "", "HTTP request header holding the request's ID, added to its log line as request_id; a request without one gets a random ID.")
	f.StringVar(&c.CORSOrigin, "server.cors-origin", "", "Regular expression (fully anchored) of the origins allowed to read the Prometheus API's responses in a browser (CORS), e.g. 'https?://(domain1|domain2)\\.com'. Empty, the default, allows no other origin; '.*' allows every one, as Cortex's default does.")
	f.BoolVar(&c.BuildInfoEnabled, "api.build-info-enabled", true, "Serve <prefix>/api/v1/status/buildinfo on the query-frontend and the querier: the version, revision, branch and build date, which Grafana reads to pick its query features.")
	f.StringVar(&c.QuerierDefaultCodec, "api.querier-default-codec", "json", "Choose default codec for querier response serialization. Supports 'json' and 'protobuf': the encoding the query-frontend asks its queriers to answer queries and range queries in (Cortex's protobuf encoding is smaller and quicker to write); clients are answered in Prometheus' JSON either way.")
}

// Validate checks the settings, naming the flag at fault.
func (c Config) Validate() error {
	if c.QuerierDefaultCodec != "json" && c.QuerierDefaultCodec != "protobuf" {
		return fmt.Errorf("-api.querier-default-codec=%q (api.querier_default_codec): unsupported codec; use json or protobuf", c.QuerierDefaultCodec)
	}
	if _, err := compileCORSOrigin(c.CORSOrigin); err != nil {
		return err
	}
	p := c.AlertmanagerHTTPPrefix
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "{}? \t") {
		return fmt.Errorf("-http.alertmanager-http-prefix=%q (api.alertmanager_http_prefix): must start with / and not end with one, without {, }, ? or spaces", p)
	}
	return nil
}

// compileCORSOrigin anchors -server.cors-origin as Cortex does.
func compileCORSOrigin(s string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("^(?:" + s + ")$")
	if err != nil {
		return nil, fmt.Errorf("-server.cors-origin=%q (api.cors_origin): %w", s, err)
	}
	return re, nil
}

// Configure applies cfg, validated, to the routes mounted from now on.
func (a *API) Configure(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cors, _ := compileCORSOrigin(cfg.CORSOrigin)
	a.cfg, a.cors = cfg, cors
	return nil
}

// withCORS adds the CORS headers of -server.cors-origin, as Prometheus'
// API does: the origin is allowed when it matches, credentials never are.
func (a *API) withCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httputil.SetCORS(w, a.cors, r)
		h.ServeHTTP(w, r)
	})
}

// compress applies -api.response-compression-enabled.
func (a *API) compress(h http.Handler) http.Handler {
	if !a.cfg.ResponseCompression {
		return h
	}
	return gzhttp.GzipHandler(h)
}

// alertmanagerPath is path (under /alertmanager, where the alertmanager
// serves) under -http.alertmanager-http-prefix.
func (a *API) alertmanagerPath(path string) string {
	return a.cfg.AlertmanagerHTTPPrefix + strings.TrimPrefix(path, alertmanagerBase)
}

// alertmanagerBase is the prefix the alertmanager's handler serves under,
// whatever -http.alertmanager-http-prefix is.
const alertmanagerBase = "/alertmanager"
