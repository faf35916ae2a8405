package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/cortex-tls/cortex/pkg/configs/db"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// maxBodySize bounds a posted configuration, and a tenant's stored
// Alertmanager configuration with its template files (the templates
// endpoint adds files to a stored configuration).
const maxBodySize = 10 << 20

// AlertmanagerConfig is the body of POST /api/prom/configs/alertmanager and
// the config of its views.
type AlertmanagerConfig struct {
	AlertmanagerConfig string            `json:"alertmanager_config"`
	TemplateFiles      map[string]string `json:"template_files"`
}

// TemplatesConfig is the body of POST /api/prom/configs/templates and the
// config of its view: the template files of the tenant's Alertmanager
// configuration.
type TemplatesConfig struct {
	TemplateFiles map[string]string `json:"template_files"`
}

// RulesConfig is the body of POST /api/prom/configs/rules and the config of
// its views.
type RulesConfig struct {
	RulesFiles        map[string]string `json:"rules_files"`
	RuleFormatVersion string            `json:"rule_format_version"`
}

// View is one tenant's config as the API returns it. DeletedAt is set
// (only in the private API) when the tenant has been deactivated.
type View[C any] struct {
	ID        int64      `json:"id"`
	Config    C          `json:"config"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// ConfigsResponse is the answer of the private API: the latest config of
// every tenant changed since the ID asked for.
type ConfigsResponse[C any] struct {
	Configs map[string]View[C] `json:"configs"`
}

// API serves the configs API from a database.
type API struct {
	db     *db.DB
	logger *slog.Logger
	// parser checks the rules' expressions (WithParserOptions).
	parser parser.Parser
	// notifications are the receiver kinds refused (WithNotifications).
	notifications NotificationsConfig
}

// NewAPI returns the API over d.
func NewAPI(d *db.DB, logger *slog.Logger, opts ...APIOption) *API {
	a := &API{db: d, logger: logger, parser: parser.NewParser(parser.Options{})}
	for _, o := range opts {
		o(a)
	}
	return a
}

// APIOption changes an API built by NewAPI.
type APIOption func(*API)

// WithParserOptions checks the rules' expressions with the queriers'
// parser options (-querier.enable-promql-experimental-functions): rules are
// accepted exactly when the rulers would load them.
func WithParserOptions(o parser.Options) APIOption {
	return func(a *API) { a.parser = parser.NewParser(o) }
}

// WithNotifications refuses Alertmanager configurations with the receiver
// kinds n disables (-configs.notifications.*).
func WithNotifications(n NotificationsConfig) APIOption {
	return func(a *API) { a.notifications = n }
}

// TenantHandler serves the tenant API; the request context must carry the
// tenant (tenant.HTTPMiddleware).
func (a *API) TenantHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/prom/configs/alertmanager", a.getAlertmanager)
	mux.HandleFunc("POST /api/prom/configs/alertmanager", a.setAlertmanager)
	mux.HandleFunc("POST /api/prom/configs/alertmanager/validate", a.validateAlertmanager)
	mux.HandleFunc("GET /api/prom/configs/templates", a.getTemplates)
	mux.HandleFunc("POST /api/prom/configs/templates", a.setTemplates)
	mux.HandleFunc("GET /api/prom/configs/rules", a.getRules)
	mux.HandleFunc("POST /api/prom/configs/rules", a.setRules)
	// DELETE only, as Cortex registers it.
	mux.HandleFunc("DELETE /api/prom/configs/deactivate", a.deactivate)
	mux.HandleFunc("POST /api/prom/configs/restore", a.restore)
	return mux
}

// PrivateHandler serves the private API, which has no tenant: the
// alertmanagers and rulers poll every tenant's configs from it.
func (a *API) PrivateHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /private/api/prom/configs/alertmanager", a.privateAlertmanager)
	mux.HandleFunc("GET /private/api/prom/configs/rules", a.privateRules)
	return mux
}

// Handler serves both APIs, the tenant one behind tenant.HTTPMiddleware
// (tenant from X-Scope-OrgID, or the default tenant when authEnabled is
// false). The process mounts them through pkg/api instead.
func (a *API) Handler(authEnabled bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/prom/configs/", tenant.HTTPMiddleware(authEnabled, a.TenantHandler()))
	mux.Handle("/private/api/prom/configs/", a.PrivateHandler())
	return mux
}

func (a *API) getAlertmanager(w http.ResponseWriter, r *http.Request) {
	getConfig[AlertmanagerConfig](a, w, r, db.KindAlertmanager)
}

func (a *API) getRules(w http.ResponseWriter, r *http.Request) {
	getConfig[RulesConfig](a, w, r, db.KindRules)
}

func (a *API) setAlertmanager(w http.ResponseWriter, r *http.Request) {
	var cfg AlertmanagerConfig
	if !decodeBody(w, r, &cfg) {
		return
	}
	if err := ValidateAlertmanager(cfg, a.notifications); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if cfg.TemplateFiles == nil {
		cfg.TemplateFiles = map[string]string{}
	}
	a.store(w, r, db.KindAlertmanager, cfg)
}

// getTemplates answers the template files of the tenant's Alertmanager
// configuration, with that configuration's version ID.
func (a *API) getTemplates(w http.ResponseWriter, r *http.Request) {
	getConfig[TemplatesConfig](a, w, r, db.KindAlertmanager)
}

// setTemplates replaces the template files of the tenant's Alertmanager
// configuration and keeps its alertmanager_config: a new version the
// alertmanagers load with the files. A tenant with no configuration (or a
// deactivated one) gets one with only the templates, as in Cortex; its
// alertmanagers then run the fallback configuration with them.
func (a *API) setTemplates(w http.ResponseWriter, r *http.Request) {
	id, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var cfg TemplatesConfig
	if !decodeBodyStrict(w, r, &cfg, "POST /api/prom/configs/templates takes only template_files; post alertmanager_config to /api/prom/configs/alertmanager") {
		return
	}
	if cfg.TemplateFiles == nil {
		cfg.TemplateFiles = map[string]string{}
	}
	if err := validateTemplates(cfg.TemplateFiles); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	errTooLarge := fmt.Errorf("the tenant's Alertmanager configuration with these template files is over %d bytes", maxBodySize)
	version, err := a.db.Update(r.Context(), id, db.KindAlertmanager, func(old db.View, found bool) ([]byte, error) {
		var am AlertmanagerConfig
		if found {
			if err := json.Unmarshal(old.Config, &am); err != nil {
				return nil, fmt.Errorf("stored alertmanager config %d of tenant %q: %w", old.ID, id, err)
			}
		}
		am.TemplateFiles = cfg.TemplateFiles
		b, err := json.Marshal(am)
		if err == nil && len(b) > maxBodySize {
			return nil, errTooLarge
		}
		return b, err
	})
	if errors.Is(err, errTooLarge) {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		a.internalError(w, err)
		return
	}
	a.logger.Info("config stored", "kind", "templates", "tenant", id, "id", version)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) setRules(w http.ResponseWriter, r *http.Request) {
	var cfg RulesConfig
	if !decodeBody(w, r, &cfg) {
		return
	}
	if cfg.RuleFormatVersion == "" {
		cfg.RuleFormatVersion = "2"
	}
	if err := ValidateRules(cfg, a.parser); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if cfg.RulesFiles == nil {
		cfg.RulesFiles = map[string]string{}
	}
	a.store(w, r, db.KindRules, cfg)
}

// validateAlertmanager takes the JSON body of POST .../alertmanager or, as
// Cortex's validate endpoint did, the Alertmanager YAML itself.
func (a *API) validateAlertmanager(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, validateResponse{Status: "error", Error: "reading the body: " + err.Error()})
		return
	}
	cfg := AlertmanagerConfig{AlertmanagerConfig: string(body)}
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' {
		var fields map[string]json.RawMessage
		if json.Unmarshal(trimmed, &fields) == nil && fields["alertmanager_config"] != nil {
			cfg = AlertmanagerConfig{}
			if err := json.Unmarshal(trimmed, &cfg); err != nil {
				writeJSON(w, http.StatusBadRequest, validateResponse{Status: "error", Error: "invalid JSON body: " + err.Error()})
				return
			}
		}
	}
	if err := ValidateAlertmanager(cfg, a.notifications); err != nil {
		writeJSON(w, http.StatusBadRequest, validateResponse{Status: "error", Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, validateResponse{Status: "success"})
}

// validateResponse is the answer of the validate endpoint.
type validateResponse struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func (a *API) deactivate(w http.ResponseWriter, r *http.Request) {
	a.setDeleted(w, r, true)
}

func (a *API) restore(w http.ResponseWriter, r *http.Request) {
	a.setDeleted(w, r, false)
}

func (a *API) setDeleted(w http.ResponseWriter, r *http.Request, deleted bool) {
	id, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	action, f := "restored", a.db.Restore
	if deleted {
		action, f = "deactivated", a.db.Deactivate
	}
	if err := f(r.Context(), id); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			http.Error(w, "no configuration for this tenant", http.StatusNotFound)
			return
		}
		a.internalError(w, err)
		return
	}
	a.logger.Info("configs "+action, "tenant", id)
	w.WriteHeader(http.StatusOK)
}

func (a *API) privateAlertmanager(w http.ResponseWriter, r *http.Request) {
	configsSince[AlertmanagerConfig](a, w, r, db.KindAlertmanager)
}

func (a *API) privateRules(w http.ResponseWriter, r *http.Request) {
	configsSince[RulesConfig](a, w, r, db.KindRules)
}

func getConfig[C any](a *API, w http.ResponseWriter, r *http.Request, kind string) {
	id, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	v, err := a.db.Get(r.Context(), id, kind)
	if errors.Is(err, db.ErrNotFound) {
		http.Error(w, "no "+kind+" configuration for this tenant", http.StatusNotFound)
		return
	}
	if err != nil {
		a.internalError(w, err)
		return
	}
	out := View[C]{ID: v.ID}
	if err := json.Unmarshal(v.Config, &out.Config); err != nil {
		a.internalError(w, fmt.Errorf("stored %s config %d of tenant %q: %w", kind, v.ID, id, err))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func configsSince[C any](a *API, w http.ResponseWriter, r *http.Request, kind string) {
	var since int64
	if s := r.URL.Query().Get("since"); s != "" {
		var err error
		if since, err = strconv.ParseInt(s, 10, 64); err != nil || since < 0 {
			http.Error(w, fmt.Sprintf("invalid since=%q: want a config ID, 0 or more", s), http.StatusBadRequest)
			return
		}
	}
	views, err := a.db.Since(r.Context(), kind, since)
	if err != nil {
		a.internalError(w, err)
		return
	}
	out := ConfigsResponse[C]{Configs: make(map[string]View[C], len(views))}
	for t, v := range views {
		ov := View[C]{ID: v.ID, DeletedAt: v.DeletedAt}
		if err := json.Unmarshal(v.Config, &ov.Config); err != nil {
			a.internalError(w, fmt.Errorf("stored %s config %d of tenant %q: %w", kind, v.ID, t, err))
			return
		}
		out.Configs[t] = ov
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) store(w http.ResponseWriter, r *http.Request, kind string, cfg any) {
	id, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		a.internalError(w, err)
		return
	}
	version, err := a.db.Set(r.Context(), id, kind, b)
	if err != nil {
		a.internalError(w, err)
		return
	}
	a.logger.Info("config stored", "kind", kind, "tenant", id, "id", version)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) internalError(w http.ResponseWriter, err error) {
	a.logger.Error("configs API", "err", err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// decodeBody reads a JSON body into v, or answers 400 (413 for a body
// over maxBodySize).
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	return decode(w, r, v, false, "")
}

// decodeBodyStrict is decodeBody refusing fields v does not have, with hint.
func decodeBodyStrict(w http.ResponseWriter, r *http.Request, v any, hint string) bool {
	return decode(w, r, v, true, hint)
}

func decode(w http.ResponseWriter, r *http.Request, v any, strict bool, hint string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodySize))
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil {
		return true
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		http.Error(w, fmt.Sprintf("request body over %d bytes", tooLarge.Limit), http.StatusRequestEntityTooLarge)
		return false
	}
	msg := "invalid JSON body: " + err.Error()
	if strict && strings.HasPrefix(err.Error(), "json: unknown field ") {
		msg += ": " + hint
	}
	http.Error(w, msg, http.StatusBadRequest)
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
