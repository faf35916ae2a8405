// Package ingester stores each tenant's series in its own Prometheus TSDB
// (write-ahead log on, so an acknowledged sample survives kill -9), takes
// part in the ingester hash ring through dskit's BasicLifecycler, and serves the
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
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/ingester/postingscache"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/matcherscache"
	"github.com/cortex-tls/cortex/pkg/util/queryprotection"
	"github.com/cortex-tls/cortex/pkg/util/resource"
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

	cfg     Config
	limits  *validation.Overrides
	logger  *slog.Logger
	metrics *metrics
	// regexLimits checks unoptimized regular expressions in queries; nil
	// unless -ingester.enable-regex-matcher-limits.
	regexLimits *regexLimits
	tsdbMetrics *tsdbMetrics
	lifecycler  *ringMember
	limiter     *limiter
	watcher     *services.FailureWatcher

	// closeMu is held for reading by every call that uses a TSDB and for
	// writing by stopping, which closes them: no call sees a closed TSDB.
	closeMu sync.RWMutex
	closed  bool

	// shutdownFlush forces flushing on shutdown (POST /ingester/shutdown);
	// flushErr is what that flush failed with.
	shutdownFlush atomic.Bool
	flushErrMu    sync.Mutex
	flushErr      error

	mu    sync.RWMutex
	tsdbs map[string]*userTSDB

	// createMu serialises opening tenants' TSDBs, so a tenant's first
	// concurrent pushes open it once; pushes to open TSDBs do not wait.
	createMu sync.Mutex

	// bucket is the long-term storage blocks are shipped to; nil keeps
	// blocks on local disk only.
	bucket objstore.Bucket

	// heapGuard refuses queries while the heap is nearly full; nil admits
	// every query.
	heapGuard *queryprotection.Guard
	// matchers is -ingester.matchers-cache-max-items' cache; nil: none.
	matchers *matcherscache.Cache
	// resourceMonitor measures the CPU for the guard's
	// -ingester.query-protection.rejection.threshold.cpu-utilization.
	resourceMonitor *resource.Monitor

	// instance enforces -ingester.instance-limits.*, or the runtime
	// configuration's ingester_limits from instanceLimitsFn.
	instance         *instanceLimiter
	instanceLimitsFn func() *InstanceLimits

	// queried estimates the series queries return; nil unless
	// -ingester.active-queried-series-metrics-enabled.
	queried *queriedSeriesTracking
	// postingsCache makes each tenant's expanded postings cache; nil with
	// -blocks-storage.expanded_postings_cache.*.enabled off.
	postingsCache *postingscache.Factory
}

// Option configures an Ingester beyond its Config.
type Option func(*Ingester)

// WithBucket makes the ingester ship each tenant's blocks to
// <tenant>/<block ULID>/ in bkt every -blocks-storage.tsdb.ship-interval,
// and delete local blocks only once shipped. A nil bkt is no long-term
// storage, as without the option.
func WithBucket(bkt objstore.Bucket) Option {
	return func(i *Ingester) { i.bucket = bkt }
}

// New returns an ingester whose ring entry lives in ringStore. It binds no
// port and touches no file: the TSDBs are opened when the service starts.
func New(cfg Config, ringStore kv.Client, limits *validation.Overrides, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Ingester, error) {
	i, err := newIngester(cfg, limits, logger, reg, opts...)
	if err != nil {
		return nil, err
	}
	// No transfer on shutdown: the WAL and blocks stay on local disk and
	// are replayed on the next start (after being compacted and shipped
	// with -blocks-storage.tsdb.flush-blocks-on-shutdown).
	i.lifecycler, err = newRingMember(cfg.LifecyclerConfig, ringStore, i.logger, prometheus.WrapRegistererWithPrefix("cortex_", reg))
	if err != nil {
		return nil, fmt.Errorf("ingester ring lifecycler: %w", err)
	}
	rc := cfg.LifecyclerConfig.RingConfig
	i.limiter = newLimiter(cfg.Limiter, i.lifecycler.counts, rc.ReplicationFactor, rc.ZoneAwarenessEnabled)
	i.Service = services.NewBasicService(i.starting, i.running, i.stopping).WithName("ingester")
	return i, nil
}

