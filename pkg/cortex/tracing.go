package cortex

import (
	"context"

	"github.com/cortex-tls/cortex/pkg/tracing"
)

// setupTracing installs -tracing.*'s tracer provider, named as Cortex
// names the process ("cortex-<target>") and by its instance ID.
func (t *Cortex) setupTracing() error {
	p := tracing.Process{ServiceName: tracing.ServiceName(t.Cfg.Target), Instance: t.Cfg.logInstance()}
	stop, err := tracing.Setup(context.Background(), t.Cfg.Tracing, p, t.TLS, t.Logger)
	if err != nil {
		return err
	}
	t.stopTracing = stop
	return nil
}

// shutdownTracing sends the spans still queued, within
// tracing.ShutdownTimeout, and uninstalls the provider.
func (t *Cortex) shutdownTracing() {
	if t.stopTracing == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracing.ShutdownTimeout)
	defer cancel()
	if err := t.stopTracing(ctx); err != nil {
		t.Logger.Warn("tracing: flushing the last spans failed", "err", err)
	}
	t.stopTracing = nil
}
