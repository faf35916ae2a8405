package ingester

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
)

// queryChunks returns every series matching the matchers whose chunks
// overlap [from, to], checking batches never exceed 128 series.
func (h *harness) queryChunks(tenantID string, from, to int64, ms ...*prompb.LabelMatcher) []*prompb.ChunkedSeries {
	h.t.Helper()
	stream, err := h.conn.QueryStreamChunks(ctxFor(tenantID), &prompb.Query{StartTimestampMs: from, EndTimestampMs: to, Matchers: ms})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*prompb.ChunkedSeries
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			h.t.Fatalf("query stream chunks: %v", err)
		}
		if len(res.ChunkedSeries) > queryStreamBatchSeries {
			h.t.Fatalf("batch of %d series, want at most %d", len(res.ChunkedSeries), queryStreamBatchSeries)
		}
		out = append(out, res.ChunkedSeries...)
	}
}

// decoded is a chunk's samples.
type decoded struct {
	floats []prompb.Sample
	hists  []*histogram.FloatHistogram
	ts     []int64 // timestamps of hists
}

func decodeChunk(t *testing.T, c prompb.Chunk) decoded {
	t.Helper()
	chk, err := chunkenc.FromData(chunkenc.Encoding(c.Type), c.Data)
	if err != nil {
		t.Fatal(err)
	}
	var d decoded
	it := chk.Iterator(nil)
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		switch vt {
		case chunkenc.ValFloat:
			ts, v := it.At()
			d.floats = append(d.floats, prompb.Sample{Timestamp: ts, Value: v})
		default:
			ts, fh := it.AtFloatHistogram(nil)
			d.hists, d.ts = append(d.hists, fh), append(d.ts, ts)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if n := len(d.floats) + len(d.hists); n != chk.NumSamples() {
		t.Fatalf("chunk yields %d samples, says it holds %d", n, chk.NumSamples())
	}
	return d
}

func histogramSum(t *testing.T, h interface{ Write(*dto.Metric) error }) (count uint64, sum float64) {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

func TestQueryStreamChunksFloatsAndHistograms(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, enableNativeHistograms))
	const n = 250 // more than the head's 120 samples per chunk
	fs := floats(series("cpu", "pod", "a"))
	ih := prompb.TimeSeries{Labels: series("latency", "kind", "int")}
	fh := prompb.TimeSeries{Labels: series("latency", "kind", "float")}
	for i := range int64(n) {
		fs.Samples = append(fs.Samples, prompb.Sample{Timestamp: base + i*1000, Value: float64(i)})
		ih.Histograms = append(ih.Histograms, prompb.FromIntHistogram(base+i*1000, tsdbutil.GenerateTestHistogram(i)))
		fh.Histograms = append(fh.Histograms, prompb.FromFloatHistogram(base+i*1000, tsdbutil.GenerateTestFloatHistogram(i)))
	}
	h.mustPush("t", fs, ih, fh)

	all := h.queryChunks("t", base, base+n*1000, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: model.MetricNameLabel, Value: ".+"})
	// Sorted by labels.
	wantOrder := []string{`{__name__="cpu", pod="a"}`, `{__name__="latency", kind="float"}`, `{__name__="latency", kind="int"}`}
	if len(all) != len(wantOrder) {
		t.Fatalf("got %d series, want %d", len(all), len(wantOrder))
	}
	wantType := []prompb.Chunk_Encoding{prompb.Chunk_XOR, prompb.Chunk_FLOAT_HISTOGRAM, prompb.Chunk_HISTOGRAM}
	for s, cs := range all {
		if got := labelsString(cs.Labels); got != wantOrder[s] {
			t.Fatalf("series %d is %s, want %s", s, got, wantOrder[s])
		}
		if len(cs.Chunks) < 2 {
			t.Errorf("%s: %d chunks, want several for %d samples", wantOrder[s], len(cs.Chunks), n)
		}
		next := base
		for _, c := range cs.Chunks {
			if c.Type != wantType[s] {
				t.Fatalf("%s: chunk type %s, want %s", wantOrder[s], c.Type, wantType[s])
			}
			d := decodeChunk(t, c)
			for j, f := range d.floats {
				if f.Timestamp != next || f.Value != float64((next-base)/1000) {
					t.Fatalf("%s: sample %v, want %d", wantOrder[s], f, next)
				}
				if j == 0 && c.MinTimeMs != f.Timestamp || j == len(d.floats)-1 && c.MaxTimeMs != f.Timestamp {
					t.Fatalf("%s: chunk [%d, %d] holds sample at %d", wantOrder[s], c.MinTimeMs, c.MaxTimeMs, f.Timestamp)
				}
				next += 1000
			}
			for j, got := range d.hists {
				i := (next - base) / 1000
				want := tsdbutil.GenerateTestFloatHistogram(i)
				if s == 2 {
					want = tsdbutil.GenerateTestHistogram(i).ToFloat(nil)
				}
				got.CounterResetHint = want.CounterResetHint
				if d.ts[j] != next || !got.Equals(want) {
					t.Fatalf("%s: histogram at %d = %v, want %v at %d", wantOrder[s], d.ts[j], got, want, next)
				}
				next += 1000
			}
		}
		if next != base+n*1000 {
			t.Errorf("%s: chunks end at %d, want %d", wantOrder[s], next, base+n*1000)
		}
	}
	if count, sum := histogramSum(t, h.ing.metrics.queriedSamples); count != 1 || sum != 3*n {
		t.Errorf("queried samples: %d observations summing to %v, want 1 of %d", count, sum, 3*n)
	}
	if count, sum := histogramSum(t, h.ing.metrics.queriedSeries); count != 1 || sum != 3 {
		t.Errorf("queried series: %d observations summing to %v, want 1 of 3", count, sum)
	}

	// A range sends the whole chunks that overlap it, and no other.
	from, to := base+100_000, base+200_000
	got := h.queryChunks("t", from, to, eq(model.MetricNameLabel, "cpu"))
	if len(got) != 1 {
		t.Fatalf("range query: %v", got)
	}
	var inRange int
	for _, c := range got[0].Chunks {
		if c.MaxTimeMs < from || c.MinTimeMs > to {
			t.Errorf("range query sent chunk [%d, %d] outside [%d, %d]", c.MinTimeMs, c.MaxTimeMs, from, to)
		}
		for _, f := range decodeChunk(t, c).floats {
			if f.Timestamp >= from && f.Timestamp <= to {
				inRange++
			}
		}
	}
	if inRange != 101 {
		t.Errorf("range query: %d samples in range, want 101", inRange)
	}
	if first, last := got[0].Chunks[0], got[0].Chunks[len(got[0].Chunks)-1]; first.MinTimeMs >= from || last.MaxTimeMs <= to {
		t.Errorf("range query: chunks span [%d, %d], want whole chunks reaching outside [%d, %d]", first.MinTimeMs, last.MaxTimeMs, from, to)
	}
	if got := h.queryChunks("t", base+n*1000, base+n*2000, eq(model.MetricNameLabel, "cpu")); len(got) != 0 {
		t.Errorf("query after the last sample: %v", got)
	}
}

