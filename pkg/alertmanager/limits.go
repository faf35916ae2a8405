package alertmanager

import (
	"fmt"
	"sort"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// WithLimits applies the tenants' Alertmanager limits (the -alertmanager.max-*
// flags and their per-tenant overrides in the runtime configuration). They are
// read each time they apply, so a changed override takes effect without a
// restart. Without it every limit is 0: unlimited, as in Cortex.
func WithLimits(o *validation.Overrides) Option {
	return func(am *MultitenantAlertmanager) { am.overrides = o }
}

// limitsFor returns tenant id's limits.
func (am *MultitenantAlertmanager) limitsFor(id string) *validation.Limits {
	if am.overrides == nil {
		return &validation.Limits{}
	}
	return am.overrides.For(id)
}

// checkConfigLimits refuses a tenant configuration over the tenant's
// -alertmanager.max-config-size-bytes, -alertmanager.max-templates-count or
// -alertmanager.max-template-size-bytes. size is the configuration's size
// as posted (the request body) or, for a stored configuration, its
// alertmanager_config and template files together.
func checkConfigLimits(l *validation.Limits, c tenantConfig, size int) error {
	if m := l.AlertmanagerMaxConfigSizeBytes; m > 0 && size > m {
		return fmt.Errorf("the Alertmanager configuration is too big: %d bytes (limit: %d bytes, -alertmanager.max-config-size-bytes)", size, m)
	}
	if m := l.AlertmanagerMaxTemplatesCount; m > 0 && len(c.TemplateFiles) > m {
		return fmt.Errorf("too many templates in the configuration: %d (limit: %d, -alertmanager.max-templates-count)", len(c.TemplateFiles), m)
	}
	if m := l.AlertmanagerMaxTemplateSizeBytes; m > 0 {
		names := make([]string, 0, len(c.TemplateFiles))
		for name := range c.TemplateFiles {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if n := len(c.TemplateFiles[name]); n > m {
				return fmt.Errorf("template %s is too big: %d bytes (limit: %d bytes, -alertmanager.max-template-size-bytes)", name, n, m)
			}
		}
	}
	return nil
}

// storedConfigSize is the size checked against
// -alertmanager.max-config-size-bytes for a configuration read from the
// alertmanager storage.
func storedConfigSize(c tenantConfig) int {
	n := len(c.AlertmanagerConfig)
	for name, body := range c.TemplateFiles {
		n += len(name) + len(body)
	}
	return n
}
