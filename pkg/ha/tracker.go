package ha

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Config is Cortex's ha_tracker block of the distributor.
type Config struct {
	EnableHATracker        bool          `yaml:"enable_ha_tracker"`
	UpdateTimeout          time.Duration `yaml:"ha_tracker_update_timeout"`
	UpdateTimeoutJitterMax time.Duration `yaml:"ha_tracker_update_timeout_jitter_max"`
	FailoverTimeout        time.Duration `yaml:"ha_tracker_failover_timeout"`
	// EnableStartupSync reads every election from the store at startup;
	// otherwise an election is read the first time its cluster sends.
	EnableStartupSync bool `yaml:"enable_startup_sync"`
	// KVStore holds the elected replicas: memberlist, consul or etcd.
	KVStore kv.Config `yaml:"kvstore"`
}

// RegisterFlags registers the -distributor.ha-tracker.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.EnableHATracker, "distributor.ha-tracker.enable", false, "Track the elected replica of each tenant's HA Prometheus clusters, so that the tenants with accept_ha_samples keep one replica's samples.")
	f.DurationVar(&c.UpdateTimeout, "distributor.ha-tracker.update-timeout", 15*time.Second, "How often the elected replica's last sample time is written to the KV store.")
	f.DurationVar(&c.UpdateTimeoutJitterMax, "distributor.ha-tracker.update-timeout-jitter-max", 5*time.Second, "Largest random time added to -distributor.ha-tracker.update-timeout, so that distributors do not all write at once.")
	f.BoolVar(&c.EnableStartupSync, "distributor.ha-tracker.enable-startup-sync", false, "[Experimental] If enabled, fetches all tracked keys on startup to populate the local cache. This prevents duplicate GET calls for the same key while the cache is cold (and lets -distributor.ha-tracker.max-clusters count every stored cluster from the start), but could cause a spike in GET requests during initialization if the number of tracked keys is large.")
	f.DurationVar(&c.FailoverTimeout, "distributor.ha-tracker.failover-timeout", 30*time.Second, "How long the elected replica may send nothing before another replica's samples elect it. Must exceed -distributor.ha-tracker.update-timeout plus -distributor.ha-tracker.update-timeout-jitter-max by at least a second.")
	c.KVStore.Store = "consul"
	c.KVStore.RegisterFlagsWithPrefix("distributor.ha-tracker.", "ha-tracker/", f)
}

// Validate checks the timeouts, as Cortex does.
func (c *Config) Validate() error {
	if !c.EnableHATracker {
		return nil
	}
	if c.UpdateTimeoutJitterMax < 0 {
		return fmt.Errorf("-distributor.ha-tracker.update-timeout-jitter-max must not be negative, got %s", c.UpdateTimeoutJitterMax)
	}
	if c.UpdateTimeout <= 0 {
		return fmt.Errorf("-distributor.ha-tracker.update-timeout must be positive, got %s", c.UpdateTimeout)
	}
	if min := c.UpdateTimeout + c.UpdateTimeoutJitterMax + time.Second; c.FailoverTimeout < min {
		return fmt.Errorf("-distributor.ha-tracker.failover-timeout (%s) must be at least -distributor.ha-tracker.update-timeout plus -distributor.ha-tracker.update-timeout-jitter-max plus 1s (%s)", c.FailoverTimeout, min)
	}
	return nil
}

// ReplicasNotMatchError is a sample from a replica that is not elected:
// the distributor drops it and answers 202.
type ReplicasNotMatchError struct {
	Replica, Elected string
}

func (e ReplicasNotMatchError) Error() string {
	return fmt.Sprintf("replicas did not match, rejecting sample: replica=%s, elected=%s", e.Replica, e.Elected)
}

// TooManyClustersError is a new cluster over the tenant's
// -distributor.ha-tracker.max-clusters.
type TooManyClustersError struct{ Limit int }

func (e TooManyClustersError) Error() string {
	return fmt.Sprintf("too many HA clusters (limit: %d, set by -distributor.ha-tracker.max-clusters or ha_max_clusters)", e.Limit)
}

// Limits are the per-tenant settings the tracker reads.
type Limits interface {
	MaxHAClusters(userID string) int
}

// cleanupAge is how old an election must be to be marked deleted, and a
// mark to have its key deleted, as in Cortex.
const (
	cleanupAge    = 30 * time.Minute
	cleanupPeriod = 30 * time.Minute
)

// Tracker is the HA tracker: the elections seen in the KV store, cached,
// and the writes that keep them current.
type Tracker struct {
	services.Service

	cfg    Config
	client kv.Client
	limits Limits
	logger *slog.Logger
	now    func() time.Time
	jitter time.Duration

	mu sync.Mutex
	// elected is tenant -> cluster -> election, as last seen in the store.
	elected map[string]map[string]ReplicaDesc

	electedChanges   *prometheus.CounterVec
	electedTimestamp *prometheus.GaugeVec
	casCalls         *prometheus.CounterVec
	userClusters     *prometheus.GaugeVec
	cleanupStarted   prometheus.Counter
	cleanupMarked    prometheus.Counter
	cleanupDeleted   prometheus.Counter
	cleanupFailed    prometheus.Counter
}

