package postingscache

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
)

// clock is a settable time.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is a TSDB whose queriers go through a tenant's cache, and whose new
// and deleted series invalidate it, as the ingester wires them.
type env struct {
	t       *testing.T
	db      *tsdb.DB
	cache   *Cache
	m       *metrics
	clock   *clock
	lookups atomic.Int64 // index lookups the cache made or let through
}

type lifecycle struct{ c *Cache }

func (lifecycle) PreCreation(labels.Labels) error { return nil }
func (l lifecycle) PostCreation(ls labels.Labels) { l.c.ExpireSeries(ls) }
func (l lifecycle) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	for _, ls := range deleted {
		l.c.ExpireSeries(ls)
	}
}

func defaultConfig(t *testing.T) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlagsWithPrefix("blocks-storage.", fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newFactory(t *testing.T, cfg Config, e *env) *Factory {
	t.Helper()
	f, err := NewFactory(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e.clock = &clock{now: time.Unix(1700000000, 0)}
	f.now = e.clock.Now
	f.postings = func(ctx context.Context, ix tsdb.IndexReader, ms ...*labels.Matcher) (index.Postings, error) {
		e.lookups.Add(1)
		return tsdb.PostingsForMatchers(ctx, ix, ms...)
	}
	e.m = f.metrics
	return f
}

func openEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{t: t}
	e.cache = newFactory(t, cfg, e).NewCache("tenant-1")
	opts := tsdb.DefaultOptions()
	opts.SeriesLifecycleCallback = lifecycle{e.cache}
	opts.BlockQuerierFunc = e.cache.BlockQuerierFunc()
	opts.BlockChunkQuerierFunc = e.cache.BlockChunkQuerierFunc()
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.DisableCompactions()
	t.Cleanup(func() { _ = db.Close() })
	e.db = db
	return e
}

func (e *env) append(ts int64, series ...string) {
	e.t.Helper()
	app := e.db.Appender(context.Background())
	for _, s := range series {
		if _, err := app.Append(0, labelsOf(s), ts, float64(ts)); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

// labelsOf parses `name{a="b",...}` with unquoted values: `m{i=1}`.
func labelsOf(s string) labels.Labels {
	name, rest, _ := strings.Cut(strings.TrimSuffix(s, "}"), "{")
	b := labels.NewScratchBuilder(4)
	b.Add(model.MetricNameLabel, name)
	for kv := range strings.SplitSeq(rest, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			b.Add(k, v)
		}
	}
	b.Sort()
	return b.Labels()
}

// query returns the series matching ms in [mint, maxt] and their sample
// counts, through the sample querier and, checked to agree, the chunk
// querier.
func (e *env) query(mint, maxt int64, ms ...*labels.Matcher) []string {
	e.t.Helper()
	q, err := e.db.Querier(mint, maxt)
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	var got []string
	ss := q.Select(context.Background(), true, nil, ms...)
	for ss.Next() {
		n := 0
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			n++
		}
		got = append(got, fmt.Sprintf("%s:%d", ss.At().Labels(), n))
	}
	if err := ss.Err(); err != nil {
		e.t.Fatal(err)
	}
	cq, err := e.db.ChunkQuerier(mint, maxt)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cq.Close()
	var gotChunks []string
	css := cq.Select(context.Background(), true, nil, ms...)
	for css.Next() {
		n := 0
		it := css.At().Iterator(nil)
		for it.Next() {
			n += it.At().Chunk.NumSamples()
		}
		gotChunks = append(gotChunks, fmt.Sprintf("%s:%d", css.At().Labels(), n))
	}
	if err := css.Err(); err != nil {
		e.t.Fatal(err)
	}
	if !slices.Equal(got, gotChunks) {
		e.t.Fatalf("querier returned %v, chunk querier %v", got, gotChunks)
	}
	return got
}

func (e *env) expect(name string, want float64, c prometheus.Collector) {
	e.t.Helper()
	if got := testutil.ToFloat64(c); got != want {
		e.t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func eq(name, value string) *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchEqual, name, value)
}

func re(name, value string) *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchRegexp, name, value)
}

func wantSeries(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("got series %v, want %v", got, want)
	}
}

