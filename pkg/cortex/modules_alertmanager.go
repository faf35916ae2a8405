package cortex

import (
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/alertmanager"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// Alertmanager is the multi-tenant Alertmanager module.
const Alertmanager = "alertmanager"

// initAlertmanager builds the per-tenant Alertmanagers, the configs service
// poller on the -alertmanager.configs. TLS link, and mounts the v2 API under
// /alertmanager/. With no -alertmanager.configs.url it only serves the
// fallback configuration, if any, so it is safe in -target=all.
func (t *Cortex) initAlertmanager() (services.Service, error) {
	c, err := tlsconfig.NewClient(alertmanager.TLSPrefix, t.Cfg.Alertmanager.Configs.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	am, err := alertmanager.New(t.Cfg.Alertmanager, c, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	t.Server.HTTP.Handle("/alertmanager/", tenant.HTTPMiddleware(t.Cfg.AuthEnabled, am.Handler()))
	return am, nil
}

func (t *Cortex) registerAlertmanagerModule() {
	t.modules.RegisterModule(Alertmanager, t.initAlertmanager)
	for name, deps := range map[string][]string{Alertmanager: {Server, TLSReloader}, All: {Alertmanager}} {
		if err := t.modules.AddDependency(name, deps...); err != nil {
			panic(err) // a wiring mistake in this file, caught by every test
		}
	}
}