// newIngester builds what every ingester has, without a ring entry or a
// service: New and NewForFlusher add theirs.
func newIngester(cfg Config, limits *validation.Overrides, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Ingester, error) {
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
	for _, o := range opts {
		o(i)
	}
	if cfg.EnableRegexMatcherLimits {
		i.regexLimits = newRegexLimits(reg)
	}
	if i.instance, err = newInstanceLimiter(cfg.InstanceLimits, i.instanceLimitsFn, reg); err != nil {
		return nil, fmt.Errorf("ingester metrics: %w", err)
	}
	if i.queried, err = newQueriedSeriesTracking(cfg, reg); err != nil {
		return nil, fmt.Errorf("ingester metrics: %w", err)
	}
	if i.matchers, err = matcherscache.New(cfg.MatchersCacheMaxItems, "cortex_ingester", reg); err != nil {
		return nil, fmt.Errorf("ingester matchers cache: %w", err)
	}
	if i.postingsCache, err = postingscache.NewFactory(cfg.TSDB.PostingsCache, reg); err != nil {
		return nil, fmt.Errorf("ingester expanded postings cache: %w", err)
	}
	if i.heapGuard, err = queryprotection.NewGuardWithMonitor(cfg.QueryProtection, "ingester.", "ingester", i.resourceMonitor, reg); err != nil {
		return nil, err
	}
	return i, nil
}

// CheckReady reports whether the ingester can take traffic: its TSDBs are
// open and it is ACTIVE in the ring (with -ingester.min-ready-duration and
// the ring health check).
func (i *Ingester) CheckReady(ctx context.Context) error {
	if s := i.State(); s != services.Running {
		return fmt.Errorf("ingester is %s", strings.ToLower(s.String()))
	}
	return i.lifecycler.checkReady(ctx)
}

// RingHandler serves the ring status page (HTML and JSON, with "forget")
// from the ingester's KV store client, for processes that run the
// ingester without a ring client of their own.
func (i *Ingester) RingHandler() http.Handler { return i.lifecycler }

