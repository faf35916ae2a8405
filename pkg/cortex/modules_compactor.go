package cortex

import (
	"time"

	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/compactor"
)

// initCompactor merges each tenant's blocks in the bucket into
// -compactor.block-ranges, applies each tenant's retention (the
// -compactor.blocks-retention-period limit, overridable per tenant in the
// runtime configuration) and deletion delays, and keeps the bucket index
// current.
func (t *Cortex) initCompactor() (services.Service, error) {
	bkt, err := t.blocksBucketFor(Compactor)
	if err != nil {
		return nil, err
	}
	retention := func(tenant string) time.Duration {
		return time.Duration(t.Overrides.For(tenant).CompactorBlocksRetentionPeriod)
	}
	return compactor.New(t.Cfg.Compactor, bkt, t.Logger, t.Registry, compactor.WithRetention(retention))
}
