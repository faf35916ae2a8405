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

// Poll fetches the configurations changed since the last successful poll
// and applies them. On failure every running tenant keeps its configuration
// and the error is logged with its cause.
func (am *MultitenantAlertmanager) Poll(ctx context.Context) error {
	am.mtx.RLock()
	since := am.since
	am.mtx.RUnlock()
	resp, err := am.fetch(ctx, since)
	if err != nil {
		am.polls.WithLabelValues("failure").Inc()
		am.logger.Error("cannot fetch Alertmanager configurations from the configs service; running tenants keep their last configuration", "url", am.configs.URL(), "err", err)
		return err
	}
	am.polls.WithLabelValues("success").Inc()
	am.lastSuccess.SetToCurrentTime()

	am.mtx.Lock()
	defer am.mtx.Unlock()
	for id, v := range resp.Configs {
		if v.ID > am.since {
			am.since = v.ID
		}
		if err := validTenant(id); err != nil {
			am.logger.Error("configs service returned an unusable tenant ID; skipped", "tenant", id, "err", err)
			continue
		}
		logger := am.logger.With("tenant", id, "config_id", v.ID)
		if v.DeletedAt != "" || v.Config == nil {
			if t, ok := am.tenants[id]; ok {
				t.stop()
				delete(am.tenants, id)
				logger.Info("tenant's configuration was deactivated: Alertmanager stopped (its silences and notification log stay on disk)")
			}
			continue
		}
		c := *v.Config
		if strings.TrimSpace(c.AlertmanagerConfig) == "" {
			if am.fallback == nil {
				if t, ok := am.tenants[id]; ok {
					t.stop()
					delete(am.tenants, id)
					logger.Info("tenant's configuration is empty and there is no fallback: Alertmanager stopped")
				}
				continue
			}
			c = *am.fallback
		}
		if err := am.applyLocked(id, c); err != nil {
			logger.Error("cannot apply the tenant's Alertmanager configuration; it keeps its previous one", "err", err)
			continue
		}
	}
	am.tenantCount.Set(float64(len(am.tenants)))
	return nil
}

func (am *MultitenantAlertmanager) fetch(ctx context.Context, since int64) (*configsResponse, error) {
	var out configsResponse
	if err := am.configs.GetSince(ctx, ConfigsPath, since, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
