package storegateway

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/thanos-io/objstore"
)

const (
	// estimatedMaxChunkSize is read past a chunk's start when its length is
	// not known yet (Thanos' estimate): a 120-sample float chunk is far
	// smaller, and a chunk that is larger is read again whole.
	estimatedMaxChunkSize = 16000
	// maxChunkGap is how many unneeded bytes between two wanted chunks are
	// read rather than starting a second range request.
	maxChunkGap = 512 * 1024
	// maxRangeSize bounds one range request, so that a large query is read
	// in parallel parts rather than one long transfer.
	maxRangeSize = 16 * 1024 * 1024
)

// thanosFiles is the part of meta.json listing the block's files and sizes,
// which bounds chunk reads to the segment's end.
type thanosFiles struct {
	MinTime int64 `json:"minTime"`
	MaxTime int64 `json:"maxTime"`
	Thanos  struct {
		Files []struct {
			RelPath   string `json:"rel_path"`
			SizeBytes int64  `json:"size_bytes"`
		} `json:"files"`
	} `json:"thanos"`
}

// block is one loaded block: its index is local, its chunks in the bucket.
type block struct {
	tenant string
	id     ulid.ULID
	dir    string
	// minT and maxT are the block's time range, [minT, maxT).
	minT, maxT int64

	// mu guards tb, readers and closed. With lazy loading tb is nil until
	// a query needs the index, and again once it was idle long enough.
	mu       sync.Mutex
	tb       *tsdb.Block
	readers  int   // open queriers
	lastUsed int64 // unix nanoseconds of the last querier opened or closed
	closed   bool  // dropped: never opened again
	lazy     *lazyLoading
	// lazyPostings, when set, lets Selects check some matchers on series
	// labels rather than expand their postings.
	lazyPostings *lazyPostingsConfig

	bkt       objstore.BucketReader
	indexSize int64
	// segmentSizes are the chunk segment sizes meta.json gives, by
	// segment file name; empty if it gives none.
	segmentSizes map[string]int64
	m            *metrics
	concurrency  int
	// indexCache caches what Selects compute from the index; nil: none.
	indexCache *indexCache
}

func newBlock(tenant string, id ulid.ULID, dir string, tb *tsdb.Block, bkt objstore.BucketReader, tm thanosFiles, indexSize int64, m *metrics, concurrency int) *block {
	sizes := map[string]int64{}
	for _, f := range tm.Thanos.Files {
		if f.SizeBytes > 0 {
			sizes[f.RelPath] = f.SizeBytes
		}
	}
	b := &block{tenant: tenant, id: id, dir: dir, tb: tb, bkt: bkt, indexSize: indexSize, segmentSizes: sizes, m: m, concurrency: concurrency, lastUsed: time.Now().UnixNano()}
	b.minT, b.maxT = tm.MinTime, tm.MaxTime
	// A BucketStore reads through a storeBucket, which carries the index
	// cache its Config sets up.
	if sb, ok := bkt.(*storeBucket); ok {
		b.indexCache = sb.indexCache
	}
	return b
}

// lazyLoading is what a lazily opened block reports its opening and
// closing to.
type lazyLoading struct {
	loads, loadFailures, unloads prometheus.Counter
	loadDuration                 prometheus.Histogram
}

// index opens the block's index for a querier, opening the block first
// when it is closed (lazy loading). Each index must be released with
// releaseIndex.
func (b *block) index() (tsdb.IndexReader, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("tenant %s block %s: dropped", b.tenant, b.id)
	}
	if b.tb == nil {
		start := time.Now()
		tb, err := tsdb.OpenBlock(nil, b.dir, nil, nil)
		if err != nil {
			b.lazy.loadFailures.Inc()
			return nil, fmt.Errorf("tenant %s block %s: opening local index %s: %w", b.tenant, b.id, filepath.Join(b.dir, indexFilename), err)
		}
		b.lazy.loads.Inc()
		b.lazy.loadDuration.Observe(time.Since(start).Seconds())
		b.tb = tb
	}
	ir, err := b.tb.Index()
	if err != nil {
		return nil, fmt.Errorf("tenant %s block %s: opening index: %w", b.tenant, b.id, err)
	}
	b.readers++
	b.lastUsed = time.Now().UnixNano()
	return ir, nil
}