func TestHeadQueriesHitTheCache(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Head.Enabled = true
	e := openEnv(t, cfg)
	e.append(1000, `m{i=1}`, `m{i=2}`, `m{i=3}`, `n{i=1}`)

	all := []string{`{__name__="m", i="1"}:1`, `{__name__="m", i="2"}:1`, `{__name__="m", i="3"}:1`}
	// query reads through the sample and the chunk querier: a miss, then a hit.
	wantSeries(t, e.query(0, 2000, eq("__name__", "m")), all...)
	e.expect("requests{head}", 2, e.m.requests.WithLabelValues("head"))
	e.expect("miss{head,miss}", 1, e.m.misses.WithLabelValues("head", "miss"))
	e.expect("hits{head}", 1, e.m.hits.WithLabelValues("head"))
	wantSeries(t, e.query(0, 2000, eq("__name__", "m")), all...)
	e.expect("hits{head}", 3, e.m.hits.WithLabelValues("head"))
	if n := e.lookups.Load(); n != 1 {
		t.Errorf("%d index lookups for four identical selects, want 1", n)
	}

	// The matchers' order does not matter.
	wantSeries(t, e.query(0, 2000, re("i", "1|2"), eq("__name__", "m")), all[:2]...)
	wantSeries(t, e.query(0, 2000, eq("__name__", "m"), re("i", "1|2")), all[:2]...)
	e.expect("miss{head,miss}", 2, e.m.misses.WithLabelValues("head", "miss"))
	e.expect("hits{head}", 6, e.m.hits.WithLabelValues("head"))

	// Without __name__= a head query is not cached.
	wantSeries(t, e.query(0, 2000, eq("i", "1")), `{__name__="m", i="1"}:1`, `{__name__="n", i="1"}:1`)
	e.expect("non_cacheable{head}", 2, e.m.nonCacheable.WithLabelValues("head"))
	e.expect("requests{head}", 8, e.m.requests.WithLabelValues("head"))

	// A query past the newest sample is cached like any other: the head's
	// postings do not depend on the time range.
	wantSeries(t, e.query(5000, 6000, eq("__name__", "m")))
	wantSeries(t, e.query(0, 2000, eq("__name__", "m")), all...)
	e.expect("hits{head}", 10, e.m.hits.WithLabelValues("head"))
	if got := e.head().size(); got != 2 {
		t.Errorf("%d head entries, want 2", got)
	}
}

func (e *env) head() *fifoCache { return e.cache.head }

func TestNewSeriesInvalidatesItsMetricOnly(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Head.Enabled = true
	e := openEnv(t, cfg)
	e.append(1000, `m{i=1}`, `n{i=1}`)
	wantSeries(t, e.query(0, 5000, eq("__name__", "m")), `{__name__="m", i="1"}:1`)
	wantSeries(t, e.query(0, 5000, eq("__name__", "n")), `{__name__="n", i="1"}:1`)
	e.expect("miss{head,miss}", 2, e.m.misses.WithLabelValues("head", "miss"))

	// A sample of an existing series changes no postings: still a hit,
	// and the sample is read.
	e.append(2000, `m{i=1}`)
	wantSeries(t, e.query(0, 5000, eq("__name__", "m")), `{__name__="m", i="1"}:2`)
	e.expect("miss{head,miss}", 2, e.m.misses.WithLabelValues("head", "miss"))

	// A new series of m: m's next query misses and returns it; n's hits.
	e.append(3000, `m{i=2}`)
	wantSeries(t, e.query(0, 5000, eq("__name__", "m")), `{__name__="m", i="1"}:2`, `{__name__="m", i="2"}:1`)
	e.expect("miss{head,miss}", 3, e.m.misses.WithLabelValues("head", "miss"))
	wantSeries(t, e.query(0, 5000, eq("__name__", "n")), `{__name__="n", i="1"}:1`)
	e.expect("miss{head,miss}", 3, e.m.misses.WithLabelValues("head", "miss"))

	// Another tenant's series of m invalidates nothing here: seeds are
	// per tenant.
	other := e.cache.f.NewCache("tenant-2")
	other.ExpireSeries(labelsOf(`m{i=9}`))
	wantSeries(t, e.query(0, 5000, eq("__name__", "m")), `{__name__="m", i="1"}:2`, `{__name__="m", i="2"}:1`)
	e.expect("miss{head,miss}", 3, e.m.misses.WithLabelValues("head", "miss"))
}

