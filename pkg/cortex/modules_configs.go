package cortex

import (
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/configs"
)

// Configs is the configs service: the tenants' Alertmanager configs and
// rules, in SQLite (default) or PostgreSQL.
const Configs = "configs"

// initConfigs opens and migrates the database, so an unreachable database
// or a failed migration is a startup error, and mounts the configs API: the
// tenant API under /api/prom/configs/ and the pollers' under
// /private/api/prom/configs/.
func (t *Cortex) initConfigs() (services.Service, error) {
	d, err := configs.OpenDB(t.Cfg.Configs, t.Logger)
	if err != nil {
		return nil, err
	}
	configs.NewAPI(d, t.Logger).RegisterRoutes(t.Server.HTTP, t.Cfg.AuthEnabled)
	t.readyChecks = append(t.readyChecks, d.Ping)
	return services.NewIdleService(nil, func(error) error { return d.Close() }), nil
}

func (t *Cortex) registerConfigsModule() {
	t.modules.RegisterModule(Configs, t.initConfigs)
	// Its default, an SQLite file, needs no other service, so all runs it.
	for name, deps := range map[string][]string{Configs: {Server}, All: {Configs}} {
		if err := t.modules.AddDependency(name, deps...); err != nil {
			panic(err) // a wiring mistake in this file, caught by every test
		}
	}
}
