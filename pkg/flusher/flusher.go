// Package flusher is -target=flusher, Cortex's job for the data directory
// of an ingester whose process is gone (a pod deleted with its volume
// kept): it opens every tenant's TSDB under -blocks-storage.tsdb.dir,
// replaying the WAL, compacts the heads into blocks and ships every block
// not shipped yet to the blocks storage bucket, with the ingester's own
// code (ingester.NewForFlusher). It takes no part in the ingester ring.
package flusher

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Config is Cortex's flusher block.
type Config struct {
	ExitAfterFlush bool `yaml:"exit_after_flush"`
}

// RegisterFlags registers -flusher.exit-after-flush.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.ExitAfterFlush, "flusher.exit-after-flush", true, "With -target=flusher, stop the process once every head is compacted and every block shipped: status 0, or 1 with the tenants and blocks that failed. When false, the process keeps serving /ready and /metrics after the flush, doing nothing else.")
}

// Flusher is the flusher's service: it flushes once, then stops the
// process or idles.
type Flusher struct {
	services.Service

	cfg    Config
	ing    *ingester.Ingester
	dir    string
	ships  bool
	logger *slog.Logger
}

// New returns the flusher of the TSDB directory ingesterCfg.TSDB.Dir,
// shipping to bkt. With a nil bkt or -blocks-storage.tsdb.ship-interval=0
// the blocks stay on local disk, as an ingester's would.
func New(cfg Config, ingesterCfg ingester.Config, limits *validation.Overrides, bkt objstore.Bucket, logger *slog.Logger, reg prometheus.Registerer) (*Flusher, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ing, err := ingester.NewForFlusher(ingesterCfg, limits, logger, reg, ingester.WithBucket(bkt))
	if err != nil {
		return nil, err
	}
	f := &Flusher{cfg: cfg, ing: ing, dir: ingesterCfg.TSDB.Dir, ships: bkt != nil && ingesterCfg.TSDB.ShipInterval > 0, logger: logger}
	f.Service = services.NewBasicService(f.starting, f.running, f.stopping).WithName("flusher")
	return f, nil
}

// starting opens the TSDBs, replaying their WALs.
func (f *Flusher) starting(ctx context.Context) error {
	f.logger.Info("flusher opening the TSDBs", "dir", f.dir)
	return services.StartAndAwaitRunning(ctx, f.ing)
}

func (f *Flusher) running(ctx context.Context) error {
	start := time.Now()
	err := f.ing.Flush(ctx)
	// The TSDBs are closed once flushed, as Cortex's flusher stops its
	// ingester, whether the process then exits or idles.
	if stopErr := services.StopAndAwaitTerminated(context.Background(), f.ing); stopErr != nil && err == nil {
		err = stopErr
	}
	if err != nil {
		return fmt.Errorf("flushing -blocks-storage.tsdb.dir %q: %w", f.dir, err)
	}
	f.logger.Info("flush done: every head compacted into blocks", "dir", f.dir, "blocks_shipped", f.ships, "duration", time.Since(start))
	if f.cfg.ExitAfterFlush {
		return modules.ErrStopProcess
	}
	<-ctx.Done()
	return nil
}

func (f *Flusher) stopping(error) error {
	if s := f.ing.State(); s == services.Terminated || s == services.Failed {
		return nil
	}
	return services.StopAndAwaitTerminated(context.Background(), f.ing)
}
