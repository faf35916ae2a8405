package alertmanager

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"

	"github.com/prometheus/alertmanager/config"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	cortextenant "github.com/cortex-tls/cortex/pkg/tenant"
)

// ConfigAPIPath is Cortex's Alertmanager configuration API.
const ConfigAPIPath = "/api/v1/alerts"

// maxConfigBody bounds a configuration posted to ConfigAPIPath, the same
// bound the stores apply to what they read.
const maxConfigBody = 4 << 20

// ConfigHandler serves Cortex's configuration API for the tenant named in
// the request context: GET returns the stored configuration as YAML
// (alertmanager_config and template_files), POST validates and stores one,
// DELETE removes it. Running Alertmanagers pick changes up on their next
// poll (-alertmanager.configs.poll-interval).
func (am *MultitenantAlertmanager) ConfigHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := cortextenant.ID(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if am.store == nil {
			http.Error(w, "no alertmanager storage is configured", http.StatusNotFound)
			return
		}
		switch r.Method {
		case http.MethodGet:
			c, err := am.store.GetAlertConfig(r.Context(), id)
			if errors.Is(err, alertstore.ErrNotFound) {
				http.Error(w, "alertmanager config not found", http.StatusNotFound)
				return
			}
			if err != nil {
				am.logger.Error("reading the tenant's Alertmanager configuration", "tenant", id, "err", err)
				http.Error(w, "reading the configuration failed", http.StatusInternalServerError)
				return
			}
			b, err := yaml.Marshal(c)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write(b)
		case http.MethodPost:
			b, err := io.ReadAll(io.LimitReader(r.Body, maxConfigBody+1))
			if err != nil {
				http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
				return
			}
			if len(b) > maxConfigBody {
				http.Error(w, fmt.Sprintf("configuration larger than %d bytes", maxConfigBody), http.StatusRequestEntityTooLarge)
				return
			}
			// The body's size is checked before decoding it, then the templates.
			limits := am.limitsFor(id)
			var c tenantConfig
			if err := checkConfigLimits(limits, c, len(b)); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := yaml.Unmarshal(b, &c); err != nil {
				http.Error(w, "decoding the configuration: "+err.Error(), http.StatusBadRequest)
				return
			}
			if err := checkConfigLimits(limits, c, len(b)); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := validateTenantConfig(c); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := am.store.SetAlertConfig(r.Context(), id, c); err != nil {
				am.configAPIError(w, id, err)
				return
			}
			w.WriteHeader(http.StatusCreated)
		case http.MethodDelete:
			if err := am.store.DeleteAlertConfig(r.Context(), id); err != nil {
				am.configAPIError(w, id, err)
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

func (am *MultitenantAlertmanager) configAPIError(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, alertstore.ErrReadOnly) {
		http.Error(w, err.Error(), http.StatusMethodNotAllowed)
		return
	}
	am.logger.Error("writing the tenant's Alertmanager configuration", "tenant", id, "err", err)
	http.Error(w, "writing the configuration failed", http.StatusInternalServerError)
}

// validateTenantConfig checks a tenant's configuration as it will be
// applied: it parses, names no file on the host, and its template files
// have plain names.
func validateTenantConfig(c tenantConfig) error {
	if c.AlertmanagerConfig == "" {
		return errors.New("alertmanager_config is empty")
	}
	conf, err := config.Load(c.AlertmanagerConfig)
	if err != nil {
		return fmt.Errorf("invalid Alertmanager configuration: %w", err)
	}
	if err := checkNoHostFiles(conf); err != nil {
		return err
	}
	for name := range c.TemplateFiles {
		if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
			return fmt.Errorf("template file name %q: must be a plain file name", name)
		}
	}
	return nil
}

// ConfigAPIEnabled reports -experimental.alertmanager.enable-api.
func (am *MultitenantAlertmanager) ConfigAPIEnabled() bool { return am.cfg.EnableAPI }
