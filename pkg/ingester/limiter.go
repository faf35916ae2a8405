package ingester

import (
	"flag"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/ring"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// LimiterConfig is how the ingester applies the tenants' series and
// metadata limits: -ingester.* flags of Cortex, and what the distributors'
// configuration says of the placement of series.
type LimiterConfig struct {
	IgnoreSeriesLimitForMetricNames string `yaml:"ignore_series_limit_for_metric_names"`
	SkipMetadataLimits              bool   `yaml:"skip_metadata_limits"`
	AdminLimitMessage               string `yaml:"admin_limit_message"`

	// The distributors' -distributor.sharding-strategy and
	// -distributor.shard-by-all-labels, set by the process: a global limit
	// is shared over the ingesters that hold a tenant's series.
	ShuffleSharding  bool `yaml:"-"`
	ShardByAllLabels bool `yaml:"-"`
}

// RegisterFlags registers the limiter's flags.
func (c *LimiterConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.IgnoreSeriesLimitForMetricNames, "ingester.ignore-series-limit-for-metric-names", "", "Comma-separated list of metric names for which -ingester.max-series-per-metric and -ingester.max-global-series-per-metric are not applied. The per-tenant series limits still count their series.")
	f.BoolVar(&c.SkipMetadataLimits, "ingester.skip-metadata-limits", true, "Answer the metadata API's requests (limit, limit_per_metric) with every metadata the ingester holds, leaving the limits to the querier, which applies them to the merged answer. False applies them in each ingester too, which sends less to the querier.")
	f.StringVar(&c.AdminLimitMessage, "ingester.admin-limit-message", "please contact administrator to raise it", "Text added to the errors of the per-tenant series and metadata limits, telling the tenant whom to ask.")
}

// ignoredMetricNames is -ingester.ignore-series-limit-for-metric-names as a set.
func (c *LimiterConfig) ignoredMetricNames() map[string]struct{} {
	if c.IgnoreSeriesLimitForMetricNames == "" {
		return nil
	}
	m := map[string]struct{}{}
	for _, name := range strings.Split(c.IgnoreSeriesLimitForMetricNames, ",") {
		if name = strings.TrimSpace(name); name != "" {
			m[name] = struct{}{}
		}
	}
	return m
}

// ringCounts are the ingester ring's healthy instances and zones, as this
// ingester saw them at its last heartbeat: the divisor of the global
// limits, as Cortex's lifecycler counts them.
type ringCounts struct {
	timeout time.Duration

	mu      sync.Mutex
	healthy int
	zones   int
}

func (c *ringCounts) update(desc *ring.Desc) {
	if desc == nil {
		return
	}
	now := time.Now()
	healthy := 0
	zones := map[string]struct{}{}
	for _, inst := range desc.Ingesters {
		zones[inst.Zone] = struct{}{}
		if inst.IsHealthy(ring.Write, c.timeout, now) {
			healthy++
		}
	}
	c.mu.Lock()
	c.healthy, c.zones = healthy, len(zones)
	c.mu.Unlock()
}

func (c *ringCounts) get() (healthy, zones int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthy, c.zones
}

// limiter turns a tenant's local (per ingester) and global (per cluster)
// limits into the limit this ingester applies, as Cortex's Limiter does:
// the smaller of the local limit and the global one divided by the
// healthy ingesters (or the tenant's shard size with shuffle sharding)
// times the replication factor.
type limiter struct {
	cfg               LimiterConfig
	ring              *ringCounts
	replicationFactor int
	zoneAwareness     bool
	ignoredNames      map[string]struct{}
}

func newLimiter(cfg LimiterConfig, counts *ringCounts, replicationFactor int, zoneAwareness bool) *limiter {
	return &limiter{cfg: cfg, ring: counts, replicationFactor: replicationFactor, zoneAwareness: zoneAwareness, ignoredNames: cfg.ignoredMetricNames()}
}

// ignoresMetric tells the metrics -ingester.ignore-series-limit-for-metric-names
// exempts from the per-metric series limits.
func (l *limiter) ignoresMetric(name string) bool {
	_, ok := l.ignoredNames[name]
	return ok
}

// localLimit is the limit this ingester applies for a local and a global
// limit (0 each: unlimited); 0 means unlimited. perMetric limits are divided
// only when series are sharded by all their labels: otherwise all the
// series of a metric are on the same ingesters.
func (l *limiter) localLimit(lim *validation.Limits, local, global int, perMetric bool) int {
	if global <= 0 {
		return local
	}
	if perMetric && !l.cfg.ShardByAllLabels {
		return minNonZero(local, global)
	}
	if !perMetric && !l.cfg.ShardByAllLabels {
		// Cortex applies a per-tenant global limit only when series are
		// spread over the ring by all their labels.
		return local
	}
	return minNonZero(local, l.globalToLocal(lim, global))
}

// globalToLocal is this ingester's share of a global limit: 0 (no limit)
// while the ring's healthy ingesters are not known yet.
func (l *limiter) globalToLocal(lim *validation.Limits, global int) int {
	healthy, zones := l.ring.get()
	if healthy == 0 {
		return 0
	}
	n := healthy
	if size := lim.IngestionTenantShardSize; l.cfg.ShuffleSharding && size > 0 {
		if !l.zoneAwareness || zones < 1 {
			zones = 1
		}
		// The shard takes as many ingesters from each zone.
		n = min(n, int(math.Ceil(float64(size)/float64(zones)))*zones)
	}
	return int(float64(global) / float64(n) * float64(l.replicationFactor))
}

func minNonZero(a, b int) int {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// limitError is the error text of a limit, as Cortex words it, naming the
// flags of both limits.
// forWhat, when not empty, follows "exceeded" (" for metric \"cpu\"").
func (l *limiter) limitError(what, forWhat string, actual, local, global int, flags string) string {
	return fmt.Sprintf("%s limit of %d exceeded%s, %s (local limit: %d global limit: %d actual local limit: %d; %s)", what, minNonZero(local, global), forWhat, l.cfg.AdminLimitMessage, local, global, actual, flags)
}
