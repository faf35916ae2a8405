package ingester

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/grafana/dskit/concurrency"
	"github.com/prometheus/prometheus/tsdb"
)

// compactHeads cuts blocks out of every head that spans enough time, and
// compacts whole heads idle for -blocks-storage.tsdb.head-compaction-idle-timeout
// so an idle tenant's series leave memory. Retention is applied by the
// TSDB when blocks are reloaded.
func (i *Ingester) compactHeads(ctx context.Context) {
	i.deleteMarkedTenants()
	i.closeIdleTSDBs()
	users := i.allTSDBs()
	_ = concurrency.ForEachJob(ctx, len(users), i.cfg.TSDB.HeadCompactionConcurrency, func(ctx context.Context, idx int) error {
		u := users[idx]
		var err error
		if i.isIdle(u) {
			err = i.compactIdleHead(u)
		} else {
			err = u.db.Compact(ctx)
		}
		if err != nil && ctx.Err() == nil {
			i.logger.Error("TSDB head compaction failed", "user", u.id, "err", err)
		}
		return nil
	})
}

func (i *Ingester) isIdle(u *userTSDB) bool {
	idle := i.cfg.TSDB.HeadCompactionIdleTimeout
	return idle > 0 && time.Since(time.Unix(0, u.lastPush.Load())) > idle && u.db.Head().NumSeries() > 0
}

// compactIdleHead compacts the whole head of a tenant that is still idle.
func (i *Ingester) compactIdleHead(u *userTSDB) error {
	u.appendMu.Lock()
	defer u.appendMu.Unlock()
	if !i.isIdle(u) {
		return nil
	}
	i.logger.Info("compacting idle TSDB head", "user", u.id)
	return i.compactWholeHeadLocked(u)
}

// compactWholeHead writes the whole head, out-of-order samples included,
// into blocks: for /ingester/flush and
// -blocks-storage.tsdb.flush-blocks-on-shutdown.
func (i *Ingester) compactWholeHead(ctx context.Context, u *userTSDB) error {
	u.appendMu.Lock()
	err := i.compactWholeHeadLocked(u)
	u.appendMu.Unlock()
	if err != nil {
		return fmt.Errorf("compacting the TSDB head of tenant %q: %w", u.id, err)
	}
	if err := u.db.CompactOOOHead(ctx); err != nil {
		return fmt.Errorf("compacting the out-of-order head of tenant %q: %w", u.id, err)
	}
	return nil
}

// compactWholeHeadLocked writes the whole head into blocks aligned on the
// first block range, as Cortex does. The caller holds appendMu for
// writing, so pushes to the tenant wait: a sample appended inside the
// range being written could otherwise be lost when the head is truncated.
func (i *Ingester) compactWholeHeadLocked(u *userTSDB) error {
	blockRange := i.cfg.TSDB.BlockRanges[0].Milliseconds()
	h := u.db.Head()
	minT, maxT := h.MinTime(), h.MaxTime()
	if minT == math.MaxInt64 {
		return nil
	}
	// maxT stays the one read here: once the head is empty its times move
	// past it, and nothing is appended meanwhile.
	for minT <= maxT {
		blockMax := (minT/blockRange+1)*blockRange - 1
		if minT < 0 && minT%blockRange != 0 {
			blockMax = (minT/blockRange)*blockRange - 1
		}
		blockMax = min(blockMax, maxT)
		if err := u.db.CompactHead(tsdb.NewRangeHead(h, minT, blockMax)); err != nil {
			return err
		}
		minT = max(h.MinTime(), blockMax+1)
	}
	return nil
}