func TestQueryStreamChunksBatchesAndErrors(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	var req []prompb.TimeSeries
	for i := range 300 { // more than two batches
		req = append(req, floats(series("requests_total", "pod", fmt.Sprintf("p%03d", i)), float64(base), float64(i)))
	}
	h.mustPush("team-a", req...)
	all := h.queryChunks("team-a", base, base, eq(model.MetricNameLabel, "requests_total"))
	if len(all) != 300 {
		t.Fatalf("got %d series, want 300", len(all))
	}
	for i, cs := range all {
		if got, want := labelsString(cs.Labels), fmt.Sprintf(`{__name__="requests_total", pod="p%03d"}`, i); got != want {
			t.Fatalf("series %d is %s, want %s", i, got, want)
		}
	}
	if got := h.queryChunks("team-b", base, base); len(got) != 0 {
		t.Errorf("another tenant sees %d series", len(got))
	}

	bad := &prompb.Query{Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "pod", Value: "("}}}
	if stream, err := h.conn.QueryStreamChunks(ctxFor("team-a"), bad); err == nil {
		if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("bad matcher: %v, want InvalidArgument", err)
		}
	}
	ctx, cancel := context.WithCancel(ctxFor("team-a"))
	cancel()
	if stream, err := h.conn.QueryStreamChunks(ctx, &prompb.Query{}); err == nil {
		if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
			t.Errorf("cancelled query: %v, want Canceled", err)
		}
	}

	// Without the tenant client interceptors, which refuse to send a call
	// without a tenant.
	cc, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	stream, err := client.NewIngesterClient(cc).QueryStreamChunks(context.Background(), &prompb.Query{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("query without tenant: %v, want Unauthenticated", err)
	}
}

