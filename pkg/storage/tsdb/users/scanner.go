package users

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
)

// Scanner lists the tenants of the blocks bucket.
type Scanner interface {
	// ScanUsers returns the active tenants, those marked for deletion
	// whose folder is still there, and those deleted (only a global
	// marker folder left), each sorted.
	ScanUsers(ctx context.Context) (active, deleting, deleted []string, err error)
}

// NewScanner returns the scanner cfg configures over bkt; its metrics
// (Cortex's cortex_user_index_scan_* and cortex_cached_users_scanner_*)
// are registered on reg, nil for none.
func NewScanner(cfg Config, bkt objstore.BucketReader, logger *slog.Logger, reg prometheus.Registerer) (Scanner, error) {
	return NewScannerOver(cfg, NewListScanner(bkt), bkt, logger, reg)
}

// NewScannerOver returns the scanner cfg configures over base, another
// store's listing of its tenants (the ruler's and alertmanager's), with the
// user index kept at the top of indexBkt.
func NewScannerOver(cfg Config, base Scanner, indexBkt objstore.BucketReader, logger *slog.Logger, reg prometheus.Registerer) (Scanner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := base
	if cfg.Strategy == StrategyUserIndex {
		s = newIndexScanner(s, cfg.MaxStalePeriod, indexBkt, logger, reg)
	}
	if cfg.CacheTTL > 0 {
		s = newCachedScanner(s, cfg.CacheTTL, reg)
	}
	return s, nil
}

// ListFunc is a store's own listing of its tenants as a Scanner: every
// tenant it lists is active.
type ListFunc func(ctx context.Context) ([]string, error)