func TestBlocksCache(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Blocks.Enabled = true
	e := openEnv(t, cfg)
	e.append(1000, `m{i=1}`, `m{i=2}`, `n{i=1}`)
	e.append(2000, `m{i=1}`)
	if err := e.db.CompactHead(tsdb.NewRangeHead(e.db.Head(), 0, 2000)); err != nil {
		t.Fatal(err)
	}
	if n := len(e.db.Blocks()); n != 1 {
		t.Fatalf("%d blocks, want 1", n)
	}
	e.append(3000, `m{i=3}`)

	want := []string{`{__name__="m", i="1"}:2`, `{__name__="m", i="2"}:1`, `{__name__="m", i="3"}:1`}
	wantSeries(t, e.query(0, 5000, eq("__name__", "m")), want...)
	wantSeries(t, e.query(0, 5000, eq("__name__", "m")), want...)
	e.expect("requests{block}", 4, e.m.requests.WithLabelValues("block"))
	e.expect("miss{block,miss}", 1, e.m.misses.WithLabelValues("block", "miss"))
	e.expect("hits{block}", 3, e.m.hits.WithLabelValues("block"))
	// The head's cache is off: its queries are neither requests nor
	// non-cacheable.
	e.expect("requests{head}", 0, e.m.requests.WithLabelValues("head"))
	e.expect("non_cacheable{head}", 0, e.m.nonCacheable.WithLabelValues("head"))

	// Blocks are immutable: any matchers are cached.
	wantSeries(t, e.query(0, 1500, eq("i", "1")), `{__name__="m", i="1"}:1`, `{__name__="n", i="1"}:1`)
	e.expect("miss{block,miss}", 2, e.m.misses.WithLabelValues("block", "miss"))
	e.expect("non_cacheable{block}", 0, e.m.nonCacheable.WithLabelValues("block"))
}

// refs returns n series references, a lookup of 8n bytes.
func refs(n int) []storage.SeriesRef {
	out := make([]storage.SeriesRef, n)
	for i := range out {
		out[i] = storage.SeriesRef(i + 1)
	}
	return out
}

func TestMaxBytesEvictsTheOldest(t *testing.T) {
	e := &env{t: t}
	cfg := defaultConfig(t)
	cfg.Blocks.Enabled = true
	// Each entry below is 5 references and a one-byte key.
	const entrySize = 5*8 + 1 + entryOverhead
	cfg.Blocks.MaxBytes = 2*entrySize + entrySize/2
	f := newFactory(t, cfg, e)
	c := f.NewCache("tenant-1").blocks
	fetches := 0
	get := func(key string, n int) *entry {
		return c.get(key, func() ([]storage.SeriesRef, error) { fetches++; return refs(n), nil })
	}
	get("a", 5)
	get("b", 5)
	e.expect("evicts{block,full}", 0, e.m.evictions.WithLabelValues("block", "full"))
	get("c", 5)
	e.expect("evicts{block,full}", 1, e.m.evictions.WithLabelValues("block", "full"))
	if c.size() != 2 || c.bytes != 2*entrySize {
		t.Errorf("%d entries of %d bytes, want 2 of %d", c.size(), c.bytes, 2*entrySize)
	}
	get("b", 5)
	get("c", 5)
	if fetches != 3 {
		t.Errorf("%d fetches, want 3: b and c are still cached", fetches)
	}
	get("a", 5) // evicted first: fetched again, and b goes
	if fetches != 4 {
		t.Errorf("%d fetches, want 4: a was evicted", fetches)
	}
	get("b", 5)
	if fetches != 5 {
		t.Errorf("%d fetches, want 5: b was evicted by a", fetches)
	}

	// A lookup larger than the cache is returned, not kept, and evicts
	// nothing else.
	if got := get("big", 200); len(got.refs) != 200 {
		t.Errorf("%d references returned, want 200", len(got.refs))
	}
	if _, ok := c.entries["big"]; ok || c.size() != 2 || c.bytes != 2*entrySize {
		t.Errorf("after a lookup over max-bytes: %d entries of %d bytes (big kept: %v), want a and b, %d bytes", c.size(), c.bytes, ok, 2*entrySize)
	}
	e.expect("evicts{block,full}", 4, e.m.evictions.WithLabelValues("block", "full"))
}

