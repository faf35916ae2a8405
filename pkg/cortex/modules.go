package cortex

import (
	"context"

	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/server"
)

// Module names. Components register here as they arrive; All depends on
// every one of them.
const (
	TLSReloader = "tls-reloader"
	Server      = "server"
	All         = "all"
)

func (t *Cortex) registerModules() {
	t.modules.RegisterModule(TLSReloader, t.initTLSReloader, modules.UserInvisibleModule)
	t.modules.RegisterModule(Server, t.initServer, modules.UserInvisibleModule)
	t.modules.RegisterModule(All, nil)

	deps := map[string][]string{
		Server: {TLSReloader},
		All:    {Server},
	}
	for name, d := range deps {
		if err := t.modules.AddDependency(name, d...); err != nil {
			panic(err) // a wiring mistake in this file, caught by every test
		}
	}
}

func (t *Cortex) initTLSReloader() (services.Service, error) {
	if t.Cfg.TLSReloadInterval <= 0 {
		return nil, nil
	}
	return services.NewTimerService(t.Cfg.TLSReloadInterval, nil, func(context.Context) error {
		t.TLS.Reload()
		return nil
	}, nil), nil
}

func (t *Cortex) initServer() (services.Service, error) {
	s, err := server.New(t.Cfg.Server, t.TLS, t.Logger)
	if err != nil {
		return nil, err
	}
	t.Server = s
	t.handleCommon()
	return s.Service(), nil
}