// New returns a tracker of the elections in client (built with Codec).
func New(cfg Config, client kv.Client, limits Limits, logger *slog.Logger, reg prometheus.Registerer) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{
		cfg:     cfg,
		client:  client,
		limits:  limits,
		logger:  logger,
		now:     time.Now,
		elected: map[string]map[string]ReplicaDesc{},
	}
	if cfg.UpdateTimeoutJitterMax > 0 {
		t.jitter = time.Duration(rand.Int64N(int64(cfg.UpdateTimeoutJitterMax)))
	}
	f := promauto.With(reg)
	t.electedChanges = f.NewCounterVec(prometheus.CounterOpts{Name: "cortex_ha_tracker_elected_replica_changes_total", Help: "The total number of times the elected replica has changed for a user ID/cluster."}, []string{"user", "cluster"})
	t.electedTimestamp = f.NewGaugeVec(prometheus.GaugeOpts{Name: "cortex_ha_tracker_elected_replica_timestamp_seconds", Help: "The timestamp stored for the currently elected replica, from the KVStore."}, []string{"user", "cluster"})
	t.casCalls = f.NewCounterVec(prometheus.CounterOpts{Name: "cortex_ha_tracker_kv_store_cas_total", Help: "The total number of CAS calls to the KV store for a user ID/cluster."}, []string{"user", "cluster"})
	t.userClusters = f.NewGaugeVec(prometheus.GaugeOpts{Name: "cortex_ha_tracker_user_clusters", Help: "Number of HA clusters tracked for each user."}, []string{"user"})
	t.cleanupStarted = f.NewCounter(prometheus.CounterOpts{Name: "cortex_ha_tracker_replicas_cleanup_started_total", Help: "Number of elected replicas cleanup loops started."})
	t.cleanupMarked = f.NewCounter(prometheus.CounterOpts{Name: "cortex_ha_tracker_replicas_cleanup_marked_for_deletion_total", Help: "Number of elected replicas marked for deletion."})
	t.cleanupDeleted = f.NewCounter(prometheus.CounterOpts{Name: "cortex_ha_tracker_replicas_cleanup_deleted_total", Help: "Number of elected replicas deleted from KV store."})
	t.cleanupFailed = f.NewCounter(prometheus.CounterOpts{Name: "cortex_ha_tracker_replicas_cleanup_delete_failed_total", Help: "Number of elected replicas that failed to be marked for deletion, or deleted."})
	t.Service = services.NewBasicService(t.starting, t.running, nil)
	return t, nil
}

func key(userID, cluster string) string { return userID + "/" + cluster }

func (t *Tracker) starting(ctx context.Context) error {
	if !t.cfg.EnableStartupSync {
		// Each election is read (by a CAS) when its cluster first sends.
		return nil
	}
	// Load the current elections before the distributor takes traffic.
	keys, err := t.client.List(ctx, "")
	if err != nil {
		return fmt.Errorf("listing HA elections in -distributor.ha-tracker.store: %w", err)
	}
	for _, k := range keys {
		v, err := t.client.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("reading HA election %q: %w", k, err)
		}
		t.observe(k, v)
	}
	return nil
}

func (t *Tracker) running(ctx context.Context) error {
	go t.client.WatchPrefix(ctx, "", func(k string, v any) bool {
		t.observe(k, v)
		return true
	})
	tick := time.NewTicker(cleanupPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			t.cleanup(ctx)
		}
	}
}

// observe caches the election of key k as the store holds it; v nil is a
// deleted key.
func (t *Tracker) observe(k string, v any) {
	userID, cluster, ok := strings.Cut(k, "/")
	if !ok {
		return
	}
	desc, _ := v.(*ReplicaDesc)
	t.mu.Lock()
	defer t.mu.Unlock()
	clusters := t.elected[userID]
	if desc == nil || desc.DeletedAt != 0 {
		if _, ok := clusters[cluster]; ok {
			delete(clusters, cluster)
			t.electedTimestamp.DeleteLabelValues(userID, cluster)
			if len(clusters) == 0 {
				delete(t.elected, userID)
				t.userClusters.DeleteLabelValues(userID)
			} else {
				t.userClusters.WithLabelValues(userID).Set(float64(len(clusters)))
			}
		}
		return
	}
	if clusters == nil {
		clusters = map[string]ReplicaDesc{}
		t.elected[userID] = clusters
	}
	prev, ok := clusters[cluster]
	if ok && desc.ReceivedAt < prev.ReceivedAt {
		// A watch event older than what this distributor already holds
		// (its own write, observed at once, overtakes the store's events
		// of the writes before it): the store has moved on.
		return
	}
	if ok && prev.Replica != desc.Replica {
		t.electedChanges.WithLabelValues(userID, cluster).Inc()
	}
	clusters[cluster] = *desc
	t.electedTimestamp.WithLabelValues(userID, cluster).Set(float64(desc.ReceivedAt) / 1000)
	t.userClusters.WithLabelValues(userID).Set(float64(len(clusters)))
}

