package tenantfederation

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"golang.org/x/sync/errgroup"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

const (
	// TenantLabel names each series' tenant in a query over several.
	TenantLabel = "__tenant_id__"
	// OriginalTenantLabel keeps a series' own __tenant_id__ label, as Cortex does.
	OriginalTenantLabel = "original_" + TenantLabel
)

// NewQueryable returns a Queryable that reads upstream once per tenant of
// the request context, each time with that one tenant in the context. A
// context naming one tenant reads upstream unchanged; several need
// cfg.Enabled and at most cfg.MaxTenant tenants, or every read fails with
// a RefusedError.
func NewQueryable(upstream storage.Queryable, cfg Config) storage.Queryable {
	return &queryable{upstream: upstream, cfg: cfg}
}

type queryable struct {
	upstream storage.Queryable
	cfg      Config
}

func (q *queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	// The tenants are only known from each call's context.
	return &mergeQuerier{upstream: q.upstream, cfg: q.cfg, mint: mint, maxt: maxt}, nil
}

// Config returns the settings the Queryable reads tenants with.
func (q *queryable) Config() *Config { return &q.cfg }

type mergeQuerier struct {
	upstream   storage.Queryable
	cfg        Config
	mint, maxt int64

	mu     sync.Mutex
	opened []storage.Querier
}

// open returns a new upstream querier, closed with this one.
func (m *mergeQuerier) open() (storage.Querier, error) {
	q, err := m.upstream.Querier(m.mint, m.maxt)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.opened = append(m.opened, q)
	m.mu.Unlock()
	return q, nil
}

func (m *mergeQuerier) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var first error
	for _, q := range m.opened {
		if err := q.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.opened = nil
	return first
}

