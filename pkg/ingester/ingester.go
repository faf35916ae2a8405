// Package ingester stores each tenant's series in its own Prometheus TSDB
// (write-ahead log on, so an acknowledged sample survives kill -9), takes
// part in the ingester hash ring through a dskit lifecycler, and serves the
// ingester gRPC API of pkg/ingester/client to distributors and queriers.
//
// Its clients reach it only through that API: it must not import
// pkg/distributor or pkg/querier, and it must not keep any string of a push
// request past the request (they alias a pooled buffer).
package ingester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/concurrency"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

const (
	// RingName names the ingester ring in logs and metrics.
	RingName = "ingester"
	// RingKey is the ring's key in the KV store, as in Cortex.
	RingKey = "ring"

	metadataPurgePeriod = time.Minute
)

// Ingester is the ingester service and gRPC server.
type Ingester struct {
	services.Service

	cfg         Config
	limits      *validation.Overrides
	logger      *slog.Logger
	metrics     *metrics
	tsdbMetrics *tsdbMetrics
	lifecycler  *ring.Lifecycler
	watcher     *services.FailureWatcher

	// closeMu is held for reading by every call that uses a TSDB and for
	// writing by stopping, which closes them: no call sees a closed TSDB.
	closeMu sync.RWMutex
	closed  bool

	mu    sync.RWMutex
	tsdbs map[string]*userTSDB

	// createMu serialises opening tenants' TSDBs, so a tenant's first
	// concurrent pushes open it once; pushes to open TSDBs do not wait.
	createMu sync.Mutex
}

// New returns an ingester. It binds no port and touches no file: the
// TSDBs are opened when the service starts.
func New(cfg Config, limits *validation.Overrides, logger *slog.Logger, reg prometheus.Registerer) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if limits == nil {
		return nil, errors.New("ingester: no limits")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tm := newTSDBMetrics()
	m, err := newMetrics(reg, tm)
	if err != nil {
		return nil, fmt.Errorf("ingester metrics: %w", err)
	}
	i := &Ingester{
		cfg:         cfg,
		limits:      limits,
		logger:      logger,
		metrics:     m,
		tsdbMetrics: tm,
		watcher:     services.NewFailureWatcher(),
		tsdbs:       map[string]*userTSDB{},
	}
	// No transfer or flush on shutdown: the WAL and blocks stay on local
	// disk and are replayed on the next start.
	i.lifecycler, err = ring.NewLifecycler(cfg.LifecyclerConfig, nil, RingName, RingKey, false,
		kitlog.New(logger), prometheus.WrapRegistererWithPrefix("cortex_", reg))
	if err != nil {
		return nil, fmt.Errorf("ingester ring lifecycler: %w", err)
	}
	i.Service = services.NewBasicService(i.starting, i.running, i.stopping).WithName("ingester")
	return i, nil
}

// CheckReady reports whether the ingester can take traffic: its TSDBs are
// open and it is ACTIVE in the ring (with the lifecycler's
// -ingester.min-ready-duration and ring health checks).
func (i *Ingester) CheckReady(ctx context.Context) error {
	if s := i.State(); s != services.Running {
		return fmt.Errorf("ingester is %s", strings.ToLower(s.String()))
	}
	return i.lifecycler.CheckReady(ctx)
}

// RingHandler serves the ring status page (HTML and JSON, with "forget")
// from the lifecycler's KV store client, for processes that run the
// ingester without a ring client of their own.
func (i *Ingester) RingHandler() http.Handler { return i.lifecycler }

func (i *Ingester) starting(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			i.closeAll()
		}
	}()
	if err := os.MkdirAll(i.cfg.TSDB.Dir, 0o750); err != nil {
		return fmt.Errorf("creating -blocks-storage.tsdb.dir %q: %w", i.cfg.TSDB.Dir, err)
	}
	if err := i.openExistingTSDBs(ctx); err != nil {
		return err
	}
	// Join the ring only once every acknowledged sample is back in memory.
	i.watcher.WatchService(i.lifecycler)
	if err := services.StartAndAwaitRunning(ctx, i.lifecycler); err != nil {
		return fmt.Errorf("joining the ingester ring: %w", err)
	}
	return nil
}

