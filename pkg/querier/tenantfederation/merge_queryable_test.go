package tenantfederation

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// tenantStore answers each tenant's series, counting the Selects in flight.
type tenantStore struct {
	series   map[string][]labels.Labels
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	gate     chan struct{} // when set, Selects wait on it
	mu       sync.Mutex
	asked    []string
}

func (s *tenantStore) Querier(mint, maxt int64) (storage.Querier, error) {
	return &tenantStoreQuerier{s: s}, nil
}

type tenantStoreQuerier struct{ s *tenantStore }

func (q *tenantStoreQuerier) matching(ctx context.Context, ms []*labels.Matcher) ([]labels.Labels, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, err
	}
	q.s.mu.Lock()
	q.s.asked = append(q.s.asked, id)
	q.s.mu.Unlock()
	var out []labels.Labels
	for _, l := range q.s.series[id] {
		ok := true
		for _, m := range ms {
			ok = ok && m.Matches(l.Get(m.Name))
		}
		if ok {
			out = append(out, l)
		}
	}
	return out, nil
}

func (q *tenantStoreQuerier) Select(ctx context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	n := q.s.inFlight.Add(1)
	defer q.s.inFlight.Add(-1)
	for {
		m := q.s.maxSeen.Load()
		if n <= m || q.s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if q.s.gate != nil {
		<-q.s.gate
	}
	ls, err := q.matching(ctx, ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	slices.SortFunc(ls, labels.Compare)
	out := make([]storage.Series, 0, len(ls))
	for _, l := range ls {
		out = append(out, storage.NewListSeries(l, []chunks.Sample{}))
	}
	return &listSeriesSet{series: out}
}

func (q *tenantStoreQuerier) LabelValues(ctx context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	ls, err := q.matching(ctx, ms)
	var out []string
	for _, l := range ls {
		if v := l.Get(name); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, nil, err
}

func (q *tenantStoreQuerier) LabelNames(ctx context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	ls, err := q.matching(ctx, ms)
	var out []string
	for _, l := range ls {
		l.Range(func(lb labels.Label) {
			if !slices.Contains(out, lb.Name) {
				out = append(out, lb.Name)
			}
		})
	}
	slices.Sort(out)
	return out, nil, err
}

func (q *tenantStoreQuerier) Close() error { return nil }

func newStore() *tenantStore {
	return &tenantStore{series: map[string][]labels.Labels{
		"team-a": {labels.FromStrings("__name__", "up", "job", "api"), labels.FromStrings("__name__", "up", "job", "db")},
		"team-b": {labels.FromStrings("__name__", "up", "job", "api", TenantLabel, "own")},
		"team-c": {labels.FromStrings("__name__", "up", "A", "x")},
	}}
}

func enabled() Config { return Config{Enabled: true, MaxConcurrent: 16} }

func selectAll(t *testing.T, q storage.Queryable, org string, ms ...*labels.Matcher) ([]string, error) {
	t.Helper()
	qr, err := q.Querier(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer qr.Close()
	set := qr.Select(tenant.Inject(context.Background(), org), true, nil, ms...)
	var out []string
	for set.Next() {
		out = append(out, set.At().Labels().String())
	}
	return out, set.Err()
}

func TestSelectLabelsEachSeriesWithItsTenant(t *testing.T) {
	q := NewQueryable(newStore(), enabled())
	got, err := selectAll(t, q, "team-c|team-b|team-a|team-a", labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{A="x", __name__="up", __tenant_id__="team-c"}`,
		`{__name__="up", __tenant_id__="team-a", job="api"}`,
		`{__name__="up", __tenant_id__="team-a", job="db"}`,
		`{__name__="up", __tenant_id__="team-b", job="api", original___tenant_id__="own"}`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTenantMatcherSelectsTenants(t *testing.T) {
	s := newStore()
	q := NewQueryable(s, enabled())
	got, err := selectAll(t, q, "team-a|team-b|team-c", labels.MustNewMatcher(labels.MatchEqual, TenantLabel, "team-a"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{__name__="up", __tenant_id__="team-a", job="api"}`, `{__name__="up", __tenant_id__="team-a", job="db"}`}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if !slices.Equal(s.asked, []string{"team-a"}) {
		t.Fatalf("tenants read: %q, want only team-a", s.asked)
	}
	// A series' own __tenant_id__ is matched as original___tenant_id__.
	got, err = selectAll(t, q, "team-a|team-b", labels.MustNewMatcher(labels.MatchEqual, OriginalTenantLabel, "own"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`{__name__="up", __tenant_id__="team-b", job="api", original___tenant_id__="own"}`}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	got, err = selectAll(t, q, "team-a|team-b", labels.MustNewMatcher(labels.MatchRegexp, TenantLabel, "nobody.*"))
	if err != nil || len(got) != 0 {
		t.Fatalf("got %q, %v; want nothing", got, err)
	}
}

func TestOneTenantReadsUpstreamUnchanged(t *testing.T) {
	got, err := selectAll(t, NewQueryable(newStore(), Config{MaxConcurrent: 1}), "team-b")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`{__name__="up", __tenant_id__="own", job="api"}`}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		org  string
		want string
	}{
		{"disabled", Config{MaxConcurrent: 16}, "team-a|team-b", `X-Scope-OrgID "team-a|team-b" names 2 tenants but tenant federation is off: a query reads one tenant unless -tenant-federation.enabled=true`},
		{"too many", Config{Enabled: true, MaxConcurrent: 16, MaxTenant: 2}, "team-c|team-a|team-b", `X-Scope-OrgID "team-a|team-b|team-c" names 3 tenants, more than -tenant-federation.max-tenant=2 allows one query`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := selectAll(t, NewQueryable(newStore(), tc.cfg), tc.org)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			if !IsRefused(err) {
				t.Fatalf("%v is not a RefusedError", err)
			}
		})
	}
	// Within the limit, and repeats counted once.
	cfg := Config{Enabled: true, MaxConcurrent: 16, MaxTenant: 2}
	if _, err := selectAll(t, NewQueryable(newStore(), cfg), "team-a|team-b|team-a"); err != nil {
		t.Fatal(err)
	}
}

func TestMaxConcurrentBoundsTenantsReadAtOnce(t *testing.T) {
	s := newStore()
	for i := range 10 {
		s.series["t"+string(rune('0'+i))] = []labels.Labels{labels.FromStrings("__name__", "up")}
	}
	s.gate = make(chan struct{})
	q := NewQueryable(s, Config{Enabled: true, MaxConcurrent: 3})
	done := make(chan error)
	go func() {
		_, err := selectAll(t, q, "t0|t1|t2|t3|t4|t5|t6|t7|t8|t9")
		done <- err
	}()
	// Let the Selects through one at a time: at most 3 wait at once.
	for range 10 {
		s.gate <- struct{}{}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := s.maxSeen.Load(); m > 3 || m < 1 {
		t.Fatalf("%d tenants read at once, want at most 3", m)
	}
}

func TestUpstreamErrorFailsTheQuery(t *testing.T) {
	s := newStore()
	q := NewQueryable(errQueryable{s}, enabled())
	_, err := selectAll(t, q, "team-a|team-b")
	if err == nil || !strings.Contains(err.Error(), "store down for team-") {
		t.Fatalf("got %v, want the upstream's error", err)
	}
}

type errQueryable struct{ s *tenantStore }

func (e errQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return errQuerier{&tenantStoreQuerier{e.s}}, nil
}

type errQuerier struct{ *tenantStoreQuerier }

func (e errQuerier) Select(ctx context.Context, _ bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
	id, _ := tenant.ID(ctx)
	return storage.ErrSeriesSet(errors.New("store down for " + id))
}

func TestLabelNamesAndValues(t *testing.T) {
	q, err := NewQueryable(newStore(), enabled()).Querier(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := tenant.Inject(context.Background(), "team-a|team-b")
	names, _, err := q.LabelNames(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"__name__", TenantLabel, "job", OriginalTenantLabel}; !slices.Equal(names, want) {
		t.Fatalf("label names %q, want %q", names, want)
	}
	for _, tc := range []struct {
		name string
		ms   []*labels.Matcher
		want []string
	}{
		{TenantLabel, nil, []string{"team-a", "team-b"}},
		{TenantLabel, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "db")}, []string{"team-a"}},
		{OriginalTenantLabel, nil, []string{"own"}},
		{"job", nil, []string{"api", "db"}},
		{"job", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, TenantLabel, "team-b")}, []string{"api"}},
	} {
		got, _, err := q.LabelValues(ctx, tc.name, nil, tc.ms...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("values of %s %v: %q, want %q", tc.name, tc.ms, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (&Config{MaxConcurrent: 0}).Validate(); err == nil || err.Error() != "-tenant-federation.max-concurrent=0: must be at least 1" {
		t.Fatalf("got %v", err)
	}
	if err := (&Config{MaxConcurrent: 1, MaxTenant: -1}).Validate(); err == nil || err.Error() != "-tenant-federation.max-tenant=-1: must be 0 (no limit) or more" {
		t.Fatalf("got %v", err)
	}
}