// selected returns the tenants the matchers on __tenant_id__ keep, and the
// matchers to pass upstream: without those, and with matchers on
// original___tenant_id__ renamed to the series' own __tenant_id__. One
// tenant (no federation) returns the matchers unchanged.
func (m *mergeQuerier) selected(ctx context.Context, matchers []*labels.Matcher) (ids []string, upstream []*labels.Matcher, federated bool, err error) {
	ids, err = m.cfg.Tenants(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	if len(ids) == 1 {
		return ids, matchers, false, nil
	}
	upstream = make([]*labels.Matcher, 0, len(matchers))
	var keep []string
	var tenantMatchers []*labels.Matcher
	for _, mt := range matchers {
		switch mt.Name {
		case TenantLabel:
			tenantMatchers = append(tenantMatchers, mt)
		case OriginalTenantLabel:
			upstream = append(upstream, labels.MustNewMatcher(mt.Type, TenantLabel, mt.Value))
		default:
			upstream = append(upstream, mt)
		}
	}
	for _, id := range ids {
		if matchesAll(tenantMatchers, id) {
			keep = append(keep, id)
		}
	}
	return keep, upstream, true, nil
}

func matchesAll(ms []*labels.Matcher, v string) bool {
	for _, m := range ms {
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

// Select reads each selected tenant, at most -tenant-federation.max-concurrent
// at once, and merges their series, each labelled with its tenant.
func (m *mergeQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	ids, upstream, federated, err := m.selected(ctx, matchers)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if !federated {
		q, err := m.open()
		if err != nil {
			return storage.ErrSeriesSet(err)
		}
		return q.Select(ctx, sortSeries, hints, matchers...)
	}
	sets := make([]storage.SeriesSet, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.cfg.MaxConcurrent)
	for i, id := range ids {
		g.Go(func() error {
			q, err := m.open()
			if err == nil {
				// Each tenant's series are read whole here, so that the bound
				// holds for upstreams that fetch as the set is iterated.
				sets[i], err = readTenant(q.Select(tenant.Inject(gctx, id), true, hints, upstream...), id)
			}
			if err != nil && m.cfg.AllowPartialData && ctx.Err() == nil {
				sets[i] = &listSeriesSet{warnings: annotations.New().Add(partialDataError(id, err))}
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	limit := 0
	if hints != nil {
		limit = hints.Limit
	}
	return storage.NewMergeSeriesSet(sets, limit, storage.ChainedSeriesMerge)
}

// readTenant labels every series of set with its tenant, sorted again when
// the new label moved one: the merge needs each set sorted.
func readTenant(set storage.SeriesSet, id string) (storage.SeriesSet, error) {
	var out []storage.Series
	b := labels.NewBuilder(labels.EmptyLabels())
	for set.Next() {
		s := set.At()
		out = append(out, &labelledSeries{Series: s, lset: withTenant(b, s.Labels(), id)})
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	if !slices.IsSortedFunc(out, compareSeries) {
		slices.SortFunc(out, compareSeries)
	}
	return &listSeriesSet{series: out, warnings: set.Warnings()}, nil
}

// partialDataError is the warning of a tenant not read with
// -tenant-federation.allow-partial-data.
func partialDataError(id string, err error) error {
	return fmt.Errorf("failed to query tenant %s: %w (partial data returned)", id, err)
}

func compareSeries(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) }

func withTenant(b *labels.Builder, lset labels.Labels, id string) labels.Labels {
	b.Reset(lset)
	if own := lset.Get(TenantLabel); own != "" {
		b.Set(OriginalTenantLabel, own)
	}
	b.Set(TenantLabel, id)
	return b.Labels()
}

type labelledSeries struct {
	storage.Series
	lset labels.Labels
}

func (s *labelledSeries) Labels() labels.Labels { return s.lset }

type listSeriesSet struct {
	series   []storage.Series
	cur      int
	warnings annotations.Annotations
}

func (s *listSeriesSet) Next() bool {
	if s.cur >= len(s.series) {
		return false
	}
	s.cur++
	return true
}

func (s *listSeriesSet) At() storage.Series                { return s.series[s.cur-1] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return s.warnings }

// tenantQueriers returns one querier per selected tenant, reading as that
// tenant and answering label questions as its labelled series would, for
// storage.NewMergeQuerier to merge.
func (m *mergeQuerier) tenantQueriers(ids []string) ([]storage.Querier, error) {
	out := make([]storage.Querier, 0, len(ids))
	for _, id := range ids {
		q, err := m.open()
		if err != nil {
			return nil, err
		}
		out = append(out, &tenantQuerier{Querier: q, id: id})
	}
	return out, nil
}

// mergeTenants merges the tenants' label answers; with
// -tenant-federation.allow-partial-data they are Prometheus' secondary
// queriers, whose errors are warnings.
func (m *mergeQuerier) mergeTenants(ids []string) (storage.Querier, error) {
	qs, err := m.tenantQueriers(ids)
	if err != nil {
		return nil, err
	}
	if m.cfg.AllowPartialData {
		return storage.NewMergeQuerier(nil, qs, storage.ChainedSeriesMerge), nil
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

func (m *mergeQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	ids, upstream, federated, err := m.selected(ctx, matchers)
	if err != nil {
		return nil, nil, err
	}
	if !federated {
		q, err := m.open()
		if err != nil {
			return nil, nil, err
		}
		return q.LabelValues(ctx, name, hints, matchers...)
	}
	merged, err := m.mergeTenants(ids)
	if err != nil {
		return nil, nil, err
	}
	return merged.LabelValues(ctx, name, hints, upstream...)
}

func (m *mergeQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	ids, upstream, federated, err := m.selected(ctx, matchers)
	if err != nil {
		return nil, nil, err
	}
	if !federated {
		q, err := m.open()
		if err != nil {
			return nil, nil, err
		}
		return q.LabelNames(ctx, hints, matchers...)
	}
	merged, err := m.mergeTenants(ids)
	if err != nil {
		return nil, nil, err
	}
	return merged.LabelNames(ctx, hints, upstream...)
}

// tenantQuerier is one tenant's upstream querier, its series labelled with
// the tenant.
type tenantQuerier struct {
	storage.Querier
	id string
}

func (t *tenantQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	switch name {
	case TenantLabel:
		// Only tenants with a series matching the matchers have the value.
		if len(matchers) > 0 {
			names, ws, err := t.Querier.LabelNames(tenant.Inject(ctx, t.id), &storage.LabelHints{Limit: 1}, matchers...)
			if err != nil || len(names) == 0 {
				return nil, ws, err
			}
		}
		return []string{t.id}, nil, nil
	case OriginalTenantLabel:
		name = TenantLabel
	}
	values, ws, err := t.Querier.LabelValues(tenant.Inject(ctx, t.id), name, hints, matchers...)
	if err != nil {
		return nil, ws, fmt.Errorf("querying tenant %s: %w", t.id, err)
	}
	return values, ws, nil
}

func (t *tenantQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	names, ws, err := t.Querier.LabelNames(tenant.Inject(ctx, t.id), hints, matchers...)
	if err != nil {
		return nil, ws, fmt.Errorf("querying tenant %s: %w", t.id, err)
	}
	if len(names) == 0 {
		return names, ws, nil
	}
	out := make([]string, 0, len(names)+1)
	for _, n := range names {
		if n == TenantLabel {
			n = OriginalTenantLabel
		}
		out = append(out, n)
	}
	out = append(out, TenantLabel)
	slices.Sort(out)
	return out, ws, nil
}