func (i *Ingester) running(ctx context.Context) error {
	rateTicker := time.NewTicker(i.cfg.RateUpdatePeriod)
	defer rateTicker.Stop()
	compactTicker := time.NewTicker(i.cfg.TSDB.HeadCompactionInterval)
	defer compactTicker.Stop()
	configTicker := time.NewTicker(i.cfg.TSDBConfigUpdatePeriod)
	defer configTicker.Stop()
	metadataTicker := time.NewTicker(metadataPurgePeriod)
	defer metadataTicker.Stop()

	for {
		select {
		case <-rateTicker.C:
			for _, u := range i.allTSDBs() {
				u.rate.tick()
			}
		case <-compactTicker.C:
			i.compactHeads(ctx)
		case <-configTicker.C:
			i.applyTSDBConfigs()
		case <-metadataTicker.C:
			before := time.Now().Add(-i.cfg.MetadataRetainPeriod)
			for _, u := range i.allTSDBs() {
				u.metadata.purge(before)
			}
		case err := <-i.watcher.Chan():
			return fmt.Errorf("ingester ring lifecycler failed: %w", err)
		case <-ctx.Done():
			return nil
		}
	}
}

// stopping leaves the ring (LEAVING, then unregistered when
// -ingester.unregister-on-shutdown is true) and closes every TSDB, which
// flushes and fsyncs the WAL.
func (i *Ingester) stopping(_ error) error {
	var errs []error
	// A lifecycler stopped in the middle of joining fails with the
	// cancellation of its own context: that is this shutdown, not an error.
	if err := services.StopAndAwaitTerminated(context.Background(), i.lifecycler); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, fmt.Errorf("leaving the ingester ring: %w", err))
	}
	// A lifecycler that failed while running() was already returning (a
	// SIGTERM during the ring join) is still reporting its failure on the
	// watcher's unbuffered channel: drain it, or Close waits forever.
	go func() {
		for range i.watcher.Chan() {
		}
	}()
	i.watcher.Close()
	errs = append(errs, i.closeAll())
	return errors.Join(errs...)
}

func (i *Ingester) closeAll() error {
	i.closeMu.Lock()
	defer i.closeMu.Unlock()
	i.closed = true
	i.mu.Lock()
	defer i.mu.Unlock()
	var errs []error
	for id, u := range i.tsdbs {
		if err := u.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing TSDB of tenant %q: %w", id, err))
		}
		i.forget(id, u)
		delete(i.tsdbs, id)
	}
	return errors.Join(errs...)
}

// forget removes a tenant's contribution to the process-wide metrics.
func (i *Ingester) forget(id string, u *userTSDB) {
	i.tsdbMetrics.remove(id)
	i.metrics.memUsers.Dec()
	u.seriesMu.Lock()
	n := 0
	for _, c := range u.seriesInMetric {
		n += c
	}
	u.seriesMu.Unlock()
	i.metrics.memSeries.Sub(float64(n))
	i.metrics.seriesCreated.DeleteLabelValues(id)
	i.metrics.seriesRemoved.DeleteLabelValues(id)
	u.metadata.clear()
}

