package querier

import (
	"bytes"
	"hash/maphash"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// ingesterAnswer is one ingester's answer to a Select: encoded chunks, or
// samples when the ingester predates QueryStreamChunks.
type ingesterAnswer struct {
	chunked []*prompb.ChunkedSeries
	sampled []*prompb.TimeSeries
}

// chunkSeries is one series of a Select with what its replicas sent: each
// distinct chunk list once (identical replicas, the usual case, collapse
// into one copy that is never decoded twice) and the samples of older
// ingesters. It yields only the samples in [mint, maxt].
type chunkSeries struct {
	lset       labels.Labels
	chunkLists [][]prompb.Chunk
	sampled    []*prompb.TimeSeries
	mint, maxt int64
}

// mergeAnswers groups the ingesters' series by labels, sorted by labels.
// Ingesters send each series' labels sorted, so equal series have equal
// label lists and are matched without building labels for every replica.
func mergeAnswers(answers []ingesterAnswer, mint, maxt int64) []*chunkSeries {
	var (
		b      labels.ScratchBuilder
		seed   = maphash.MakeSeed()
		out    []*chunkSeries
		byHash = map[uint64][]*chunkSeries{}
		wire   = map[*chunkSeries][]prompb.Label{}
	)
	find := func(ls []prompb.Label) *chunkSeries {
		h := hashLabels(seed, ls)
		for _, s := range byHash[h] {
			if sameLabels(wire[s], ls) {
				return s
			}
		}
		s := &chunkSeries{lset: toLabels(&b, ls), mint: mint, maxt: maxt}
		byHash[h] = append(byHash[h], s)
		wire[s] = ls
		out = append(out, s)
		return s
	}
	for _, a := range answers {
		for _, cs := range a.chunked {
			find(cs.Labels).addChunks(cs.Chunks)
		}
		for _, ts := range a.sampled {
			s := find(ts.Labels)
			s.sampled = append(s.sampled, ts)
		}
	}
	slices.SortFunc(out, func(a, b *chunkSeries) int { return labels.Compare(a.lset, b.lset) })
	return out
}

func hashLabels(seed maphash.Seed, ls []prompb.Label) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, l := range ls {
		h.WriteString(l.Name)
		h.WriteByte(0xff)
		h.WriteString(l.Value)
		h.WriteByte(0xff)
	}
	return h.Sum64()
}

func sameLabels(a, b []prompb.Label) bool {
	return slices.EqualFunc(a, b, func(x, y prompb.Label) bool { return x.Name == y.Name && x.Value == y.Value })
}

