package storegateway

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// chunkRecord is one chunk as a chunk querier handed it out.
type chunkRecord struct {
	minT, maxT int64
	data       []byte
}

func selectChunks(t *testing.T, q storage.ChunkQuerier, mint, maxt int64, ms ...*labels.Matcher) (map[string][]chunkRecord, error) {
	t.Helper()
	out := map[string][]chunkRecord{}
	ss := q.Select(context.Background(), true, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	var it chunks.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		for it.Next() {
			m := it.At()
			out[s.Labels().String()] = append(out[s.Labels().String()], chunkRecord{m.MinTime, m.MaxTime, bytes.Clone(m.Chunk.Bytes())})
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
	}
	return out, ss.Err()
}

// TestChunkQuerierSendsStoredChunks checks that the chunks of a single
// block come out byte for byte as the TSDB wrote them, whole even where
// they reach outside the range, and that a failed chunk read names the
// block's segment.
func TestChunkQuerierSendsStoredChunks(t *testing.T) {
	const step, n = 1000, 500
	lset := labels.FromStrings("__name__", "cpu", "pod", "a")
	dir := writeBlock(t, []storage.Series{genSeries{lset: lset, start: 0, step: step, n: n, val: func(ts int64) float64 { return float64(ts) }}})
	bkt := newBucket(t)
	id := uploadBlock(t, bkt, "t1", dir, true)
	s, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, s)

	// The chunks as the TSDB stored them, read from the local block.
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), filepath.Clean(dir), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	local := querierChunks(t, b, 0, n*step)

	mint, maxt := int64(130*step), int64(250*step)
	q, err := s.ChunkQuerier("t1", mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got, err := selectChunks(t, q, mint, maxt, labels.MustNewMatcher(labels.MatchEqual, "pod", "a"))
	if err != nil {
		t.Fatal(err)
	}
	var want []chunkRecord
	for _, c := range local[lset.String()] {
		if c.maxT >= mint && c.minT <= maxt {
			want = append(want, c)
		}
	}
	if len(want) < 2 || want[0].minT >= mint {
		t.Fatalf("test setup: chunks %v do not reach outside the range", want)
	}
	if g := got[lset.String()]; len(g) != len(want) {
		t.Fatalf("got %d chunks, want the %d overlapping [%d, %d]", len(g), len(want), mint, maxt)
	}
	for i, c := range got[lset.String()] {
		if c.minT != want[i].minT || c.maxT != want[i].maxT || !bytes.Equal(c.data, want[i].data) {
			t.Errorf("chunk %d: [%d, %d] differs from the stored [%d, %d]", i, c.minT, c.maxT, want[i].minT, want[i].maxT)
		}
	}

	failing := id.String() + "/chunks/"
	bkt.failing.Store(&failing)
	if _, err := selectChunks(t, q, mint, maxt, labels.MustNewMatcher(labels.MatchEqual, "pod", "a")); err == nil || !strings.Contains(err.Error(), "t1/"+id.String()+"/chunks/000001") || !errors.Is(err, errInjected) {
		t.Fatalf("select error = %v", err)
	}
}

func querierChunks(t *testing.T, b *tsdb.Block, mint, maxt int64) map[string][]chunkRecord {
	t.Helper()
	q, err := tsdb.NewBlockChunkQuerier(b, mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out, err := selectChunks(t, q, mint, maxt, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	if err != nil {
		t.Fatal(err)
	}
	return out
}