// ScanUsers lists the tenants, sorted.
func (f ListFunc) ScanUsers(ctx context.Context) (active, deleting, deleted []string, err error) {
	active, err = f(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	active = slices.Clone(active)
	slices.Sort(active)
	return active, nil, nil, nil
}

// validTenant rejects names that cannot be a tenant's folder.
func validTenant(name string) bool {
	return name != "" && name != "." && name != ".." && name != bucketindex.GlobalMarkersDir && !strings.ContainsAny(name, `/\`)
}

type listScanner struct {
	bkt objstore.BucketReader
}

// NewListScanner lists the tenants by listing the bucket: each top-level
// folder is a tenant, deleting when it has a deletion mark; each folder of
// the global markers folder without a tenant folder is a deleted tenant.
func NewListScanner(bkt objstore.BucketReader) Scanner { return &listScanner{bkt: bkt} }

func (s *listScanner) ScanUsers(ctx context.Context) (active, deleting, deleted []string, err error) {
	var folders []string
	err = s.bkt.Iter(ctx, "", func(name string) error {
		if t, ok := strings.CutSuffix(name, objstore.DirDelim); ok && validTenant(t) {
			folders = append(folders, t)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	for _, t := range folders {
		marked, err := bucketindex.TenantDeletionMarkExists(ctx, s.bkt, t)
		if err != nil {
			return nil, nil, nil, err
		}
		if marked {
			deleting = append(deleting, t)
		} else {
			active = append(active, t)
		}
	}
	err = s.bkt.Iter(ctx, bucketindex.GlobalMarkersDir, func(name string) error {
		t := strings.TrimSuffix(strings.TrimPrefix(name, bucketindex.GlobalMarkersDir+objstore.DirDelim), objstore.DirDelim)
		if validTenant(t) && !slices.Contains(folders, t) {
			deleted = append(deleted, t)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	slices.Sort(active)
	slices.Sort(deleting)
	slices.Sort(deleted)
	return active, deleting, deleted, nil
}

// indexScanner reads the user index, and lists the bucket instead when the
// index is missing, unreadable, or older than maxStale.
type indexScanner struct {
	base     Scanner
	bkt      objstore.BucketReader
	maxStale time.Duration
	logger   *slog.Logger

	fallbacks   *prometheus.CounterVec
	succeeded   prometheus.Counter
	updateDelay prometheus.Gauge
}

func newIndexScanner(base Scanner, maxStale time.Duration, bkt objstore.BucketReader, logger *slog.Logger, reg prometheus.Registerer) *indexScanner {
	return &indexScanner{
		base:     base,
		bkt:      bkt,
		maxStale: maxStale,
		logger:   logger,
		fallbacks: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_user_index_scan_fallbacks_total",
			Help: "Total number of fallbacks to base scanner",
		}, []string{"reason"}),
		succeeded: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "cortex_user_index_scan_succeeded_total",
			Help: "Total number of successful scans using user index",
		}),
		updateDelay: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "cortex_user_index_update_delay_seconds",
			Help: "Time offset in seconds between now and user index file updated time",
		}),
	}
}

func (s *indexScanner) ScanUsers(ctx context.Context) ([]string, []string, []string, error) {
	idx, err := ReadIndex(ctx, s.bkt)
	if err != nil {
		if errors.Is(err, ErrIndexNotFound) {
			s.logger.Info("user index not found, fallback to base scanner")
			s.fallbacks.WithLabelValues("not-found").Inc()
		} else {
			s.logger.Error("failed to read user index, fallback to base scanner", "err", err)
			s.fallbacks.WithLabelValues("corrupted").Inc()
		}
		return s.base.ScanUsers(ctx)
	}
	age := time.Since(idx.GetUpdatedAt())
	s.updateDelay.Set(age.Seconds())
	if age > s.maxStale {
		s.logger.Warn("user index is stale, fallback to base scanner", "updated_at", idx.GetUpdatedAt(), "max_stale_period", s.maxStale)
		s.fallbacks.WithLabelValues("too-old").Inc()
		return s.base.ScanUsers(ctx)
	}
	s.succeeded.Inc()
	return idx.Active, idx.Deleting, idx.Deleted, nil
}

// cachedScanner answers from its last scan for ttl.
type cachedScanner struct {
	scanner Scanner
	ttl     time.Duration

	mu                        sync.Mutex
	scannedAt                 time.Time
	active, deleting, deleted []string

	requests, hits prometheus.Counter
}

func newCachedScanner(s Scanner, ttl time.Duration, reg prometheus.Registerer) *cachedScanner {
	return &cachedScanner{
		scanner: s,
		ttl:     ttl,
		requests: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "cortex_cached_users_scanner_requests_total",
			Help: "Total number of scans made to the cache scanner",
		}),
		hits: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "cortex_cached_users_scanner_hits_total",
			Help: "Total number of hits of scanner cache",
		}),
	}
}

func (s *cachedScanner) ScanUsers(ctx context.Context) ([]string, []string, []string, error) {
	s.requests.Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.scannedAt.IsZero() && time.Since(s.scannedAt) < s.ttl {
		s.hits.Inc()
		return s.active, s.deleting, s.deleted, nil
	}
	active, deleting, deleted, err := s.scanner.ScanUsers(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	s.active, s.deleting, s.deleted, s.scannedAt = active, deleting, deleted, time.Now()
	return active, deleting, deleted, nil
}

// IndexUpdater writes the user index from a listing of the bucket: the
// compactor's job.
type IndexUpdater struct {
	bkt         objstore.Bucket
	lister      Scanner
	lastUpdated prometheus.Gauge
}

// NewIndexUpdater returns an updater of bkt's user index, with Cortex's
// cortex_user_index_last_successful_update_timestamp_seconds on reg.
func NewIndexUpdater(bkt objstore.Bucket, reg prometheus.Registerer) *IndexUpdater {
	return NewIndexUpdaterOver(bkt, NewListScanner(bkt), reg)
}

// NewIndexUpdaterOver returns an updater writing at the top of indexBkt
// the tenants lister lists.
func NewIndexUpdaterOver(indexBkt objstore.Bucket, lister Scanner, reg prometheus.Registerer) *IndexUpdater {
	return &IndexUpdater{
		bkt:    indexBkt,
		lister: lister,
		lastUpdated: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "cortex_user_index_last_successful_update_timestamp_seconds",
			Help: "Timestamp of the last successful update of user index.",
		}),
	}
}

// UpdateIndex lists the bucket's tenants and writes them as the user index.
func (u *IndexUpdater) UpdateIndex(ctx context.Context) error {
	active, deleting, deleted, err := u.lister.ScanUsers(ctx)
	if err != nil {
		return err
	}
	idx := &Index{Version: indexVersion, UpdatedAt: time.Now().Unix(), Active: active, Deleting: deleting, Deleted: deleted}
	if err := WriteIndex(ctx, u.bkt, idx); err != nil {
		return err
	}
	u.lastUpdated.SetToCurrentTime()
	return nil
}

// IndexService writes the user index of updater when started and every
// interval (0: only when started), when owns says this instance is the one
// to write it. updater is asked each time, and may be nil while the store
// it writes to does not exist yet. A failed update waits for the next
// interval, readers falling back to a listing meanwhile.
func IndexService(updater func() *IndexUpdater, interval time.Duration, owns func() bool, logger *slog.Logger) services.Service {
	update := func(ctx context.Context) error {
		u := updater()
		if u == nil || (owns != nil && !owns()) {
			return nil
		}
		if err := u.UpdateIndex(ctx); err != nil && ctx.Err() == nil {
			logger.Error("updating the user index", "err", err)
		}
		return nil
	}
	if interval <= 0 {
		return services.NewIdleService(update, nil)
	}
	return services.NewBasicService(update, func(ctx context.Context) error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				_ = update(ctx)
			}
		}
	}, nil)
}
