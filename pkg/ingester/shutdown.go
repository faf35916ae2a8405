package ingester

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/grafana/dskit/services"
)

// ShutdownHandler serves POST /ingester/shutdown, as Cortex's does: it
// stops the ingester service with -blocks-storage.tsdb.flush-blocks-on-shutdown
// and -ingester.unregister-on-shutdown forced on, so the ingester leaves
// the ring (LEAVING, then unregistered), compacts every tenant's head into
// blocks, ships them and closes its TSDBs. The process keeps serving its
// other modules; /ready fails from then on. It answers once done: 204,
// or 500 when flushing failed (what was not shipped stays on local disk
// for the next start), 503 when the ingester is not running.
func (i *Ingester) ShutdownHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "shutting the ingester down needs POST", http.StatusMethodNotAllowed)
			return
		}
		switch s := i.State(); s {
		case services.Running, services.Stopping:
			// Stopping: another shutdown is under way; wait for it.
		default:
			http.Error(w, "ingester is "+strings.ToLower(s.String()), http.StatusServiceUnavailable)
			return
		}
		i.shutdownFlush.Store(true)
		i.lifecycler.SetKeepInstanceInTheRingOnShutdown(false)
		i.logger.Info("shutting the ingester down on request: leaving the ring and flushing every head")
		// The shutdown goes on whether or not the client waits for it.
		err := services.StopAndAwaitTerminated(context.WithoutCancel(r.Context()), i)
		if flushErr := i.shutdownFlushErr(); flushErr != nil {
			err = errors.Join(err, flushErr)
		}
		if err != nil {
			http.Error(w, "the ingester stopped, but: "+err.Error(), http.StatusInternalServerError)
			return
		}
		i.logger.Info("ingester shut down on request")
		w.WriteHeader(http.StatusNoContent)
	})
}

// shutdownFlushErr is what flushing on shutdown failed with, if it did.
func (i *Ingester) shutdownFlushErr() error {
	i.flushErrMu.Lock()
	defer i.flushErrMu.Unlock()
	return i.flushErr
}