// releaseIndex closes an index index returned.
func (b *block) releaseIndex(ir tsdb.IndexReader) error {
	err := ir.Close()
	b.mu.Lock()
	b.readers--
	b.lastUsed = time.Now().UnixNano()
	b.mu.Unlock()
	return err
}

// unloadIfIdle closes the block's index when no querier has used it since
// idleSince (unix nanoseconds); it reports whether it did.
func (b *block) unloadIfIdle(idleSince int64) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tb == nil || b.readers > 0 || b.lastUsed > idleSince {
		return false, nil
	}
	err := b.tb.Close()
	b.tb = nil
	b.lazy.unloads.Inc()
	return true, err
}

// close closes the block for good, waiting for its queriers to be closed.
func (b *block) close() error {
	b.mu.Lock()
	tb := b.tb
	b.tb, b.closed = nil, true
	b.mu.Unlock()
	if tb == nil {
		return nil
	}
	// Close waits for the queriers still reading the index; they release
	// it without b.mu held here.
	return tb.Close()
}

// cacheKey names the block in index cache keys: IDs are unique across
// tenants, the tenant keeps keys readable.
func (b *block) cacheKey() string { return b.tenant + "/" + b.id.String() }

// segmentObject is the bucket object of a chunk segment: a chunk reference
// holds the segment's position among the block's segment files, which are
// numbered from 000001.
func (b *block) segmentObject(seg int) (name, rel string) {
	rel = path.Join(chunksDirname, fmt.Sprintf("%06d", seg+1))
	return path.Join(b.tenant, b.id.String(), rel), rel
}

// chunkRange is one range request: chunks of one segment, in offset order.
type chunkRange struct {
	seg        int
	start, end int64
	chunks     []int // indexes into the metas being fetched
}