func toLabels(b *labels.ScratchBuilder, ls []prompb.Label) labels.Labels {
	b.Reset()
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

// addChunks keeps a replica's chunks unless an identical copy is kept.
func (s *chunkSeries) addChunks(cs []prompb.Chunk) {
	for _, kept := range s.chunkLists {
		if sameChunks(kept, cs) {
			return
		}
	}
	s.chunkLists = append(s.chunkLists, cs)
}

func sameChunks(a, b []prompb.Chunk) bool {
	return slices.EqualFunc(a, b, func(x, y prompb.Chunk) bool {
		return x.MinTimeMs == y.MinTimeMs && x.MaxTimeMs == y.MaxTimeMs && x.Type == y.Type && bytes.Equal(x.Data, y.Data)
	})
}

// numSamples counts the samples fetched for the series: every sample of its
// chunks, in the Select's range or not, as Cortex counts them, each distinct
// replica once, plus the samples older ingesters sent.
func (s *chunkSeries) numSamples(d *chunkDecoder) int {
	var n int
	for _, cs := range s.chunkLists {
		n += d.numSamples(cs)
	}
	for _, ts := range s.sampled {
		n += len(ts.Samples) + len(ts.Histograms)
	}
	return n
}

func (s *chunkSeries) Labels() labels.Labels { return s.lset }

// Iterator reads the chunks of a series all replicas agree on in place, one
// chunk at a time. Replicas that diverge are decoded and merged sample by
// sample with the rules of mergeReplicas; that happens only when an
// ingester missed writes or predates chunk streaming.
func (s *chunkSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if len(s.sampled) == 0 && len(s.chunkLists) == 1 && inTimeOrder(s.chunkLists[0]) {
		ci, ok := it.(*chunksIterator)
		if !ok {
			ci = &chunksIterator{}
		}
		ci.reset(s.chunkLists[0], s.mint, s.maxt)
		return ci
	}
	m, err := s.merged()
	if err != nil {
		return errIterator{Iterator: chunkenc.NewNopIterator(), err: err}
	}
	return m.Iterator(it)
}

// merged decodes every replica's samples in [mint, maxt] and merges them.
func (s *chunkSeries) merged() (*mergedSeries, error) {
	m := &mergedSeries{lset: s.lset}
	for _, cs := range s.chunkLists {
		floats, hists, err := decodeChunks(cs, s.mint, s.maxt)
		if err != nil {
			return nil, err
		}
		m.floats = mergeFloats(m.floats, normalizeFloats(floats))
		m.hists = mergeHistograms(m.hists, normalizeHistograms(hists))
	}
	for _, ts := range s.sampled {
		m.floats = mergeFloats(m.floats, normalizeFloats(floatsIn(ts.Samples, s.mint, s.maxt)))
		m.hists = mergeHistograms(m.hists, normalizeHistograms(histogramsIn(ts.Histograms, s.mint, s.maxt)))
	}
	if len(m.floats) > 0 && len(m.hists) > 0 {
		m.floats = dropFloatsAtHistograms(m.floats, m.hists)
	}
	return m, nil
}

// decodeChunks returns the samples of cs in [mint, maxt] in their wire form,
// in chunk order.
func decodeChunks(cs []prompb.Chunk, mint, maxt int64) ([]prompb.Sample, []prompb.Histogram, error) {
	var (
		d      chunkDecoder
		it     chunkenc.Iterator
		floats []prompb.Sample
		hists  []prompb.Histogram
	)
	for _, c := range cs {
		if c.MaxTimeMs < mint || c.MinTimeMs > maxt {
			continue
		}
		chk, err := d.decode(c)
		if err != nil {
			return nil, nil, err
		}
		it = chk.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if t := it.AtT(); t < mint || t > maxt {
				continue
			}
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				floats = append(floats, prompb.Sample{Timestamp: t, Value: v})
			case chunkenc.ValHistogram:
				t, h := it.AtHistogram(nil)
				hists = append(hists, prompb.FromIntHistogram(t, h))
			case chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				hists = append(hists, prompb.FromFloatHistogram(t, fh))
			}
		}
		if err := it.Err(); err != nil {
			return nil, nil, err
		}
	}
	return floats, hists, nil
}

func floatsIn(s []prompb.Sample, mint, maxt int64) []prompb.Sample {
	if !slices.ContainsFunc(s, func(x prompb.Sample) bool { return x.Timestamp < mint || x.Timestamp > maxt }) {
		return s
	}
	out := make([]prompb.Sample, 0, len(s))
	for _, x := range s {
		if x.Timestamp >= mint && x.Timestamp <= maxt {
			out = append(out, x)
		}
	}
	return out
}

func histogramsIn(s []prompb.Histogram, mint, maxt int64) []prompb.Histogram {
	if !slices.ContainsFunc(s, func(x prompb.Histogram) bool { return x.Timestamp < mint || x.Timestamp > maxt }) {
		return s
	}
	out := make([]prompb.Histogram, 0, len(s))
	for _, x := range s {
		if x.Timestamp >= mint && x.Timestamp <= maxt {
			out = append(out, x)
		}
	}
	return out
}

// inTimeOrder reports whether each chunk starts after the previous one
// ends, so that reading them in turn yields increasing timestamps.
// Prometheus allows overlapping chunks in a chunked series; those are merged.
func inTimeOrder(cs []prompb.Chunk) bool {
	for i, c := range cs {
		if c.MinTimeMs > c.MaxTimeMs || (i > 0 && c.MinTimeMs <= cs[i-1].MaxTimeMs) {
			return false
		}
	}
	return true
}

// chunkDecoder decodes chunks, reusing one chunk value per encoding: a
// chunk read from the wire only wraps its bytes.
type chunkDecoder struct {
	byEncoding [8]chunkenc.Chunk
}

// decode returns c as a TSDB chunk, valid until the next decode of the
// same encoding. prompb's encodings are numbered as chunkenc's.
func (d *chunkDecoder) decode(c prompb.Chunk) (chunkenc.Chunk, error) {
	enc := chunkenc.Encoding(c.Type)
	if int(enc) < len(d.byEncoding) && d.byEncoding[enc] != nil {
		d.byEncoding[enc].Reset(c.Data)
		return d.byEncoding[enc], nil
	}
	chk, err := chunkenc.FromData(enc, c.Data)
	if err != nil {
		return nil, err
	}
	if int(enc) < len(d.byEncoding) {
		d.byEncoding[enc] = chk
	}
	return chk, nil
}

// numSamples counts the samples of cs; a chunk that does not decode counts
// none and fails when read.
func (d *chunkDecoder) numSamples(cs []prompb.Chunk) int {
	var n int
	for _, c := range cs {
		if chk, err := d.decode(c); err == nil {
			n += chk.NumSamples()
		}
	}
	return n
}

