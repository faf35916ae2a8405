package cortex

import (
	"context"

	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/alertmanager"
	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
)

// initAlertmanager builds the per-tenant Alertmanagers polling the
// alertmanager storage (-alertmanager-storage.backend; the configs service
// link takes either spelling of its flags, -alertmanager.configs.* or
// -alertmanager-storage.configs.*) and mounts the v2 API. With neither a
// configs URL nor a backend it polls an empty filesystem bucket in
// ./alertmanager, so it is safe in -target=all.
func (t *Cortex) initAlertmanager() (services.Service, error) {
	st := t.Cfg.AlertmanagerStorage
	if err := st.Resolve(t.Cfg.Alertmanager.Legacy()); err != nil {
		return nil, err
	}
	store, err := alertstore.NewStore(context.Background(), st, t.TLS, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	am, err := alertmanager.New(t.Cfg.Alertmanager, store, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	t.API.RegisterAlertmanager(am)
	return am, nil
}