// openExistingTSDBs opens the TSDB of every tenant directory under the data
// directory, replaying its WAL. Only directories named as a valid tenant
// and holding a WAL are touched; anything else is left alone.
func (i *Ingester) openExistingTSDBs(ctx context.Context) error {
	entries, err := os.ReadDir(i.cfg.TSDB.Dir)
	if err != nil {
		return fmt.Errorf("reading -blocks-storage.tsdb.dir %q: %w", i.cfg.TSDB.Dir, err)
	}
	var ids []string
	for _, e := range entries {
		if !e.IsDir() || dskittenant.ValidTenantID(e.Name()) != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(i.cfg.TSDB.Dir, e.Name(), "wal")); err != nil || !fi.IsDir() {
			i.logger.Debug("skipping directory without a TSDB write-ahead log", "dir", filepath.Join(i.cfg.TSDB.Dir, e.Name()))
			continue
		}
		ids = append(ids, e.Name())
	}
	if len(ids) == 0 {
		return nil
	}
	start := time.Now()
	err = concurrency.ForEachUser(ctx, ids, i.cfg.TSDB.MaxTSDBOpeningConcurrencyOnStartup, func(_ context.Context, id string) error {
		u, err := i.openTSDB(id)
		if err != nil {
			return err
		}
		i.mu.Lock()
		i.tsdbs[id] = u
		i.mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	i.logger.Info("opened existing TSDBs", "tenants", len(ids), "duration", time.Since(start))
	return nil
}

// openTSDB opens (creating if needed) a tenant's TSDB and replays its WAL.
func (i *Ingester) openTSDB(id string) (*userTSDB, error) {
	// The tenant ID becomes a path component: the ID's validation (no
	// slash, not "." or "..") is what keeps it inside the data directory.
	if err := dskittenant.ValidTenantID(id); err != nil {
		return nil, fmt.Errorf("tenant %q: %w", id, err)
	}
	dir := filepath.Join(i.cfg.TSDB.Dir, id)
	l := i.limits.For(id)
	u := newUserTSDB(id, func() *validation.Limits { return i.limits.For(id) }, i.metrics, i.cfg.RateUpdatePeriod)

	ranges := i.cfg.TSDB.BlockRanges.toMilliseconds()
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = i.cfg.TSDB.Retention.Milliseconds()
	opts.MinBlockDuration = ranges[0]
	opts.MaxBlockDuration = ranges[len(ranges)-1]
	opts.WALSegmentSize = i.cfg.TSDB.WALSegmentSizeBytes
	if i.cfg.TSDB.WALCompressionEnabled {
		opts.WALCompression = compression.Snappy
	}
	opts.StripeSize = i.cfg.TSDB.StripeSize
	opts.OutOfOrderTimeWindow = l.OutOfOrderWindow().Milliseconds()
	opts.OutOfOrderCapMax = i.cfg.TSDB.OutOfOrderCapMax
	// Exemplar storage is always on so a runtime change of
	// -ingester.max-exemplars can resize it (0 stores none). A new tenant's
	// buffer starts small and grows as exemplars arrive; a tenant with a
	// write-ahead log replays into a full-size buffer, sized down after.
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = min(int64(l.MaxExemplars), initialExemplarBuffer)
	if _, err := os.Stat(filepath.Join(dir, "wal")); err == nil {
		opts.MaxExemplars = int64(l.MaxExemplars)
	}
	opts.EnableMemorySnapshotOnShutdown = i.cfg.TSDB.MemorySnapshotOnShutdown
	opts.SeriesLifecycleCallback = u

	reg := prometheus.NewRegistry()
	start := time.Now()
	db, err := tsdb.Open(dir, i.logger.With("user", id), reg, opts, nil)
	if err != nil {
		// Undo what the replay counted before failing.
		u.seriesMu.Lock()
		n := 0
		for _, c := range u.seriesInMetric {
			n += c
		}
		u.seriesMu.Unlock()
		i.metrics.memSeries.Sub(float64(n))
		return nil, fmt.Errorf("opening the TSDB of tenant %q in %s: %w", id, dir, err)
	}
	// Head compaction runs on -blocks-storage.tsdb.head-compaction-interval,
	// bounded across tenants by -blocks-storage.tsdb.head-compaction-concurrency.
	db.DisableCompactions()
	u.db = db
	u.tsdb = tsdbLimits{oooWindow: opts.OutOfOrderTimeWindow, maxExemplars: int64(l.MaxExemplars), exemplarBuffer: opts.MaxExemplars, exemplarsSeen: exemplarsInStorage(reg)}
	u.oooWindow.Store(opts.OutOfOrderTimeWindow)
	if _, err := u.applyTSDBLimits(opts.OutOfOrderTimeWindow, int64(l.MaxExemplars)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sizing the exemplar buffer of tenant %q: %w", id, err)
	}
	u.limitsActive.Store(true)
	i.tsdbMetrics.add(id, reg)
	i.metrics.memUsers.Inc()
	i.logger.Debug("opened TSDB", "user", id, "dir", dir, "series", db.Head().NumSeries(), "duration", time.Since(start))
	return u, nil
}

func (i *Ingester) getTSDB(id string) *userTSDB {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.tsdbs[id]
}

func (i *Ingester) getOrCreateTSDB(id string) (*userTSDB, error) {
	if u := i.getTSDB(id); u != nil {
		return u, nil
	}
	i.createMu.Lock()
	defer i.createMu.Unlock()
	if u := i.getTSDB(id); u != nil {
		return u, nil
	}
	u, err := i.openTSDB(id)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	i.tsdbs[id] = u
	i.mu.Unlock()
	return u, nil
}

func (i *Ingester) allTSDBs() []*userTSDB {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]*userTSDB, 0, len(i.tsdbs))
	for _, u := range i.tsdbs {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *userTSDB) int { return strings.Compare(a.id, b.id) })
	return out
}