// recordingStream is an in-process QueryStreamChunks stream: it keeps the
// messages as sent, without the copy gRPC's marshalling makes.
type recordingStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*prompb.ChunkedReadResponse
}

func (s *recordingStream) Context() context.Context { return s.ctx }
func (s *recordingStream) Send(m *prompb.ChunkedReadResponse) error {
	s.sent = append(s.sent, m)
	return nil
}

// TestQueryStreamChunksWhileAppending reads chunks while the same series
// are appended to: the open head chunk must be copied, not handed out, or
// the appends would rewrite the bytes being sent (the race detector flags
// that) and change chunks already sent (checked below).
func TestQueryStreamChunksWhileAppending(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	const seriesCount, samples = 10, 400
	push := func(i int64) {
		var req []prompb.TimeSeries
		for s := range seriesCount {
			req = append(req,
				floats(series("c", "s", fmt.Sprint(s)), float64(base+i), float64(i)),
				prompb.TimeSeries{Labels: series("h", "s", fmt.Sprint(s)), Histograms: []prompb.Histogram{prompb.FromIntHistogram(base+i, tsdbutil.GenerateTestHistogram(i))}},
			)
		}
		h.mustPush("x", req...)
	}
	push(0)

	var (
		wg       sync.WaitGroup
		appended = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(appended)
		for i := int64(1); i < samples; i++ {
			push(i)
		}
	}()
	type kept struct {
		chunk prompb.Chunk
		bytes []byte
	}
	var all []kept
	query := &prompb.Query{Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: model.MetricNameLabel, Value: "c|h"}}}
	for done := false; !done; {
		select {
		case <-appended:
			done = true
		default:
		}
		// Over gRPC, which reads the bytes while marshalling.
		for _, cs := range h.queryChunks("x", 0, 0, query.Matchers...) {
			for _, c := range cs.Chunks {
				decodeChunk(t, c)
			}
		}
		// In process, keeping what was sent, over all time and over a range
		// that cuts the open chunk.
		for _, maxt := range []int64{0, base + samples/2} {
			stream := &recordingStream{ctx: ctxFor("x")}
			q := *query
			q.EndTimestampMs = maxt
			if err := h.ing.QueryStreamChunks(&q, stream); err != nil {
				t.Fatal(err)
			}
			for _, res := range stream.sent {
				for _, cs := range res.ChunkedSeries {
					for _, c := range cs.Chunks {
						all = append(all, kept{c, bytes.Clone(c.Data)})
					}
				}
			}
		}
	}
	wg.Wait()
	for _, k := range all {
		if !bytes.Equal(k.chunk.Data, k.bytes) {
			t.Fatalf("a chunk [%d, %d] changed after it was sent", k.chunk.MinTimeMs, k.chunk.MaxTimeMs)
		}
		decodeChunk(t, k.chunk)
	}
	if len(all) == 0 {
		t.Fatal("no chunks read")
	}
}

// With -ingester.disable-chunk-trimming (the default here) a chunk is sent
// whole, samples outside the range included; with it false, as Cortex's
// default, the ingester cuts it to the range.
func TestQueryStreamChunksTrimming(t *testing.T) {
	ls := []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "api"}}
	var tv []float64
	for ts := 100; ts <= 1000; ts += 100 {
		tv = append(tv, float64(ts), float64(ts))
	}
	for _, disable := range []bool{true, false} {
		cfg := testConfig(t, t.TempDir(), newKV(t))
		cfg.DisableChunkTrimming = disable
		h := startHarness(t, cfg, newTestLimits(t, nil))
		h.mustPush("team-a", floats(ls, tv...))
		var got []int64
		for _, s := range h.queryChunks("team-a", 300, 600, &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "job", Value: "api"}) {
			for _, c := range s.Chunks {
				for _, smp := range decodeChunk(t, c).floats {
					got = append(got, smp.Timestamp)
				}
			}
		}
		want := []int64{100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}
		if !disable {
			want = []int64{300, 400, 500, 600}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("-ingester.disable-chunk-trimming=%v: chunks hold samples at %v, want %v", disable, got, want)
		}
	}
}