// chunksIterator yields the samples of chunks in time order without
// overlap (see inTimeOrder) that lie in [mint, maxt], decoding one chunk at
// a time. It skips any sample not after the previous one, so that even
// chunks whose time bounds are wrong never make it go back in time.
type chunksIterator struct {
	chunks     []prompb.Chunk // not opened yet
	mint, maxt int64
	decoder    chunkDecoder
	cur        chunkenc.Iterator // of the open chunk; kept for reuse
	open       bool              // cur reads a chunk that may hold more samples
	done       bool
	vt         chunkenc.ValueType
	lastT      int64
	err        error
}

func (it *chunksIterator) reset(chunks []prompb.Chunk, mint, maxt int64) {
	it.chunks, it.mint, it.maxt = chunks, mint, maxt
	it.open, it.done, it.vt, it.lastT, it.err = false, false, chunkenc.ValNone, math.MinInt64, nil
}

func (it *chunksIterator) Next() chunkenc.ValueType {
	for !it.done {
		if !it.open && !it.openNext(it.mint) {
			break
		}
		vt := it.cur.Next()
		if vt == chunkenc.ValNone {
			it.closeChunk()
			continue
		}
		if vt, ok := it.accept(vt, it.mint); ok {
			return vt
		}
	}
	return it.stop()
}

func (it *chunksIterator) Seek(t millis) chunkenc.ValueType {
	if it.vt != chunkenc.ValNone && it.cur.AtT() >= t {
		return it.vt
	}
	t = max(t, it.mint)
	for !it.done {
		if !it.open && !it.openNext(t) {
			break
		}
		vt := it.cur.Seek(t)
		if vt == chunkenc.ValNone {
			it.closeChunk()
			continue
		}
		if vt, ok := it.accept(vt, t); ok {
			return vt
		}
		// The sample was not after the previous one: go on sample by sample.
		return it.Next()
	}
	return it.stop()
}

// accept reports whether the sample the chunk iterator is at is the next
// one to yield: not before from, within the range, after the previous one.
// A sample past maxt ends the iteration.
func (it *chunksIterator) accept(vt chunkenc.ValueType, from int64) (chunkenc.ValueType, bool) {
	t := it.cur.AtT()
	switch {
	case t > it.maxt:
		it.done = true
		return chunkenc.ValNone, false
	case t < from || t <= it.lastT:
		return chunkenc.ValNone, false
	}
	it.lastT, it.vt = t, vt
	return vt, true
}

// openNext opens the next chunk that may hold samples at or after t, and
// reports whether there is one within the range.
func (it *chunksIterator) openNext(t int64) bool {
	for len(it.chunks) > 0 && it.chunks[0].MaxTimeMs < t {
		it.chunks = it.chunks[1:]
	}
	if len(it.chunks) == 0 || it.chunks[0].MinTimeMs > it.maxt {
		return false
	}
	chk, err := it.decoder.decode(it.chunks[0])
	if err != nil {
		it.err = err
		return false
	}
	it.chunks = it.chunks[1:]
	it.cur = chk.Iterator(it.cur)
	it.open = true
	return true
}

func (it *chunksIterator) closeChunk() {
	it.open = false
	if err := it.cur.Err(); err != nil {
		it.err = err
		it.done = true
	}
}

func (it *chunksIterator) stop() chunkenc.ValueType {
	it.done, it.open, it.chunks, it.vt = true, false, nil, chunkenc.ValNone
	return chunkenc.ValNone
}

func (it *chunksIterator) At() (int64, float64) { return it.cur.At() }
func (it *chunksIterator) AtT() int64           { return it.cur.AtT() }
func (it *chunksIterator) AtST() int64          { return it.cur.AtST() }
func (it *chunksIterator) Err() error           { return it.err }

func (it *chunksIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return it.cur.AtHistogram(h)
}

func (it *chunksIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.cur.AtFloatHistogram(fh)
}

// millis is a sample's time in milliseconds. Seek takes one rather than
// a plain int64 so that go vet does not read chunkenc.Iterator's Seek as a
// misdeclared io.Seeker.
type millis = int64

// errIterator is the iterator of a series whose chunks do not decode.
type errIterator struct {
	chunkenc.Iterator
	err error
}

func (e errIterator) Err() error { return e.err }

var (
	_ storage.Series    = (*chunkSeries)(nil)
	_ chunkenc.Iterator = (*chunksIterator)(nil)
	_ chunkenc.Iterator = errIterator{}
)