// compactHeads cuts blocks out of every head that spans enough time, and
// compacts whole heads idle for -blocks-storage.tsdb.head-compaction-idle-timeout
// so an idle tenant's series leave memory. Retention is applied by the
// TSDB when blocks are reloaded.
func (i *Ingester) compactHeads(ctx context.Context) {
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

// compactIdleHead writes the whole head into blocks aligned on the first
// block range, as Cortex does. Pushes to the tenant wait meanwhile: a
// sample appended inside the range being written could otherwise be lost
// when the head is truncated.
func (i *Ingester) compactIdleHead(u *userTSDB) error {
	u.appendMu.Lock()
	defer u.appendMu.Unlock()
	if !i.isIdle(u) {
		return nil
	}
	blockRange := i.cfg.TSDB.BlockRanges[0].Milliseconds()
	h := u.db.Head()
	minT, maxT := h.MinTime(), h.MaxTime()
	if minT == math.MaxInt64 {
		return nil
	}
	i.logger.Info("compacting idle TSDB head", "user", u.id)
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

// applyTSDBConfigs applies runtime changes of the per-tenant limits that
// live inside the TSDB: the out-of-order window and the exemplar buffer.
func (i *Ingester) applyTSDBConfigs() {
	for _, u := range i.allTSDBs() {
		l := i.limits.For(u.id)
		ooo, maxEx := l.OutOfOrderWindow().Milliseconds(), int64(l.MaxExemplars)
		changed, err := u.applyTSDBLimits(ooo, maxEx)
		if err != nil {
			i.logger.Error("applying new limits to TSDB", "user", u.id, "err", err)
			continue
		}
		if changed {
			i.logger.Info("applied new limits to TSDB", "user", u.id, "out_of_order_time_window", time.Duration(ooo)*time.Millisecond, "max_exemplars", maxEx)
		}
	}
}

// Ingester implements the gRPC API.
var _ client.IngesterServer = (*Ingester)(nil)

// forRead returns the caller's TSDB (nil when the tenant has none here)
// and a release func to call when the TSDB is no longer used.
func (i *Ingester) forRead(ctx context.Context) (*userTSDB, func(), error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, nil, tenant.GRPCError(err)
	}
	// Reads are served while stopping, until the TSDBs close.
	if s := i.State(); s != services.Running && s != services.Stopping {
		return nil, nil, notRunning(s)
	}
	i.closeMu.RLock()
	if i.closed {
		i.closeMu.RUnlock()
		return nil, nil, notRunning(services.Terminated)
	}
	return i.getTSDB(id), i.closeMu.RUnlock, nil
}

func notRunning(s services.State) error {
	return status.Errorf(codes.Unavailable, "ingester is %s", strings.ToLower(s.String()))
}
