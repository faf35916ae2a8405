package ruler

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

const threeIndependentRules = `
name: independent
rules:
  - record: a:up
    expr: sum(up)
  - record: b:up
    expr: count(up)
  - record: c:up
    expr: max(up)
`

// TestDisabledAndEnabledTenants: -ruler.disabled-tenants keeps a tenant's
// rules from being evaluated here, and -ruler.enabled-tenants evaluates
// only those listed.
func TestDisabledAndEnabledTenants(t *testing.T) {
	for _, c := range []struct {
		flag      string
		evaluated string
		skipped   string
	}{
		{"-ruler.disabled-tenants=tenant-b", "tenant-a", "tenant-b"},
		{"-ruler.enabled-tenants=tenant-b", "tenant-b", "tenant-a"},
		{"-ruler.enabled-tenants=tenant-a,tenant-b", "tenant-a", ""},
	} {
		t.Run(c.flag, func(t *testing.T) {
			dbs := newTenantDBs(t)
			now := time.Now()
			store := &memStore{}
			for _, user := range []string{"tenant-a", "tenant-b"} {
				dbs.add(user, now.Add(-10*time.Second), 1, labels.FromStrings("__name__", "up", "job", "api"))
			}
			store.set(group(t, "tenant-a", "ns", tenantARules), group(t, "tenant-b", "ns", tenantARules))
			if c.skipped == "" {
				c.flag += " -ruler.disabled-tenants=tenant-b"
				c.skipped = "tenant-b"
			}
			r := testRuler(t, testConfig(t, strings.Fields(c.flag)...), store, dbs, nil, nil, prometheus.NewRegistry())
			eventually(t, "the allowed tenant's rules evaluated", func() bool {
				return len(dbs.instant(t, c.evaluated, `job:up:sum`)) == 1
			})
			r.SyncRules(context.Background())
			if r.tenant(c.skipped) != nil {
				t.Fatalf("%s: %s has a rule manager here", c.flag, c.skipped)
			}
			if n := dbs.pushCount(c.skipped); n != 0 {
				t.Fatalf("%s: %d writes for %s", c.flag, n, c.skipped)
			}
		})
	}
}

// peakQueryable counts the rule queries in flight at once. Each Select
// waits until wantPeak are in flight (or a second passes), so that
// queries that may overlap do.
type peakQueryable struct {
	storage.Queryable
	wantPeak int

	mu       sync.Mutex
	cond     *sync.Cond
	inFlight int
	peak     int
}

func newPeakQueryable(q storage.Queryable, wantPeak int) *peakQueryable {
	p := &peakQueryable{Queryable: q, wantPeak: wantPeak}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *peakQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := p.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &peakQuerier{Querier: q, p: p}, nil
}

func (p *peakQueryable) max() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

type peakQuerier struct {
	storage.Querier
	p *peakQueryable
}

func (q *peakQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	p := q.p
	p.mu.Lock()
	p.inFlight++
	p.peak = max(p.peak, p.inFlight)
	p.cond.Broadcast()
	deadline := time.Now().Add(time.Second)
	for p.inFlight < p.wantPeak && time.Now().Before(deadline) {
		// A timer wakes the wait at the deadline even if no query joins.
		t := time.AfterFunc(time.Until(deadline), func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
		p.cond.Wait()
		t.Stop()
	}
	p.inFlight--
	p.mu.Unlock()
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}

// TestConcurrentEvals: with -ruler.concurrent-evals-enabled, the
// independent rules of a group are queried at the same time; without it,
// one after the other.
func TestConcurrentEvals(t *testing.T) {
	for _, c := range []struct {
		args     []string
		wantPeak int
	}{
		{nil, 1},
		// One rule evaluates on a goroutine of its own, the next on the
		// group's: two at once.
		{[]string{"-ruler.concurrent-evals-enabled", "-ruler.max-concurrent-evals=1"}, 2},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			dbs := newTenantDBs(t)
			dbs.add("tenant-a", time.Now().Add(-10*time.Second), 1, labels.FromStrings("__name__", "up", "job", "api"))
			store := &memStore{}
			store.set(group(t, "tenant-a", "ns", threeIndependentRules))
			q := newPeakQueryable(dbs, 2)
			cfg := testConfig(t, c.args...)
			engine := NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute}, nil)
			r, err := New(cfg, store, dbs, q, engine, nil, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.StartAsync(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.StopAsync(); _ = r.AwaitTerminated(context.Background()) })
			eventually(t, "the group's three rules written", func() bool {
				return len(dbs.instant(t, "tenant-a", `{__name__=~"[abc]:up"}`)) == 3
			})
			if got := q.max(); got != c.wantPeak {
				t.Fatalf("%v: %d rule queries in flight at most, want %d", c.args, got, c.wantPeak)
			}
		})
	}
}

