package alertmanager

import (
	"context"
	"strings"

	configsclient "github.com/cortex-tls/cortex/pkg/configs/client"
)

// ConfigsPath is the configs service's internal endpoint polled for
// changed tenant configurations.
const ConfigsPath = configsclient.AlertmanagerPath

// configsResponse is the body of GET ConfigsPath?since=<id>.
type configsResponse = configsclient.Response[tenantConfig]

type configView = configsclient.View[tenantConfig]

// Poll reads the configurations of the tenants this instance runs from the
// alertmanager storage and applies them: new tenants start, changed ones
// reload, and tenants whose stored configuration is gone stop. On failure
// every running tenant keeps its configuration and the error is logged with
// its cause.
func (am *MultitenantAlertmanager) Poll(ctx context.Context) error {
	users, err := am.store.ListAllUsers(ctx)
	var cfgs map[string]tenantConfig
	if err == nil {
		cfgs, err = am.store.GetAlertConfigs(ctx, am.ownedUsers(users))
	}
	if err != nil {
		am.polls.WithLabelValues("failure").Inc()
		am.logger.Error("cannot fetch Alertmanager configurations; running tenants keep their last configuration", "err", err)
		return err
	}
	am.polls.WithLabelValues("success").Inc()
	am.lastSuccess.SetToCurrentTime()
	if store := am.stateStore(); store != nil && am.member != nil {
		am.deleteUnusedStates(ctx, store, users)
	}

	am.mtx.Lock()
	defer am.mtx.Unlock()
	for id, c := range cfgs {
		if err := validTenant(id); err != nil {
			am.logger.Error("alertmanager storage returned an unusable tenant ID; skipped", "tenant", id, "err", err)
			continue
		}
		logger := am.logger.With("tenant", id)
		// The stored configuration is checked, template files included,
		// before an empty one is replaced by the fallback.
		if err := checkConfigLimits(am.limitsFor(id), c, storedConfigSize(c)); err != nil {
			logger.Error("the tenant's stored Alertmanager configuration is over its limits and is not loaded; it keeps its previous one", "err", err)
			continue
		}
		if strings.TrimSpace(c.AlertmanagerConfig) == "" {
			if am.fallback == nil {
				if t, ok := am.tenants[id]; ok {
					t.stop()
					delete(am.tenants, id)
					logger.Info("tenant's configuration is empty and there is no fallback: Alertmanager stopped")
				}
				continue
			}
			// As in Cortex, the fallback runs with the tenant's own
			// template files (posted alone to the configs API's
			// /api/prom/configs/templates, say).
			c = tenantConfig{AlertmanagerConfig: am.fallback.AlertmanagerConfig, TemplateFiles: c.TemplateFiles}
		}
		if err := am.applyLocked(id, c); err != nil {
			logger.Error("cannot apply the tenant's Alertmanager configuration; it keeps its previous one", "err", err)
			continue
		}
		am.tenants[id].stored = true
	}
	for id, t := range am.tenants {
		if _, ok := cfgs[id]; ok || !t.stored {
			continue
		}
		t.stop()
		delete(am.tenants, id)
		am.logger.Info("tenant's configuration was removed or deactivated, or the tenant moved to other instances: Alertmanager stopped (its silences and notification log stay on disk)", "tenant", id)
	}
	am.tenantCount.Set(float64(len(am.tenants)))
	return nil
}

// ownedUsers returns the users whose Alertmanager runs on this instance:
// those -alertmanager.enabled-tenants and -disabled-tenants allow, and
// with sharding, of those, the ones it is a replica of.
func (am *MultitenantAlertmanager) ownedUsers(users []string) []string {
	out := users[:0:0]
	for _, u := range users {
		if am.allowed.IsAllowed(u) && (am.member == nil || am.ring.owns(u)) {
			out = append(out, u)
		}
	}
	return out
}