func (i *Ingester) starting(ctx context.Context) (err error) {
	defer func() {
		if err == nil {
			return
		}
		// err is what the caller needs; a TSDB that also fails to close
		// is logged beside it.
		if closeErr := i.closeAll(); closeErr != nil {
			i.logger.Error("closing TSDBs after a failed start", "err", closeErr)
		}
	}()
	if err := os.MkdirAll(i.cfg.TSDB.Dir, 0o750); err != nil {
		return fmt.Errorf("creating -blocks-storage.tsdb.dir %q: %w", i.cfg.TSDB.Dir, err)
	}
	if err := i.openExistingTSDBs(ctx); err != nil {
		return err
	}
	// Register in the ring only once every acknowledged sample is back in
	// memory; running() then turns the instance ACTIVE.
	i.watcher.WatchService(i.lifecycler)
	if err := services.StartAndAwaitRunning(ctx, i.lifecycler); err != nil {
		return fmt.Errorf("registering in the ingester ring: %w", err)
	}
	if err := i.lifecycler.restoreReadOnly(ctx); err != nil {
		return errors.Join(err, services.StopAndAwaitTerminated(context.Background(), i.lifecycler))
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
	instanceRateTicker := time.NewTicker(instanceIngestionPeriod)
	var activeSeriesTicks <-chan time.Time
	if i.cfg.ActiveSeriesMetricsEnabled {
		t := time.NewTicker(i.cfg.ActiveSeriesMetricsUpdatePeriod)
		defer t.Stop()
		activeSeriesTicks = t.C
	}
	defer instanceRateTicker.Stop()
	var queriedSeriesTicks <-chan time.Time
	if i.queried != nil {
		t := time.NewTicker(i.cfg.ActiveQueriedSeriesMetricsUpdatePeriod)
		defer t.Stop()
		queriedSeriesTicks = t.C
	}
	var postingsPurgeTicks <-chan time.Time
	if i.postingsCache != nil {
		t := time.NewTicker(postingscache.PurgeInterval)
		defer t.Stop()
		postingsPurgeTicks = t.C
	}
	joined := make(chan error, 1)
	go func() { joined <- i.lifecycler.join(ctx) }()
	if i.shipping() {
		// Uploads run beside the loop below: a slow or unreachable
		// bucket must not hold up head compaction or the rate updates.
		shipCtx, cancel := context.WithCancel(ctx)
		shipDone := make(chan struct{})
		go func() {
			defer close(shipDone)
			i.shipLoop(shipCtx)
		}()
		defer func() {
			cancel()
			<-shipDone
		}()
	}

	for {
		select {
		case err := <-joined:
			if err != nil {
				return err
			}
			joined = nil
		case <-rateTicker.C:
			for _, u := range i.allTSDBs() {
				u.rate.tick()
			}
		case <-instanceRateTicker.C:
			i.instance.tick()
		case <-activeSeriesTicks:
			i.updateActiveSeries(time.Now())
		case <-queriedSeriesTicks:
			if err := i.queried.update(i.allTSDBs()); err != nil {
				i.logger.Error("updating the active queried series metrics", "err", err)
			}
		case <-postingsPurgeTicks:
			for _, u := range i.allTSDBs() {
				if u.postings != nil {
					u.postings.PurgeExpired()
				}
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
// -ingester.unregister-on-shutdown is true), compacts and ships every head
// with -blocks-storage.tsdb.flush-blocks-on-shutdown, and closes every
// TSDB, which flushes and fsyncs the WAL.
func (i *Ingester) stopping(_ error) error {
	var errs []error
	if err := services.StopAndAwaitTerminated(context.Background(), i.lifecycler); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, fmt.Errorf("leaving the ingester ring: %w", err))
	}
	if i.cfg.TSDB.FlushBlocksOnShutdown || i.shutdownFlush.Load() {
		// Pushes are refused from here on. What fails to compact or ship
		// stays in the WAL or in local blocks, and the next start ships
		// it: logged, as in Cortex, rather than failing the shutdown.
		if err := i.flush(context.Background(), nil); err != nil {
			i.logger.Error("flushing on shutdown failed; the data stays on local disk for the next start", "err", err)
			i.flushErrMu.Lock()
			i.flushErr = fmt.Errorf("flushing failed; the data stays on local disk for the next start: %w", err)
			i.flushErrMu.Unlock()
		}
	}
	// A lifecycler that failed while running() was already returning is
	// still reporting its failure on the watcher's unbuffered channel:
	// drain it, or Close waits forever.
	go func() {
		for range i.watcher.Chan() {
		}
	}()
	i.watcher.Close()
	if d := i.cfg.LifecyclerConfig.FinalSleep; d > 0 {
		// -ingester.final-sleep: left the ring, still serving /metrics.
		time.Sleep(d)
	}
	errs = append(errs, i.closeAll())
	return errors.Join(errs...)
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

// admitQuery refuses a query while the heap's utilization is over
// -ingester.query-protection.rejection.threshold.heap-utilization, or
// with -ingester.instance-limits.max-inflight-query-requests queries in
// flight; the caller calls done when the query is over. The status is
// Unavailable: the querier asks another replica, or answers 503.
func (i *Ingester) admitQuery() (done func(), err error) {
	if done, err = i.instance.admitQuery(); err != nil {
		return nil, err
	}
	if err := i.heapGuard.Admit(); err != nil {
		done()
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return done, nil
}

func notRunning(s services.State) error {
	return status.Errorf(codes.Unavailable, "ingester is %s", strings.ToLower(s.String()))
}

// WithResourceMonitor gives the ingester the process's resource monitor,
// which -ingester.query-protection.rejection.threshold.cpu-utilization
// needs.
func WithResourceMonitor(m *resource.Monitor) Option {
	return func(i *Ingester) { i.resourceMonitor = m }
}
