package compactor

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

var discard = slog.New(slog.DiscardHandler)

// shipBlock writes a block as an ingester's head compaction does (its
// meta.json covering the aligned range [minT, maxT)) with series series of
// one sample every step, and uploads it to the tenant's directory as the
// shipper does. Blocks with the same arguments hold the same samples, as
// the replication factor's ingesters would.
func shipBlock(tb testing.TB, bkt objstore.Bucket, tenant string, series int, minT, maxT, step int64) ulid.ULID {
	tb.Helper()
	return shipBlockFrom(tb, bkt, tenant, series, minT, maxT, minT, step)
}

// shipBlockFrom is shipBlock with the first sample at first.
func shipBlockFrom(tb testing.TB, bkt objstore.Bucket, tenant string, series int, minT, maxT, first, step int64) ulid.ULID {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	w, err := tsdb.NewBlockWriter(discard, dir, maxT-minT)
	if err != nil {
		tb.Fatal(err)
	}
	app := w.Appender(ctx)
	for s := range series {
		lbls := labels.FromStrings("__name__", "test_metric", "series", strconv.Itoa(s))
		for ts := first; ts < maxT; ts += step {
			if _, err := app.Append(0, lbls, ts, sampleValue(s, ts)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		tb.Fatal(err)
	}
	id, err := w.Flush(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	bdir := filepath.Join(dir, id.String())
	m, err := block.ReadMetaFile(bdir)
	if err != nil {
		tb.Fatal(err)
	}
	// The head writes blocks over the aligned range, not the samples' span.
	m.MinTime, m.MaxTime = minT, maxT
	b, err := json.Marshal(m.BlockMeta)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bdir, block.MetaFilename), b, 0o600); err != nil {
		tb.Fatal(err)
	}
	thanos := block.ThanosMeta{Labels: map[string]string{block.TenantIDExternalLabel: tenant}, Source: block.SourceReceive}
	if err := block.Upload(ctx, objstore.NewPrefixedBucket(bkt, tenant), bdir, thanos); err != nil {
		tb.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		tb.Fatal(err)
	}
	return id
}

// sampleValue is a gauge-like value that varies irregularly from sample
// to sample, so that chunks cost what real ones do to encode, yet is the
// same for a series and time in every replica.
func sampleValue(series int, ts int64) float64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(series))
	binary.LittleEndian.PutUint64(b[8:], uint64(ts))
	_, _ = h.Write(b[:])
	return float64(h.Sum64()%100_000) / 100
}

// sampleCount downloads a block and counts its samples, failing on a
// sample that repeats or goes back in time within a series.
func sampleCount(t *testing.T, bkt objstore.Bucket, tenant string, id ulid.ULID) (samples, series int) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id.String())
	if err := block.Download(context.Background(), objstore.NewPrefixedBucket(bkt, tenant), id, dir); err != nil {
		t.Fatal(err)
	}
	b, err := tsdb.OpenBlock(discard, dir, chunkenc.NewPool(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, b.MinTime(), b.MaxTime())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "test_metric"))
	for ss.Next() {
		series++
		it := ss.At().Iterator(nil)
		last := int64(-1 << 62)
		sn, err := strconv.Atoi(ss.At().Labels().Get("series"))
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			if v != sampleValue(sn, ts) {
				t.Fatalf("block %s: series %d at %d holds %v, want %v", id, sn, ts, v, sampleValue(sn, ts))
			}
			if ts <= last {
				t.Fatalf("block %s: sample at %d follows one at %d in %s", id, ts, last, ss.At().Labels())
			}
			last = ts
			samples++
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return samples, series
}

func testConfig(t testing.TB) Config {
	var cfg Config
	fs := newFlagSet()
	cfg.RegisterFlags(fs)
	cfg.DataDir = t.TempDir()
	return cfg
}

const hour = int64(time.Hour / time.Millisecond)
