package cortex

import (
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/compactor"
)

// initCompactor merges each tenant's blocks in the bucket into
// -compactor.block-ranges, applies retention and deletion delays, and keeps
// the bucket index current.
func (t *Cortex) initCompactor() (services.Service, error) {
	bkt, err := t.blocksBucketFor(Compactor)
	if err != nil {
		return nil, err
	}
	return compactor.New(t.Cfg.Compactor, bkt, t.Logger, t.Registry)
}