func TestTTLExpiry(t *testing.T) {
	e := &env{t: t}
	cfg := defaultConfig(t)
	cfg.Head.Enabled = true
	cfg.Head.TTL = time.Minute
	f := newFactory(t, cfg, e)
	cache := f.NewCache("tenant-1")
	c := cache.head
	fetches := 0
	get := func(key string) {
		c.get(key, func() ([]storage.SeriesRef, error) { fetches++; return refs(1), nil })
	}
	get("a")
	e.clock.advance(time.Minute - time.Nanosecond)
	get("a")
	if fetches != 1 {
		t.Fatalf("%d fetches within the TTL, want 1", fetches)
	}
	e.clock.advance(time.Nanosecond)
	get("a")
	if fetches != 2 {
		t.Fatalf("%d fetches once the TTL passed, want 2", fetches)
	}
	e.expect("miss{head,expired}", 1, e.m.misses.WithLabelValues("head", "expired"))

	// Purging drops what expired, oldest first, and keeps the rest.
	e.clock.advance(30 * time.Second)
	get("b")
	e.clock.advance(30 * time.Second)
	cache.PurgeExpired()
	e.expect("evicts{head,expired}", 1, e.m.evictions.WithLabelValues("head", "expired"))
	if _, ok := c.entries["a"]; ok || c.size() != 1 || c.bytes != 8+1+entryOverhead {
		t.Errorf("after purging a: %d entries (a present: %v) of %d bytes, want b alone, %d bytes", c.size(), ok, c.bytes, 8+1+entryOverhead)
	}

	// A TTL of 0 keeps nothing.
	cfg.Head.TTL = 0
	f = newFactory(t, cfg, e)
	c = f.NewCache("tenant-1").head
	fetches = 0
	get("a")
	get("a")
	if fetches != 2 || c.size() != 0 || len(c.entries) != 0 {
		t.Errorf("ttl 0: %d fetches and %d entries, want 2 and 0", fetches, c.size())
	}
}

func TestConcurrentLookupsShareOneFetch(t *testing.T) {
	e := openEnv(t, func() Config { cfg := defaultConfig(t); cfg.Head.Enabled = true; return cfg }())
	e.append(1000, `m{i=1}`, `m{i=2}`)
	started, release := make(chan struct{}), make(chan struct{})
	e.cache.f.postings = func(ctx context.Context, ix tsdb.IndexReader, ms ...*labels.Matcher) (index.Postings, error) {
		e.lookups.Add(1)
		close(started)
		<-release
		return tsdb.PostingsForMatchers(ctx, ix, ms...)
	}
	ix, err := e.db.Head().Index()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([][]storage.SeriesRef, 3)
	for n := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := e.cache.PostingsForMatchers(context.Background(), headULID, ix, eq("__name__", "m"))
			if err != nil {
				t.Error(err)
				return
			}
			results[n], _ = index.ExpandPostings(p)
		}()
		if n == 0 {
			<-started
		}
	}
	// The other two wait on the first's lookup.
	for testutil.ToFloat64(e.m.hits.WithLabelValues("head")) < 2 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := e.lookups.Load(); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
	for n, r := range results {
		if len(r) != 2 {
			t.Errorf("caller %d got %v, want two references", n, r)
		}
	}
}

func TestFetchTimeoutAndFailuresAreNotCached(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Head.Enabled = true
	cfg.Head.FetchTimeout = 10 * time.Millisecond
	e := openEnv(t, cfg)
	e.append(1000, `m{i=1}`)
	release := make(chan struct{})
	var hang atomic.Bool
	hang.Store(true)
	e.cache.f.postings = func(ctx context.Context, ix tsdb.IndexReader, ms ...*labels.Matcher) (index.Postings, error) {
		e.lookups.Add(1)
		if hang.Load() {
			select {
			case <-ctx.Done(): // -fetch-timeout: the callers' contexts have no deadline
				return nil, ctx.Err()
			case <-release:
			}
		}
		return tsdb.PostingsForMatchers(ctx, ix, ms...)
	}
	ix, err := e.db.Head().Index()
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(ctx context.Context, name string) ([]storage.SeriesRef, error) {
		p, err := e.cache.PostingsForMatchers(ctx, headULID, ix, eq("__name__", name))
		if err != nil {
			return nil, err
		}
		return index.ExpandPostings(p)
	}
	if _, err := lookup(context.Background(), "m"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lookup past -fetch-timeout: err %v, want %v", err, context.DeadlineExceeded)
	}
	hang.Store(false)
	if r, err := lookup(context.Background(), "m"); err != nil || len(r) != 1 || e.lookups.Load() != 2 {
		t.Fatalf("after a failed lookup: %v, %v after %d lookups; want one reference after 2 (failures are not kept)", r, err, e.lookups.Load())
	}

	// A caller giving up does not stop a lookup others share.
	hang.Store(true)
	e.cache.head.cfg.FetchTimeout = 0
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error)
	go func() {
		_, err := lookup(ctx, "x")
		first <- err
	}()
	for e.lookups.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	gone, cancelGone := context.WithCancel(context.Background())
	cancelGone()
	if _, err := lookup(gone, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting caller whose context is cancelled: err %v, want %v", err, context.Canceled)
	}
	close(release)
	// The first caller runs the lookup itself: it returns when the lookup
	// does, with its own context's error.
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first caller: err %v, want %v", err, context.Canceled)
	}
	if r, err := lookup(context.Background(), "x"); err != nil || len(r) != 0 || e.lookups.Load() != 3 {
		t.Errorf("after the callers gave up: %v, %v after %d lookups; want the finished lookup's empty list after 3", r, err, e.lookups.Load())
	}
}

