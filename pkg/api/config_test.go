package api

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

func defaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	return c
}

func configured(t *testing.T, change func(*Config)) (*http.ServeMux, *API) {
	t.Helper()
	mux := http.NewServeMux()
	a := New(mux, true, "all", Auth{})
	cfg := defaultConfig()
	if change != nil {
		change(&cfg)
	}
	if err := a.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	return mux, a
}

func respond(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// -server.register-instrumentation=false leaves /metrics and /debug/pprof
// unserved.
func TestRegisterInstrumentation(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	for _, on := range []bool{true, false} {
		mux, a := configured(t, nil)
		a.RegisterServer(Server{Ready: ok, Healthz: ok, Metrics: ok, Config: ok, RuntimeConfig: ok, Services: ok, Instrumentation: on})
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		for _, path := range []string{"/metrics", "/debug/pprof/"} {
			if got := respond(t, mux, http.MethodGet, path).StatusCode; got != want {
				t.Errorf("instrumentation %v: %s answered %d, want %d", on, path, got, want)
			}
		}
		if got := respond(t, mux, http.MethodGet, "/ready").StatusCode; got != http.StatusOK {
			t.Errorf("instrumentation %v: /ready answered %d", on, got)
		}
	}
}

// -api.response-compression-enabled gzips every route's responses for
// clients that accept gzip.
func TestResponseCompression(t *testing.T) {
	big := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("cortex ", 1000))
	})
	for _, on := range []bool{false, true} {
		mux, a := configured(t, func(c *Config) { c.ResponseCompression = on })
		a.route(Route{Module: "m", Methods: get, Path: "/big"}, big)
		resp := respond(t, mux, http.MethodGet, "/big", "Accept-Encoding", "gzip")
		if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != on {
			t.Errorf("compression %v: Content-Encoding %q", on, got)
		}
		if resp := respond(t, mux, http.MethodGet, "/big"); resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("compression %v: a client that does not accept gzip got Content-Encoding %q", on, resp.Header.Get("Content-Encoding"))
		}
	}
}

// -server.cors-origin sets the Prometheus API's CORS headers as
// Prometheus does: * for .*, the origin itself when it matches, and none
// by default, so that another site's page cannot read answers a browser
// obtained with its client certificate.
func TestCORSOrigin(t *testing.T) {
	q := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{}") })
	const query = "/prometheus/api/v1/query"

	mux, a := configured(t, nil)
	a.RegisterPrometheusAPI("querier", []string{"/prometheus"}, q)
	resp := respond(t, mux, http.MethodGet, query, tenant.HeaderName, "t", "Origin", "https://grafana.example")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("default -server.cors-origin: Access-Control-Allow-Origin %q, want none", got)
	}
	mux, a = configured(t, func(c *Config) { c.CORSOrigin = ".*" })
	a.RegisterPrometheusAPI("querier", []string{"/prometheus"}, q)
	resp = respond(t, mux, http.MethodGet, query, tenant.HeaderName, "t", "Origin", "https://grafana.example")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("-server.cors-origin=.*: Access-Control-Allow-Origin %q, want *", got)
	}

	mux, a = configured(t, func(c *Config) { c.CORSOrigin = `https://grafana\.example` })
	a.RegisterPrometheusAPI("querier", []string{"/prometheus"}, q)
	resp = respond(t, mux, http.MethodGet, query, tenant.HeaderName, "t", "Origin", "https://grafana.example")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://grafana.example" {
		t.Errorf("matching origin: Access-Control-Allow-Origin %q", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
		t.Errorf("credentials allowed: %q", got)
	}
	resp = respond(t, mux, http.MethodGet, query, tenant.HeaderName, "t", "Origin", "https://grafana.example.evil")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("origin beyond the anchored expression allowed: %q", got)
	}

	if err := New(http.NewServeMux(), true, "all", Auth{}).Configure(Config{CORSOrigin: "(", AlertmanagerHTTPPrefix: "/alertmanager", QuerierDefaultCodec: "json"}); err == nil || !strings.Contains(err.Error(), `-server.cors-origin="("`) {
		t.Errorf("bad expression: %v", err)
	}
}

// -api.build-info-enabled (on by default, for Grafana) serves
// <prefix>/api/v1/status/buildinfo; off, it is not found, although other
// paths under /api/v1 reach the querier.
func TestBuildInfoEnabled(t *testing.T) {
	q := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "querier "+r.URL.Path) })
	for _, on := range []bool{false, true} {
		mux, a := configured(t, func(c *Config) { c.BuildInfoEnabled = on })
		a.RegisterPrometheusAPI("querier", []string{"/prometheus", "/api/prom"}, q)
		for _, path := range []string{"/prometheus/api/v1/status/buildinfo", "/api/prom/api/v1/status/buildinfo"} {
			resp := respond(t, mux, http.MethodGet, path, tenant.HeaderName, "t")
			body, _ := io.ReadAll(resp.Body)
			if on && (resp.StatusCode != http.StatusOK || string(body) != "querier /prometheus/api/v1/status/buildinfo") {
				t.Errorf("enabled: %s answered %d %q", path, resp.StatusCode, body)
			}
			if !on && resp.StatusCode != http.StatusNotFound {
				t.Errorf("disabled: %s answered %d %q", path, resp.StatusCode, body)
			}
		}
	}
}

func TestAPIConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.QuerierDefaultCodec = "proto" }, `-api.querier-default-codec="proto" (api.querier_default_codec): unsupported codec; use json or protobuf`},
		{func(c *Config) { c.AlertmanagerHTTPPrefix = "am" }, `-http.alertmanager-http-prefix="am" (api.alertmanager_http_prefix): must start with /`},
		{func(c *Config) { c.AlertmanagerHTTPPrefix = "/am/" }, `-http.alertmanager-http-prefix="/am/"`},
	} {
		cfg := defaultConfig()
		tc.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	if err := defaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	protobuf := defaultConfig()
	protobuf.QuerierDefaultCodec = "protobuf"
	if err := protobuf.Validate(); err != nil {
		t.Errorf("-api.querier-default-codec=protobuf: %v", err)
	}
	if !defaultConfig().BuildInfoEnabled {
		t.Errorf("-api.build-info-enabled is off by default; Grafana reads the build information")
	}
}

// Under -server.path-prefix the index page links to the pages under it.
func TestIndexLinksUnderPathPrefix(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux, a := configured(t, func(c *Config) { c.ServerPathPrefix = "/cortex/" })
	a.RegisterServer(Server{Ready: ok, Healthz: ok, Metrics: ok, Config: ok, RuntimeConfig: ok, Services: ok, Instrumentation: true})
	resp := respond(t, mux, http.MethodGet, "/")
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `<a href="/cortex/ready">/ready</a>`) {
		t.Fatalf("index page without prefixed links:\n%s", body)
	}
}