// fetchChunks reads the chunks of metas (all of them from this block) from
// the bucket and sets their Chunk. Chunks close together in a segment,
// such as one series' chunks, which the TSDB writes one after the other,
// are read with one range request.
func (b *block) fetchChunks(ctx context.Context, metas []chunks.Meta, held *heldChunkBytes) error {
	if len(metas) == 0 {
		return nil
	}
	order := make([]int, len(metas))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return cmp.Compare(metas[x].Ref, metas[y].Ref) })

	var (
		ranges  []chunkRange
		lastSeg = -1
		segSize int64 // 0: unknown
	)
	for _, i := range order {
		seg, off := chunks.BlockChunkRef(metas[i].Ref).Unpack()
		if seg != lastSeg {
			_, rel := b.segmentObject(seg)
			lastSeg, segSize = seg, b.segmentSizes[rel]
		}
		end := int64(off) + estimatedMaxChunkSize
		if segSize > 0 {
			end = min(end, segSize)
		}
		if n := len(ranges); n > 0 {
			r := &ranges[n-1]
			if r.seg == seg && int64(off) <= r.end+maxChunkGap && max(end, r.end)-r.start <= maxRangeSize {
				r.end = max(end, r.end)
				r.chunks = append(r.chunks, i)
				continue
			}
		}
		ranges = append(ranges, chunkRange{seg: seg, start: int64(off), end: end, chunks: []int{i}})
	}

	errs := make([]error, len(ranges))
	forEach(len(ranges), b.concurrency, func(i int) {
		errs[i] = b.fetchRange(ctx, ranges[i], metas, held)
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	bytes := 0
	for _, m := range metas {
		bytes += len(m.Chunk.Bytes())
	}
	requestOf(ctx).fetchedChunks(len(metas), bytes, 0)
	return nil
}

// fetchRange reads one range and parses its chunks; a chunk running past
// the range's end is read again on its own.
func (b *block) fetchRange(ctx context.Context, r chunkRange, metas []chunks.Meta, held *heldChunkBytes) error {
	name, _ := b.segmentObject(r.seg)
	buf, err := b.getRange(ctx, name, r.start, r.end-r.start, held)
	if err != nil {
		return err
	}
	for _, i := range r.chunks {
		_, off := chunks.BlockChunkRef(metas[i].Ref).Unpack()
		// A segment shorter than meta.json said ends the range early.
		rel := min(int64(off)-r.start, int64(len(buf)))
		chk, need, err := parseChunk(buf[rel:])
		if err == nil && need > 0 {
			var one []byte
			if one, err = b.getRange(ctx, name, int64(off), int64(need), held); err == nil {
				chk, need, err = parseChunk(one)
				if err == nil && need > 0 {
					err = fmt.Errorf("segment ends %d bytes into the chunk, which needs %d", len(one), need)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("tenant %s block %s: chunk at offset %d of %s: %w", b.tenant, b.id, off, name, err)
		}
		metas[i].Chunk = chk
		b.m.chunkSizeBytes.Observe(float64(len(chk.Bytes())))
	}
	return nil
}

// getRange reads a range, accounted to the request of ctx
// (-store-gateway.max-downloaded-bytes-per-request, the token bucket bytes
// limiter) and to held (-blocks-storage.bucket-store.max-chunk-pool-bytes)
// before its buffer is allocated.
func (b *block) getRange(ctx context.Context, name string, off, length int64, held *heldChunkBytes) ([]byte, error) {
	if err := requestOf(ctx).download(length); err != nil {
		return nil, err
	}
	requestOf(ctx).fetchedChunks(0, 0, 1)
	if err := held.take(length); err != nil {
		return nil, fmt.Errorf("tenant %s block %s: reading %s bytes %d-%d: %w", b.tenant, b.id, name, off, off+length, err)
	}
	b.m.chunkRangeRequests.Inc()
	rc, err := b.bkt.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, fmt.Errorf("tenant %s block %s: reading %s bytes %d-%d: %w", b.tenant, b.id, name, off, off+length, err)
	}
	defer rc.Close() //nolint:errcheck // read-only: the read's error is the one that matters
	buf := make([]byte, length)
	n, err := io.ReadFull(rc, buf)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The range ran past the segment's end, whose size meta.json did
		// not give: what there is may hold every wanted chunk.
		return buf[:n], nil
	case err != nil:
		return nil, fmt.Errorf("tenant %s block %s: reading %s bytes %d-%d: %w", b.tenant, b.id, name, off, off+length, err)
	}
	return buf, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// parseChunk decodes the chunk at the start of p, laid out as the TSDB
// writes it: uvarint data length, encoding byte, data, CRC32 (Castagnoli)
// of encoding and data. If p is too short it returns how many bytes the
// chunk needs from its start. The chunk references p's bytes.
func parseChunk(p []byte) (chunkenc.Chunk, int, error) {
	dataLen, n := binary.Uvarint(p)
	if n == 0 {
		// Not even the length fits: ask for the longest length field and
		// the estimate after it.
		return nil, binary.MaxVarintLen32 + estimatedMaxChunkSize, nil
	}
	if n < 0 || dataLen > 1<<30 {
		return nil, 0, fmt.Errorf("invalid chunk length field")
	}
	encAt := n
	end := encAt + chunks.ChunkEncodingSize + int(dataLen) + crc32.Size
	if end > len(p) {
		return nil, end, nil
	}
	dataEnd := end - crc32.Size
	if got, want := crc32.Checksum(p[encAt:dataEnd], castagnoli), binary.BigEndian.Uint32(p[dataEnd:end]); got != want {
		return nil, 0, fmt.Errorf("checksum mismatch: computed %08x, stored %08x", got, want)
	}
	chk, err := chunkenc.FromData(chunkenc.Encoding(p[encAt]), p[encAt+chunks.ChunkEncodingSize:dataEnd])
	if err != nil {
		return nil, 0, err
	}
	return chk, 0, nil
}
