package cortex

import (
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/purger"
)

// Cortex's module names: TenantDeletion serves the tenant deletion API;
// Purger, the -target for it, runs nothing else here.
const (
	TenantDeletion = "tenant-deletion"
	Purger         = "purger"
)

// initTenantDeletionAPI serves Cortex's tenant deletion API: it writes the
// tenant's deletion mark, which the compactor and the ingesters act on.
func (t *Cortex) initTenantDeletionAPI() (services.Service, error) {
	bkt, err := t.blocksBucketFor(Purger)
	if err != nil {
		return nil, err
	}
	t.API.RegisterTenantDeletion(purger.NewTenantDeletionAPI(bkt, t.Logger.With("component", Purger)))
	return nil, nil
}

// initPurger is -target=purger: the tenant deletion API, its dependency,
// is all it runs, as in Cortex's blocks storage.
func (t *Cortex) initPurger() (services.Service, error) { return nil, nil }