func TestCacheKeys(t *testing.T) {
	a := cacheKey(0, headULID, []*labels.Matcher{eq("a", "x|b=y")})
	b := cacheKey(0, headULID, []*labels.Matcher{eq("a", "x"), eq("b", "y")})
	if a == b {
		t.Error("a=\"x|b=y\" and a=\"x\",b=\"y\" share a key")
	}
	if cacheKey(1, headULID, []*labels.Matcher{eq("a", "x")}) == cacheKey(2, headULID, []*labels.Matcher{eq("a", "x")}) {
		t.Error("different seeds share a key")
	}
	if cacheKey(0, headULID, []*labels.Matcher{eq("a", "x")}) == cacheKey(0, rangeHeadULID, []*labels.Matcher{eq("a", "x")}) {
		t.Error("different blocks share a key")
	}
	ms := []*labels.Matcher{eq("b", "1"), re("a", "2"), eq("a", "3")}
	orig := slices.Clone(ms)
	if cacheKey(0, headULID, ms) != cacheKey(0, headULID, []*labels.Matcher{eq("a", "3"), eq("b", "1"), re("a", "2")}) {
		t.Error("the matchers' order changes the key")
	}
	if !slices.Equal(ms, orig) {
		t.Error("cacheKey reordered the caller's matchers")
	}
}

func TestFlagsAndValidation(t *testing.T) {
	cfg := defaultConfig(t)
	want := CacheConfig{MaxBytes: 10 << 20, TTL: 10 * time.Minute}
	if cfg.Head != want || cfg.Blocks != want {
		t.Errorf("defaults %+v, %+v; want Cortex's %+v", cfg.Head, cfg.Blocks, want)
	}
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlagsWithPrefix("blocks-storage.", fs)
	if err := fs.Parse([]string{
		"-blocks-storage.expanded_postings_cache.head.enabled",
		"-blocks-storage.expanded_postings_cache.block.max-bytes=5",
		"-blocks-storage.expanded_postings_cache.block.ttl=1m",
		"-blocks-storage.expanded_postings_cache.head.fetch-timeout=2s",
	}); err != nil {
		t.Fatal(err)
	}
	if !c.Head.Enabled || c.Blocks.MaxBytes != 5 || c.Blocks.TTL != time.Minute || c.Head.FetchTimeout != 2*time.Second {
		t.Errorf("parsed %+v", c)
	}
	for _, tc := range []struct {
		mutate func(*Config)
		err    string
	}{
		{func(c *Config) { c.Head.MaxBytes = -1 }, "-blocks-storage.expanded_postings_cache.head.max-bytes -1 must not be negative"},
		{func(c *Config) { c.Blocks.TTL = -time.Second }, "-blocks-storage.expanded_postings_cache.block.ttl -1s must not be negative"},
		{func(c *Config) { c.Blocks.FetchTimeout = -time.Second }, "-blocks-storage.expanded_postings_cache.block.fetch-timeout -1s must not be negative (0 for none)"},
	} {
		c := defaultConfig(t)
		tc.mutate(&c)
		if err := c.Validate(); err == nil || err.Error() != tc.err {
			t.Errorf("Validate() = %v, want %q", err, tc.err)
		}
	}
	if f, err := NewFactory(defaultConfig(t), nil); f != nil || err != nil {
		t.Errorf("NewFactory with both caches off = %v, %v; want nil, nil", f, err)
	}
	if c := (*Factory)(nil).NewCache("t"); c != nil {
		t.Errorf("nil factory made %v", c)
	}
}
