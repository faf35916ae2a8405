package cortex

import (
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/flusher"
)

// Flusher is Cortex's -target=flusher: it compacts and ships the TSDB
// directory an ingester left, then stops the process
// (-flusher.exit-after-flush).
const Flusher = "flusher"

// initFlusher builds the flusher on the ingester's TSDB settings
// (-blocks-storage.tsdb.*) and the blocks storage bucket, which it reaches
// with the bucket client's TLS, as the ingester does.
func (t *Cortex) initFlusher() (services.Service, error) {
	cfg := t.Cfg.Ingester
	cfg.TSDB = t.Cfg.BlocksStorage.TSDB
	bkt, err := t.blocksBucketFor(Ingester)
	if err != nil {
		return nil, err
	}
	return flusher.New(t.Cfg.Flusher, cfg, t.Overrides, bkt, t.Logger.With("component", Flusher), t.Registry)
}
