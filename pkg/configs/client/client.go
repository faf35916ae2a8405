// Package client is the HTTP client of the configs service's private API,
// shared by the alertmanager (-alertmanager.configs.*) and the ruler storage
// (-ruler-storage.configs.*): the URL checks, the TLS link through
// pkg/tlsconfig (checked at startup, reloaded without restart), the request
// timeout and the answer's decoding, with errors naming the flags.
//
// It only speaks HTTP to the service: it imports nothing from pkg/configs,
// and its wire types mirror the service's JSON.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// The configs service's private endpoints: every tenant's latest config
// changed since a config ID.
const (
	AlertmanagerPath = "/private/api/prom/configs/alertmanager"
	RulesPath        = "/private/api/prom/configs/rules"
)

// maxAnswer bounds an answer of the service.
const maxAnswer = 64 << 20

// Config is a link to the configs service as Cortex's ruler and
// alertmanager storages configure it (their configdb block): YAML keys
// configs_api_url, client_timeout and the TLS keys inlined.
type Config struct {
	URL     string                 `yaml:"configs_api_url"`
	Timeout time.Duration          `yaml:"client_timeout"`
	TLS     tlsconfig.ClientConfig `yaml:",inline"`

	// prefix is the flag prefix given to RegisterFlagsWithPrefix.
	prefix string
}

// RegisterFlagsWithPrefix registers Cortex's -<prefix>configs.url,
// -<prefix>configs.client-timeout and -<prefix>configs.tls-*; prefix ends
// with a dot ("ruler-storage.").
func (c *Config) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	c.prefix = prefix
	f.StringVar(&c.URL, prefix+"configs.url", "", "URL of the configs service (https://host:port).")
	f.DurationVar(&c.Timeout, prefix+"configs.client-timeout", 5*time.Second, "Timeout of one request to the configs service.")
	c.TLS.RegisterFlagsWithPrefix(c.TLSPrefix(), f)
}

// TLSPrefix is the prefix of the link's TLS flags, without dashes
// ("ruler-storage.configs"): the name tlsconfig.NewClient takes.
func (c *Config) TLSPrefix() string { return c.prefix + "configs" }

// Validate checks the URL (required when required is true) and its scheme
// against the TLS flags.
func (c *Config) Validate(required bool) error {
	flagName := "-" + c.prefix + "configs.url"
	if c.URL == "" {
		if required {
			return fmt.Errorf("%s must be set", flagName)
		}
		return nil
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("-%sconfigs.client-timeout=%s must be positive", c.prefix, c.Timeout)
	}
	_, err := ParseURL(flagName, c.URL, c.TLSPrefix(), c.TLS)
	return err
}

// ParseURL checks a configs service URL given as -<flagName>: http or
// https with a host, and https when any -<tlsPrefix>.tls-* flag is set.
func ParseURL(flagName, raw, tlsPrefix string, tlsCfg tlsconfig.ClientConfig) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%s=%q: want http(s)://host:port", flagName, raw)
	}
	if u.Scheme == "http" && tlsCfg.TLSOn() {
		return nil, fmt.Errorf("%s=%s is plain http:// but -%s.tls-* flags are set: use https://", flagName, raw, tlsPrefix)
	}
	return u, nil
}

// Client fetches from one configs service.
type Client struct {
	base     *url.URL
	http     *http.Client
	duration *prometheus.HistogramVec // nil until Instrument
}

// Instrument times the client's requests in Cortex's
// cortex_configs_request_duration_seconds{operation,status_code} on reg
// (nil for none). The alertmanager's and the ruler's clients of one process
// share the histogram.
func (c *Client) Instrument(reg prometheus.Registerer) error {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cortex_configs_request_duration_seconds",
		Help:    "Time spent requesting configs from the configs service.",
		Buckets: prometheus.DefBuckets,
	}, []string{"operation", "status_code"})
	if reg != nil {
		if err := reg.Register(h); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("registering cortex_configs_request_duration_seconds: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.HistogramVec)
			if !ok {
				return fmt.Errorf("registering cortex_configs_request_duration_seconds: already registered as a %T", are.ExistingCollector)
			}
			h = existing
		}
	}
	c.duration = h
	return nil
}

// New returns a client of the service at base (checked by ParseURL). tls is
// the link's TLS client (nil: plaintext, or the system's CAs for https);
// timeout bounds each request.
func New(base *url.URL, timeout time.Duration, tls *tlsconfig.Client) *Client {
	return &Client{base: base, http: &http.Client{Transport: tls.HTTPTransport(), Timeout: timeout}}
}

// NewFromConfig validates cfg (its URL is required) and builds the client,
// loading the link's certificates from loader: errors name the
// -<prefix>configs.tls-* flag at fault, and the files follow the loader's
// reloads.
func NewFromConfig(cfg Config, loader *tlsconfig.Loader) (*Client, error) {
	if err := cfg.Validate(true); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL)
	tls, err := tlsconfig.NewClient(cfg.TLSPrefix(), cfg.TLS, loader)
	if err != nil {
		return nil, err
	}
	return New(u, cfg.Timeout, tls), nil
}

// URL returns the service's base URL, for logs.
func (c *Client) URL() string { return c.base.String() }

// CloseIdleConnections closes the kept-alive connections to the service.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// View is one tenant's config in an answer of the private API. DeletedAt is
// set when the tenant has been deactivated.
type View[C any] struct {
	ID        int64  `json:"id"`
	Config    *C     `json:"config"`
	DeletedAt string `json:"deleted_at,omitempty"`
}

// Response is the answer of the private API: the latest config of every
// tenant changed since the ID asked for, by tenant.
type Response[C any] struct {
	Configs map[string]View[C] `json:"configs"`
}

// RulesConfig is a tenant's rules as the configs service stores them: rule
// files by name, in rule_format_version "2" (Prometheus 2 YAML).
type RulesConfig struct {
	RulesFiles        map[string]string `json:"rules_files"`
	RuleFormatVersion string            `json:"rule_format_version"`
}

// GetSince fetches path?since=<since> (one request) and decodes the answer
// into out. Errors say what went wrong without the URL, which callers log
// beside them.
func (c *Client) GetSince(ctx context.Context, path string, since int64, out any) error {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = url.Values{"since": {strconv.FormatInt(since, 10)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if c.duration != nil {
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		c.duration.WithLabelValues(http.MethodGet, code).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is logged beside it
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 512 {
			msg = msg[:512] + "..."
		}
		return fmt.Errorf("configs service answered %s: %s", resp.Status, msg)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}
