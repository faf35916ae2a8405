package ingester

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/grafana/dskit/concurrency"
	"github.com/grafana/dskit/services"
)

// shipping reports whether blocks go to long-term storage.
func (i *Ingester) shipping() bool {
	return i.bucket != nil && i.cfg.TSDB.ShipInterval > 0
}

// shipLoop uploads new blocks at start (blocks cut before a restart go
// first) and then every -blocks-storage.tsdb.ship-interval. A failed upload
// is retried on the next tick: its block stays on disk meanwhile.
func (i *Ingester) shipLoop(ctx context.Context) {
	t := time.NewTicker(i.cfg.TSDB.ShipInterval)
	defer t.Stop()
	for {
		if err := i.shipBlocks(ctx, nil); err != nil && ctx.Err() == nil {
			i.logger.Warn("shipping blocks failed; retrying on the next -blocks-storage.tsdb.ship-interval", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// shipBlocks uploads the new blocks of the given tenants' TSDBs (all when
// tenants is nil), -blocks-storage.tsdb.ship-concurrency tenants at a time.
func (i *Ingester) shipBlocks(ctx context.Context, tenants []string) error {
	if !i.shipping() {
		return nil
	}
	users := i.selectTSDBs(tenants)
	errs := make([]error, len(users))
	_ = concurrency.ForEachJob(ctx, len(users), i.cfg.TSDB.ShipConcurrency, func(ctx context.Context, idx int) error {
		_, errs[idx] = users[idx].shipper.sync(ctx)
		return nil
	})
	return errors.Join(errs...)
}

func (i *Ingester) selectTSDBs(tenants []string) []*userTSDB {
	all := i.allTSDBs()
	if tenants == nil {
		return all
	}
	return slices.DeleteFunc(all, func(u *userTSDB) bool { return !slices.Contains(tenants, u.id) })
}

// flush compacts the whole head of the given tenants (all when tenants is
// nil) into blocks and ships them, as Cortex's /ingester/flush and
// -blocks-storage.tsdb.flush-blocks-on-shutdown do.
func (i *Ingester) flush(ctx context.Context, tenants []string) error {
	users := i.selectTSDBs(tenants)
	errs := make([]error, len(users))
	_ = concurrency.ForEachJob(ctx, len(users), i.cfg.TSDB.HeadCompactionConcurrency, func(ctx context.Context, idx int) error {
		errs[idx] = i.compactWholeHead(ctx, users[idx])
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := i.shipBlocks(ctx, tenants); err != nil {
		return fmt.Errorf("shipping blocks: %w", err)
	}
	return nil
}

// FlushHandler serves POST /ingester/flush: it compacts the whole head of
// every tenant (or of each tenant named by a "tenant" query parameter)
// into blocks and, with long-term storage, uploads them. Unlike Cortex,
// which flushes in the background unless ?wait=true, it always answers
// once done: 204 when every head is compacted and every block shipped,
// 500 naming the tenants at fault otherwise, 503 when the ingester is not
// running. Samples pushed meanwhile go to a fresh head.
func (i *Ingester) FlushHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "flushing needs POST", http.StatusMethodNotAllowed)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if s := i.State(); s != services.Running {
			http.Error(w, "ingester is "+strings.ToLower(s.String()), http.StatusServiceUnavailable)
			return
		}
		// The TSDBs stay open until the flush is done.
		i.closeMu.RLock()
		defer i.closeMu.RUnlock()
		if i.closed {
			http.Error(w, "ingester is terminated", http.StatusServiceUnavailable)
			return
		}
		start := time.Now()
		if err := i.flush(r.Context(), r.Form["tenant"]); err != nil {
			i.logger.Error("flushing TSDB heads", "err", err)
			http.Error(w, "flushing: "+err.Error(), http.StatusInternalServerError)
			return
		}
		i.logger.Info("flushed TSDB heads", "duration", time.Since(start))
		w.WriteHeader(http.StatusNoContent)
	})
}
