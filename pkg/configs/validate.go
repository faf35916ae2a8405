package configs

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	amtemplate "github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// Cortex's errors for a receiver kind the notifications settings disable.
var (
	ErrEmailNotificationsAreDisabled   = errors.New("email notifications are disabled")
	ErrWebhookNotificationsAreDisabled = errors.New("webhook notifications are disabled")
)

// ValidateAlertmanager checks an Alertmanager configuration as the
// Alertmanager would load it, its receivers against the notifications
// settings, and its templates. The error is the parser's, with the line and
// field at fault, or names the receiver a setting refuses.
func ValidateAlertmanager(cfg AlertmanagerConfig, n NotificationsConfig) error {
	if strings.TrimSpace(cfg.AlertmanagerConfig) == "" {
		return errors.New("invalid Alertmanager config: alertmanager_config is empty")
	}
	am, err := amconfig.Load(cfg.AlertmanagerConfig)
	if err != nil {
		return fmt.Errorf("invalid Alertmanager config: %w", err)
	}
	for _, r := range am.Receivers {
		if n.DisableEmail && len(r.EmailConfigs) > 0 {
			return fmt.Errorf("invalid Alertmanager config: %w: receiver %q has email_configs (-configs.notifications.disable-email)", ErrEmailNotificationsAreDisabled, r.Name)
		}
		if n.DisableWebhook && len(r.WebhookConfigs) > 0 {
			return fmt.Errorf("invalid Alertmanager config: %w: receiver %q has webhook_configs (-configs.notifications.disable-webhook)", ErrWebhookNotificationsAreDisabled, r.Name)
		}
	}
	return validateTemplates(cfg.TemplateFiles)
}

// validateTemplates checks that every template file has a plain file name
// (the alertmanager writes it into the tenant's directory) and parses with
// the Alertmanager's template functions.
func validateTemplates(files map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
			return fmt.Errorf("invalid template file name %q: want a plain file name", name)
		}
		t, err := amtemplate.New()
		if err != nil {
			return err
		}
		if err := t.Parse(strings.NewReader(files[name])); err != nil {
			return fmt.Errorf("invalid template file %q: %w", name, err)
		}
	}
	return nil
}

// ValidateRules checks rule files in Prometheus 2 format, their
// expressions with p.
func ValidateRules(cfg RulesConfig, p parser.Parser) error {
	if cfg.RuleFormatVersion != "2" {
		return fmt.Errorf("unsupported rule_format_version %q: only \"2\" (the Prometheus 2 YAML rule format) is supported", cfg.RuleFormatVersion)
	}
	logger := slog.New(slog.DiscardHandler)
	for _, name := range slices.Sorted(maps.Keys(cfg.RulesFiles)) {
		if name == "" {
			return errors.New("invalid rules file: empty file name")
		}
		if _, errs := rulefmt.Parse([]byte(cfg.RulesFiles[name]), false, model.UTF8Validation, p, logger); len(errs) > 0 {
			msgs := make([]string, len(errs))
			for i, e := range errs {
				msgs[i] = e.Error()
			}
			return fmt.Errorf("invalid rules file %q: %s", name, strings.Join(msgs, "; "))
		}
	}
	return nil
}