// TestDisableRuleGroupLabel: the per-group rule metrics are summed into one
// series per tenant, without the rule_group label.
func TestDisableRuleGroupLabel(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		dbs := newTenantDBs(t)
		store := &memStore{}
		store.set(group(t, "tenant-a", "ns", tenantARules), group(t, "tenant-a", "ns", threeIndependentRules))
		reg := prometheus.NewRegistry()
		args := []string{}
		if disabled {
			args = append(args, "-ruler.disable-rule-group-label")
		}
		testRuler(t, testConfig(t, args...), store, dbs, nil, nil, reg)
		eventually(t, "the rule metrics of both groups", func() bool {
			return counter(t, reg, "cortex_prometheus_rule_group_rules", map[string]string{"user": "tenant-a"}) >= 0
		})
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var series []string
		for _, f := range families {
			if f.GetName() != "cortex_prometheus_rule_group_rules" {
				continue
			}
			for _, m := range f.GetMetric() {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				series = append(series, fmt.Sprintf("%s %g", strings.Join(ls, ","), m.GetGauge().GetValue()))
			}
		}
		want := []string{"rule_group=ns;availability,user=tenant-a 2", "rule_group=ns;independent,user=tenant-a 3"}
		if disabled {
			want = []string{"user=tenant-a 5"}
		}
		if strings.Join(series, "|") != strings.Join(want, "|") {
			t.Errorf("-ruler.disable-rule-group-label=%v: series %q, want %q", disabled, series, want)
		}
	}
}

// TestAPIDeduplicateRules: a group two rulers report is listed once, the
// copy evaluated last, only with -experimental.ruler.api-deduplicate-rules.
func TestAPIDeduplicateRules(t *testing.T) {
	older := &RuleGroup{File: "ns", Name: "g", LastEvaluation: time.Unix(100, 0)}
	newer := &RuleGroup{File: "ns", Name: "g", LastEvaluation: time.Unix(200, 0)}
	other := &RuleGroup{File: "ns", Name: "h"}
	got := mergeGroups(true, []*RuleGroup{older, other}, []*RuleGroup{newer})
	if len(got) != 2 || got[0] != newer || got[1] != other {
		t.Errorf("deduplicated: got %v, want the newer copy of g and h", got)
	}
	if got := mergeGroups(false, []*RuleGroup{older, other}, []*RuleGroup{newer}); len(got) != 3 {
		t.Errorf("not deduplicated: got %d groups, want 3", len(got))
	}
}

func TestRulerOptionFlags(t *testing.T) {
	cfg := testConfig(t, "-ruler.concurrent-evals-enabled", "-ruler.max-concurrent-evals=0")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-ruler.max-concurrent-evals must be positive with -ruler.concurrent-evals-enabled, got 0") {
		t.Errorf("max-concurrent-evals=0: error %v", err)
	}
	cfg = testConfig(t, "-experimental.ruler.enable-api")
	if !cfg.EnableAPI {
		t.Error("-experimental.ruler.enable-api does not enable the configuration API")
	}
	cfg = testConfig(t)
	if cfg.ConcurrentEvalsEnabled || cfg.MaxConcurrentEvals != 1 || cfg.DisableRuleGroupLabel || cfg.APIDeduplicateRules {
		t.Errorf("defaults differ from Cortex's: %+v", cfg)
	}
}
