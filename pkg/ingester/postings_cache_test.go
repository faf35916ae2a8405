package ingester

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
)

// counterValue sums the registry's series of a counter whose labels
// include want.
func (h *harness) counterValue(name string, want map[string]string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestExpandedPostingsCacheAnswersTheSame runs the same pushes, head
// compaction and queries on an ingester with both postings caches and on
// one without: every answer must be the same, including right after a new
// series of a cached metric appears.
func TestExpandedPostingsCacheAnswersTheSame(t *testing.T) {
	const tenantID = "team-a"
	history := base - 3*3600*1000
	type phase struct {
		name string
		run  func(h *harness)
	}
	phases := []phase{
		{"history", func(h *harness) {
			for ts := history; ts < base; ts += 10 * 60 * 1000 {
				var batch []prompb.TimeSeries
				for p := range 4 {
					batch = append(batch, floats(series("m", "job", "api", "pod", fmt.Sprintf("p%d", p)), float64(ts), float64(p)))
				}
				batch = append(batch, floats(series("n", "job", "db", "pod", "p0"), float64(ts), 1))
				h.mustPush(tenantID, batch...)
			}
			// Compact the idle head into blocks: queries of the history
			// now read blocks.
			u := h.ing.getTSDB(tenantID)
			u.lastPush.Store(time.Now().Add(-2 * h.cfg.TSDB.HeadCompactionIdleTimeout).UnixNano())
			h.ing.compactHeads(context.Background())
			if len(u.db.Blocks()) == 0 || u.db.Head().NumSeries() != 0 {
				h.t.Fatalf("after idle compaction: %d blocks, %d head series; want blocks and an empty head", len(u.db.Blocks()), u.db.Head().NumSeries())
			}
		}},
		{"recent", func(h *harness) {
			h.mustPush(tenantID,
				floats(series("m", "job", "api", "pod", "p0"), float64(base+60000), 10),
				floats(series("n", "job", "db", "pod", "p0"), float64(base+60000), 11))
		}},
		{"new series of a cached metric", func(h *harness) {
			h.mustPush(tenantID,
				floats(series("m", "job", "api", "pod", "p9"), float64(base+120000), 12),
				floats(series("m", "job", "api", "pod", "p0"), float64(base+120000), 13))
		}},
		{"again", func(*harness) {}},
	}
	re := func(name, value string) *prompb.LabelMatcher {
		return &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: name, Value: value}
	}
	neq := func(name, value string) *prompb.LabelMatcher {
		return &prompb.LabelMatcher{Type: prompb.LabelMatcher_NEQ, Name: name, Value: value}
	}
	queries := [][]*prompb.LabelMatcher{
		{eq("__name__", "m")},
		{eq("__name__", "m"), re("pod", "p[0-2]|p9")},
		{re("pod", "p0|p9"), eq("__name__", "m")},
		{eq("__name__", "m"), neq("job", "db")},
		{eq("pod", "p0")}, // no metric name: not cached on the head
		{re("__name__", "m|n")},
	}
	ranges := [][2]int64{
		{history - 3600*1000, base + 3600*1000},  // blocks and head
		{history, base - 3600*1000},              // blocks only
		{base, base + 3600*1000},                 // head only
		{base + 2*3600*1000, base + 3*3600*1000}, // past the newest sample
	}

	answers := map[bool][]string{}
	var cached *harness
	for _, enabled := range []bool{false, true} {
		cfg := testConfig(t, t.TempDir(), newKV(t))
		cfg.TSDB.PostingsCache.Head.Enabled = enabled
		cfg.TSDB.PostingsCache.Blocks.Enabled = enabled
		h := startHarness(t, cfg, newTestLimits(t, nil))
		if enabled {
			cached = h
		}
		for _, p := range phases {
			p.run(h)
			// Each query twice: the second is the cached one.
			for range 2 {
				for _, r := range ranges {
					for _, ms := range queries {
						var got []string
						for _, s := range h.query(tenantID, r[0], r[1], ms...) {
							got = append(got, fmt.Sprintf("%s:%d", labelsString(s.Labels), len(s.Samples)))
						}
						for _, s := range h.queryChunks(tenantID, r[0], r[1], ms...) {
							got = append(got, fmt.Sprintf("chunks %s:%d", labelsString(s.Labels), len(s.Chunks)))
						}
						answers[enabled] = append(answers[enabled], fmt.Sprintf("%s %v %v: %s", p.name, r, ms, strings.Join(got, " ")))
					}
				}
			}
		}
	}
	if len(answers[false]) != len(answers[true]) {
		t.Fatalf("%d answers without the cache, %d with", len(answers[false]), len(answers[true]))
	}
	for n := range answers[false] {
		if answers[false][n] != answers[true][n] {
			t.Errorf("answers differ:\nwithout: %s\nwith:    %s", answers[false][n], answers[true][n])
		}
	}
	// The new series is in the answers right after its push.
	if a := answers[true]; !slices.ContainsFunc(a, func(s string) bool {
		return strings.HasPrefix(s, "new series of a cached metric") && strings.Contains(s, `pod="p9"`)
	}) {
		t.Error("no answer after the push of m{pod=\"p9\"} includes it")
	}
	// The answers came from the caches.
	for _, c := range []string{"head", "block"} {
		hits := cached.counterValue("cortex_ingester_expanded_postings_cache_hits_total", map[string]string{"cache": c})
		misses := cached.counterValue("cortex_ingester_expanded_postings_cache_miss_total", map[string]string{"cache": c})
		if hits == 0 || misses == 0 {
			t.Errorf("%s cache: %v hits, %v misses; want both", c, hits, misses)
		}
	}
	if n := cached.counterValue("cortex_ingester_expanded_postings_non_cacheable_queries_total", map[string]string{"cache": "head"}); n == 0 {
		t.Error("no head query counted as non-cacheable; the pod=\"p0\" queries are")
	}
}

// TestExpandedPostingsCacheWithConcurrentNewSeries queries a metric while
// writers keep creating series of it: once the writes are done, a query
// returns every series.
func TestExpandedPostingsCacheWithConcurrentNewSeries(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.TSDB.PostingsCache.Head.Enabled = true
	h := startHarness(t, cfg, newTestLimits(t, nil))
	const writers, rounds = 2, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*2)
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := h.push("x", floats(series("c", "w", fmt.Sprint(w), "r", fmt.Sprint(r)), float64(base), 1)); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range rounds {
				stream, err := h.conn.QueryStream(ctxFor("x"), &prompb.Query{StartTimestampMs: base, EndTimestampMs: base, Matchers: []*prompb.LabelMatcher{eq("__name__", "c")}})
				if err != nil {
					errs <- err
					continue
				}
				for {
					if _, err := stream.Recv(); err != nil {
						if !errors.Is(err, io.EOF) {
							errs <- err
						}
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call: %v", err)
	}
	if got := h.query("x", base, base, eq("__name__", "c")); len(got) != writers*rounds {
		t.Fatalf("%d series after the writes, want %d", len(got), writers*rounds)
	}
}
