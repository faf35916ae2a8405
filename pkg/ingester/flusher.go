package ingester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// NewForFlusher returns an ingester for the TSDB directory of an ingester
// whose process is gone, as Cortex's flusher uses: it takes no part in the
// ring and serves no pushes or queries. Its service opens every tenant's
// TSDB under -blocks-storage.tsdb.dir when it starts, replaying the WAL,
// and closes them when it stops; Flush compacts and ships them in between.
// The directory must exist: a flusher pointed at the wrong one fails
// rather than finding nothing to flush.
func NewForFlusher(cfg Config, limits *validation.Overrides, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Ingester, error) {
	i, err := newIngester(cfg, limits, logger, reg, opts...)
	if err != nil {
		return nil, err
	}
	i.Service = services.NewBasicService(i.startingForFlusher, i.runningForFlusher, i.stoppingForFlusher).WithName("ingester")
	return i, nil
}

func (i *Ingester) startingForFlusher(ctx context.Context) error {
	fi, err := os.Stat(i.cfg.TSDB.Dir)
	if err != nil {
		return fmt.Errorf("-blocks-storage.tsdb.dir %q: %w", i.cfg.TSDB.Dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("-blocks-storage.tsdb.dir %q is not a directory", i.cfg.TSDB.Dir)
	}
	if err := i.openExistingTSDBs(ctx); err != nil {
		return errors.Join(err, i.closeAll())
	}
	return nil
}

func (i *Ingester) runningForFlusher(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (i *Ingester) stoppingForFlusher(error) error { return i.closeAll() }

// Flush compacts the whole head of every tenant into blocks and, with
// long-term storage, ships every block of theirs not shipped yet: what an
// ingester's -blocks-storage.tsdb.flush-blocks-on-shutdown does. The
// error names each tenant, and block, that failed.
func (i *Ingester) Flush(ctx context.Context) error {
	if s := i.State(); s != services.Running {
		return fmt.Errorf("ingester is %s", strings.ToLower(s.String()))
	}
	i.closeMu.RLock()
	defer i.closeMu.RUnlock()
	if i.closed {
		return errors.New("ingester is terminated")
	}
	return i.flush(ctx, nil)
}
