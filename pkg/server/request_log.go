package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	kitlog "github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/google/uuid"
	"github.com/grafana/dskit/middleware"

	slogkit "github.com/cortex-tls/cortex/pkg/util/kitlog"
)

// newRequestLog is the HTTP port's request log, dskit's as Cortex's server
// has it: one line per request, at debug level (info with
// -server.log-request-at-info-level-enabled; failures at warn level), with
// the source IPs and headers when asked.
func newRequestLog(cfg Config, logger *slog.Logger) (*requestLog, error) {
	var sourceIPs *middleware.SourceIPExtractor
	if cfg.LogSourceIPs {
		var err error
		sourceIPs, err = middleware.NewSourceIPs(cfg.LogSourceIPsHeader, cfg.LogSourceIPsRegex, false)
		if err != nil {
			return nil, fmt.Errorf("-server.log-source-ips-header=%q -server.log-source-ips-regex=%q: %w", cfg.LogSourceIPsHeader, cfg.LogSourceIPsRegex, err)
		}
	}
	var exclude []string
	for _, h := range strings.Split(cfg.LogRequestExcludeHeadersList, ",") {
		if h = strings.TrimSpace(h); h != "" {
			exclude = append(exclude, http.CanonicalHeaderKey(h))
		}
	}
	// Drop the lines below -log.level before they are formatted: one comes
	// with every request.
	kl := slogkit.New(logger)
	switch {
	case logger.Enabled(context.Background(), slog.LevelDebug):
	case logger.Enabled(context.Background(), slog.LevelInfo):
		kl = level.NewFilter(kl, level.AllowInfo())
	default:
		kl = level.NewFilter(kl, level.AllowWarn())
	}
	l := &requestLog{
		log:      middleware.NewLogMiddleware(kl, cfg.LogRequestHeaders, cfg.LogRequestAtInfoLevel, sourceIPs, exclude),
		idHeader: cfg.RequestIDHeader,
	}
	for _, h := range cfg.RequestLogHeaders {
		if h = strings.TrimSpace(h); h != "" {
			l.headers = append(l.headers, http.CanonicalHeaderKey(h))
		}
	}
	l.withFields = len(l.headers) > 0 || l.idHeader != ""
	return l, nil
}

// requestLog is dskit's request log, plus the fields of
// -api.http-request-headers-to-log and -api.request-id-header.
type requestLog struct {
	log        middleware.Log
	headers    []string
	idHeader   string
	withFields bool
}

func (l *requestLog) wrap(next http.Handler) http.Handler {
	if !l.withFields {
		return l.log.Wrap(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fields := make([]any, 0, 2*len(l.headers)+2)
		for _, h := range l.headers {
			if v := r.Header.Get(h); v != "" {
				fields = append(fields, h, v)
			}
		}
		// As in Cortex, a request without an ID gets a random one.
		id := ""
		if l.idHeader != "" {
			id = r.Header.Get(l.idHeader)
		}
		if id == "" {
			id = uuid.NewString()
		}
		fields = append(fields, "request_id", id)
		withFields := l.log
		withFields.Log = kitlog.With(l.log.Log, fields...)
		withFields.Wrap(next).ServeHTTP(w, r)
	})
}

// validatePathPrefix checks -server.path-prefix: empty, or a path starting
// with / (a trailing / is ignored).
func validatePathPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !strings.HasPrefix(prefix, "/") || strings.ContainsAny(prefix, "{}? \t") {
		return fmt.Errorf("-server.path-prefix=%q: must start with / and hold no {, }, ? or spaces", prefix)
	}
	return nil
}

// withPathPrefix serves h under prefix: a request for <prefix>/x reaches h
// as /x, any other path gets 404.
func withPathPrefix(prefix string, h http.Handler) http.Handler {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || !strings.HasPrefix(rest, "/") {
			http.NotFound(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = new(url.URL)
		*r2.URL = *r.URL
		r2.URL.Path = rest
		if r.URL.RawPath != "" {
			raw, ok := strings.CutPrefix(r.URL.RawPath, prefix)
			if !ok {
				http.NotFound(w, r)
				return
			}
			r2.URL.RawPath = raw
		}
		h.ServeHTTP(w, r2)
	})
}
