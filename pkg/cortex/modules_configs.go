package cortex

import (
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/configs"
)

// initConfigs opens and migrates the database, so an unreachable database
// or a failed migration is a startup error, and mounts the configs API.
func (t *Cortex) initConfigs() (services.Service, error) {
	d, err := configs.OpenDB(t.Cfg.Configs, t.Logger)
	if err != nil {
		return nil, err
	}
	t.API.RegisterConfigs(configs.NewAPI(d, t.Logger, configs.WithParserOptions(t.Cfg.Querier.ParserOptions()), configs.WithNotifications(t.Cfg.Configs.API.Notifications)))
	t.readyChecks = append(t.readyChecks, d.Ping)
	return services.NewIdleService(nil, func(error) error { return d.Close() }), nil
}
