package cortex

import (
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/alertmanager"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// initAlertmanager builds the per-tenant Alertmanagers and the configs
// service poller on the -alertmanager.configs. TLS link, and mounts the v2
// API. With no -alertmanager.configs.url it only serves the fallback
// configuration, if any, so it is safe in -target=all.
func (t *Cortex) initAlertmanager() (services.Service, error) {
	c, err := tlsconfig.NewClient(alertmanager.TLSPrefix, t.Cfg.Alertmanager.Configs.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	am, err := alertmanager.New(t.Cfg.Alertmanager, c, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	t.API.RegisterAlertmanager(am)
	return am, nil
}