// CheckReplica tells whether a sample of the tenant's cluster from replica
// is kept: nil for the elected replica (which a cluster without one, or
// whose elected replica was silent for the failover timeout, elects),
// ReplicasNotMatchError for another replica, TooManyClustersError for a
// new cluster over the tenant's limit.
func (t *Tracker) CheckReplica(ctx context.Context, userID, cluster, replica string) error {
	now := t.now()
	t.mu.Lock()
	entry, known := t.elected[userID][cluster]
	nClusters := len(t.elected[userID])
	t.mu.Unlock()
	if known {
		age := now.Sub(time.UnixMilli(entry.ReceivedAt))
		if entry.Replica == replica && age < t.cfg.UpdateTimeout+t.jitter {
			return nil
		}
		if entry.Replica != replica && age < t.cfg.FailoverTimeout {
			return ReplicasNotMatchError{Replica: replica, Elected: entry.Replica}
		}
	} else if limit := t.limits.MaxHAClusters(userID); limit > 0 && nClusters >= limit {
		return TooManyClustersError{Limit: limit}
	}
	return t.update(ctx, userID, cluster, replica, now)
}

// update writes replica's sample time into the store, electing it if the
// stored election is another replica's that has been silent for the
// failover timeout.
func (t *Tracker) update(ctx context.Context, userID, cluster, replica string, now time.Time) error {
	k := key(userID, cluster)
	var result *ReplicaDesc
	var refused error
	t.casCalls.WithLabelValues(userID, cluster).Inc()
	err := t.client.CAS(ctx, k, func(in any) (any, bool, error) {
		refused = nil
		if desc, ok := in.(*ReplicaDesc); ok && desc != nil && desc.DeletedAt == 0 {
			if desc.Replica != replica && now.Sub(time.UnixMilli(desc.ReceivedAt)) < t.cfg.FailoverTimeout {
				// Another distributor elected a replica meanwhile.
				result = desc
				refused = ReplicasNotMatchError{Replica: replica, Elected: desc.Replica}
				return nil, false, nil
			}
		}
		result = &ReplicaDesc{Replica: replica, ReceivedAt: now.UnixMilli()}
		return result, true, nil
	})
	if err != nil {
		return fmt.Errorf("HA tracker: writing the elected replica of tenant %q cluster %q to -distributor.ha-tracker.store: %w", userID, cluster, err)
	}
	if result != nil {
		t.observe(k, result)
	}
	return refused
}

// cleanup marks the elections no distributor renewed for cleanupAge, and
// deletes the keys marked that long ago.
func (t *Tracker) cleanup(ctx context.Context) {
	t.cleanupStarted.Inc()
	now := t.now()
	deadline := now.Add(-cleanupAge).UnixMilli()
	keys, err := t.client.List(ctx, "")
	if err != nil {
		t.logger.Warn("HA tracker cleanup: listing elections", "err", err)
		return
	}
	for _, k := range keys {
		v, err := t.client.Get(ctx, k)
		if err != nil {
			t.cleanupFailed.Inc()
			continue
		}
		desc, ok := v.(*ReplicaDesc)
		if !ok || desc == nil {
			continue
		}
		switch {
		case desc.DeletedAt != 0 && desc.DeletedAt < deadline:
			if err := t.client.Delete(ctx, k); err != nil {
				t.cleanupFailed.Inc()
				t.logger.Warn("HA tracker cleanup: deleting an election", "key", k, "err", err)
				continue
			}
			t.observe(k, nil)
			t.cleanupDeleted.Inc()
		case desc.DeletedAt == 0 && desc.ReceivedAt < deadline:
			err := t.client.CAS(ctx, k, func(in any) (any, bool, error) {
				d, ok := in.(*ReplicaDesc)
				if !ok || d == nil || d.DeletedAt != 0 || d.ReceivedAt >= deadline {
					return nil, false, nil // renewed meanwhile
				}
				d = d.Clone().(*ReplicaDesc)
				d.DeletedAt = now.UnixMilli()
				return d, true, nil
			})
			if err != nil {
				t.cleanupFailed.Inc()
				t.logger.Warn("HA tracker cleanup: marking an election deleted", "key", k, "err", err)
				continue
			}
			t.cleanupMarked.Inc()
		}
	}
}

// Election is one row of the /distributor/ha_tracker page.
type Election struct {
	UserID, Cluster, Replica string
	ReceivedAt               time.Time
}

// Elections returns every tenant's elected replicas, by tenant and cluster.
func (t *Tracker) Elections() []Election {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Election
	for u, clusters := range t.elected {
		for c, d := range clusters {
			out = append(out, Election{UserID: u, Cluster: c, Replica: d.Replica, ReceivedAt: time.UnixMilli(d.ReceivedAt)})
		}
	}
	sortElections(out)
	return out
}

// IsReplicasNotMatch reports whether err is a sample of a replica that is
// not elected.
func IsReplicasNotMatch(err error) bool {
	var e ReplicasNotMatchError
	return errors.As(err, &e)
}

// IsTooManyClusters reports whether err is a cluster over the tenant's
// limit.
func IsTooManyClusters(err error) bool {
	var e TooManyClustersError
	return errors.As(err, &e)
}
